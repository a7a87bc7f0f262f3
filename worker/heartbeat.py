"""A daemon thread that calls ``beat()`` every ``interval`` seconds until stopped.

The runner beats for each running job, independently of training progress, so a job in a long
step (loading data, a slow epoch, writing results) still shows it is alive; only a dead or
frozen process stops beating, and the reaper (``worker.reaper``) re-enqueues its job.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from types import TracebackType

log = logging.getLogger(__name__)


class Heartbeat:
    """``with Heartbeat(beat, interval):`` — ``beat`` runs in a thread while the block runs; an
    exception in ``beat`` (e.g. the database briefly unreachable) is logged and the next beat tried."""

    def __init__(self, beat: Callable[[], None], interval: float) -> None:
        self.beat = beat
        self.interval = interval
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="taskgrouper-heartbeat", daemon=True)

    def _run(self) -> None:
        while not self._done.wait(self.interval):
            try:
                self.beat()
            except Exception:
                log.warning("heartbeat failed", exc_info=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._done.set()
        self._thread.join()
