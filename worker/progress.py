"""Throttled progress reporting from a running job to its row (also its heartbeat and cancel check).

The training loop calls :meth:`JobProgress.report` every step and :meth:`JobProgress.should_cancel`
as often as it likes; the database sees at most one write and one read per ``interval`` seconds.
:meth:`JobProgress.beat` (called by :class:`worker.heartbeat.Heartbeat`) refreshes the heartbeat.
Non-finite losses (no step since the last report) are left out.

Every write is *fenced* by the attempt number: it only touches the row while ``attempts`` still
equals this attempt's and the job is ``running``. If the reaper gave the job to another worker
(this one looked dead), the write matches no row, :attr:`JobProgress.lost` turns true and
:meth:`should_cancel` stops this attempt, which then writes nothing more.

ETA = elapsed × (1 − f) / (f − f₀), with f₀ the fraction this attempt started from: 0 for a first
attempt, else (``start_fraction=None``) the first fraction reported, so a resumed run does not count
the epochs it skipped. The first step an attempt reports is recorded in its ``history`` entry
(evidence of where a resumed attempt started).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from service.db import transaction
from service.models import Job, utcnow

log = logging.getLogger(__name__)


class JobProgress:
    """Progress sink and cancellation source for attempt ``attempt`` of one job; ``stop`` is a
    process-level stop signal (worker shutting down)."""

    def __init__(
        self,
        job_id: str,
        session_factory: sessionmaker[Session],
        *,
        attempt: int,
        interval: float = 1.0,
        stop: threading.Event | None = None,
        start_fraction: float | None = 0.0,
    ) -> None:
        self.job_id = job_id
        self.session_factory = session_factory
        self.attempt = attempt
        self.interval = interval
        self.stop = stop
        self.cancel_requested = False
        self.lost = False
        self._first_report = True
        self._started = time.monotonic()
        self._start_fraction = start_fraction
        self._last_write = float("-inf")
        self._last_read = float("-inf")

    def _mine(self) -> tuple[Any, ...]:
        return (Job.id == self.job_id, Job.attempts == self.attempt, Job.status == "running")

    def report(self, progress: Any) -> None:
        """Record a :class:`grouping.training.Progress`; writes once ``interval`` has passed since the
        last write (and always the final report). A failed write (database unreachable) is logged and
        skipped: training goes on and the next report tries again."""
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
        try:
            with transaction(self.session_factory) as session:
                if self._first_report:
                    history = session.scalar(select(Job.history).where(*self._mine()))
                    if history:
                        values["history"] = [*history[:-1], {**history[-1], "first_step": progress.step}]
                matched = session.execute(update(Job).where(*self._mine()).values(**values)).rowcount
                self.cancel_requested = bool(
                    session.scalar(select(Job.cancel_requested).where(Job.id == self.job_id))
                )
        except OperationalError:
            log.warning("job %s: progress not recorded (database unavailable)", self.job_id, exc_info=True)
            return
        self.lost = self.lost or not matched
        self._first_report = False
        self._last_write = self._last_read = now

    def beat(self) -> None:
        """Refresh the heartbeat (fenced like every write)."""
        with transaction(self.session_factory) as session:
            matched = session.execute(update(Job).where(*self._mine()).values(heartbeat_at=utcnow())).rowcount
        self.lost = self.lost or not matched

    def should_cancel(self) -> bool:
        """True once a user asked to cancel the job, the process is stopping, or the job was given to
        another attempt (the row is read at most once per interval)."""
        if self.lost or (self.stop is not None and self.stop.is_set()):
            return True
        now = time.monotonic()
        if not self.cancel_requested and now - self._last_read >= self.interval:
            try:
                with self.session_factory() as session:
                    self.cancel_requested = bool(
                        session.scalar(select(Job.cancel_requested).where(Job.id == self.job_id))
                    )
            except OperationalError:
                log.warning("job %s: cancel flag not read (database unavailable)", self.job_id)
            self._last_read = now
        return self.cancel_requested
