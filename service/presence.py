"""Worker presence in the broker's Redis: each worker process beats into a sorted set per queue it
consumes (``taskgrouper:workers:<queue>``: member its node name, score the time of its last beat), so
``/metrics`` can count the live workers of every queue, idle ones included, with one round trip.

A worker is *alive* while its last beat is younger than ``stale_after`` seconds; it beats every
``heartbeat_interval`` (``worker.tasks``) and leaves the sets on a clean shutdown. Entries older than
:data:`FORGET_AFTER` are removed by the next beat of any worker of the queue.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

#: seconds after which a silent worker's entry is removed
FORGET_AFTER = 24 * 3600.0


def presence_key(queue: str) -> str:
    """The sorted set of the workers consuming ``queue``."""
    return f"taskgrouper:workers:{queue}"


def beat(redis: Any, name: str, queues: Iterable[str], now: float | None = None) -> None:
    """Record that worker ``name`` (consuming ``queues``) is alive now."""
    now = time.time() if now is None else now
    pipe = redis.pipeline(transaction=False)
    for queue in queues:
        pipe.zadd(presence_key(queue), {name: now})
        pipe.zremrangebyscore(presence_key(queue), 0, now - FORGET_AFTER)
    pipe.execute()


def leave(redis: Any, name: str, queues: Iterable[str]) -> None:
    """Remove worker ``name`` from the sets of ``queues`` (a clean shutdown)."""
    pipe = redis.pipeline(transaction=False)
    for queue in queues:
        pipe.zrem(presence_key(queue), name)
    pipe.execute()


def count_alive_commands(
    pipe: Any, queues: Iterable[str], stale_after: float, now: float | None = None
) -> None:
    """Queue on ``pipe`` one ``ZCOUNT`` per queue: its workers that beat within ``stale_after`` seconds."""
    now = time.time() if now is None else now
    for queue in queues:
        pipe.zcount(presence_key(queue), now - stale_after, "+inf")
