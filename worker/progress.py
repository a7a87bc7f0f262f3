"""Throttled progress reporting from a running job to its row (also its heartbeat and cancel check).

The training loop calls :meth:`JobProgress.report` every step and :meth:`JobProgress.should_cancel`
as often as it likes; the database sees at most one write and one read per ``interval`` seconds.
Non-finite losses (no step since the last report) are left out.
ETA = elapsed × (1 − f) / (f − f₀), with f₀ the fraction this attempt started from: 0 for a first
attempt, else (``start_fraction=None``) the first fraction reported, so a resumed run does not count
the epochs it skipped.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from service.db import transaction
from service.models import Job, utcnow


class JobProgress:
    """Progress sink and cancellation source for one job; ``stop`` is a process-level stop signal."""

    def __init__(
        self,
        job_id: str,
        session_factory: sessionmaker[Session],
        *,
        interval: float = 1.0,
        stop: threading.Event | None = None,
        start_fraction: float | None = 0.0,
    ) -> None:
        self.job_id = job_id
        self.session_factory = session_factory
        self.interval = interval
        self.stop = stop
        self.cancel_requested = False
        self._started = time.monotonic()
        self._start_fraction = start_fraction
        self._last_write = float("-inf")
        self._last_read = float("-inf")

    def report(self, progress: Any) -> None:
        """Record a :class:`grouping.training.Progress`; writes once ``interval`` has passed since the
        last write (and always the final report)."""
        now = time.monotonic()
        if now - self._last_write < self.interval and progress.fraction < 1.0:
            return
        fraction = float(min(max(progress.fraction, 0.0), 1.0))
        if self._start_fraction is None:
            self._start_fraction = fraction
        done = fraction - self._start_fraction
        eta = (now - self._started) * (1.0 - fraction) / done if done > 0 else None
        losses = {str(k): float(v) for k, v in (progress.losses or {}).items() if math.isfinite(v)}
        values = {
            "progress_fraction": fraction,
            "epoch": progress.epoch,
            "step": progress.step,
            "total_steps": progress.total_steps,
            "eta_seconds": eta,
            "losses": losses,
            "heartbeat_at": utcnow(),
        }
        with transaction(self.session_factory) as session:
            session.execute(update(Job).where(Job.id == self.job_id).values(**values))
            self.cancel_requested = bool(
                session.scalar(select(Job.cancel_requested).where(Job.id == self.job_id))
            )
        self._last_write = self._last_read = now

    def should_cancel(self) -> bool:
        """True once a user asked to cancel the job or the process is stopping (the row is read at
        most once per interval)."""
        if self.stop is not None and self.stop.is_set():
            return True
        now = time.monotonic()
        if not self.cancel_requested and now - self._last_read >= self.interval:
            with self.session_factory() as session:
                self.cancel_requested = bool(
                    session.scalar(select(Job.cancel_requested).where(Job.id == self.job_id))
                )
            self._last_read = now
        return self.cancel_requested
