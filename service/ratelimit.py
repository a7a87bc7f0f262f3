"""Per-key request rate limit in Redis: a fixed window of ``rate_limit_window`` seconds.

Each request increments ``taskgrouper:rl:<identity>:<window index>`` (expiring after two windows);
beyond ``rate_limit_requests`` in the window the request is refused with 429 and ``Retry-After``
naming the seconds until the window ends. Shared by every API process, so the limit holds across
uvicorn workers and machines. If Redis cannot be reached the request is let through (the limiter
protects capacity; it must not take the API down with it) and a warning is logged.
"""

from __future__ import annotations

import logging
import math
import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from service.errors import ApiError

log = logging.getLogger(__name__)


class RateLimiter:
    """``await limiter.hit(identity)`` raises a 429 :class:`ApiError` once ``identity`` is over."""

    def __init__(self, url: str, requests: int, window: int) -> None:
        self.requests = requests
        self.window = window
        self.client = aioredis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._warned_at = -math.inf

    async def hit(self, identity: str) -> None:
        now = time.time()
        index = int(now // self.window)
        key = f"taskgrouper:rl:{identity}:{index}"
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                count, _ = await pipe.incr(key).expire(key, 2 * self.window).execute()
        except (RedisError, OSError) as exc:
            if now - self._warned_at > 60:
                log.warning("rate limiter unavailable, letting requests through: %s", exc)
                self._warned_at = now
            return
        if count > self.requests:
            retry = max(1, math.ceil((index + 1) * self.window - now))
            raise ApiError(
                429,
                f"rate limit of {self.requests} requests per {self.window} s exceeded; retry in {retry} s",
                headers={"Retry-After": str(retry)},
                retry_after=retry,
            )

    async def close(self) -> None:
        await self.client.aclose()
