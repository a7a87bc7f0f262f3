"""The log of one attempt of a job, as the runner writes it: its steps, its progress per epoch and
its outcome, stored in the database (``service.job_logs``: ``GET /jobs/{id}/logs``, ``taskgrouper jobs
logs``, the dashboard) and sent to the process log with the job's id, attempt and step.

The runner's own entries are stored whatever the process's log level; other records logged while the
job runs in this thread (library warnings, say) are stored when the process's level lets them
through. Every entry carries the step it belongs to, so the entry of a failed job names the step
that failed.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from grouping.training import Progress
from service.job_logs import JobLogHandler
from service.logs import current_job, job_context

log = logging.getLogger("worker.runner")


class JobLog:
    """``with JobLog(...) as job_log:`` — while open, the thread works on the job (its records carry
    the job's id and attempt) and the attempt's entries are stored, bounded by ``limit``."""

    def __init__(
        self, job_id: str, attempt: int, session_factory: sessionmaker[Session], *, limit: int = 1000
    ) -> None:
        self.job_id = job_id
        self.attempt = attempt
        self.handler = JobLogHandler(job_id, attempt, session_factory, limit)
        self._written: logging.LogRecord | None = None  # stored already: the root handler skips it
        self.handler.addFilter(lambda record: record is not self._written)
        self.failed_step: str | None = None
        self._context = contextlib.ExitStack()

    def __enter__(self) -> JobLog:
        self._context.enter_context(job_context(self.job_id, attempt=self.attempt))
        logging.getLogger().addHandler(self.handler)
        self._context.callback(self._detach)
        return self

    def __exit__(self, *exc: object) -> None:
        self._context.close()

    def _detach(self) -> None:
        logging.getLogger().removeHandler(self.handler)
        self.handler.close()

    def write(self, level: int, message: str, *args: Any, exc_info: bool = False, **fields: Any) -> None:
        """Store an entry of the current step and log it to the process log (at ``level``, if enabled);
        ``fields`` become attributes of the record (structured log fields); ``exc_info`` adds the
        exception being handled (its traceback)."""
        context = current_job()
        extra = {"job_id": self.job_id, "attempt": self.attempt,
                 "step": context.step if context is not None else None, **fields}
        error = sys.exc_info() if exc_info else None
        record = log.makeRecord(log.name, level, __file__, 0, message, args, error, extra=extra)
        self.handler.handle(record)
        if log.isEnabledFor(level):
            self._written = record
            try:
                log.handle(record)
            finally:
                self._written = None

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        """A step of the job: entries within it carry ``step=name``; its start and end are logged, and
        an exception leaving it makes it :attr:`failed_step` (the runner logs the failure)."""
        with job_context(step=name):
            self.write(logging.INFO, "step %s started", name)
            started = time.monotonic()
            try:
                yield
            except BaseException:
                self.failed_step = self.failed_step or name
                raise
            self.write(logging.INFO, "step %s finished in %.1f s", name, time.monotonic() - started)

    def epochs(self, report: Callable[[Progress], None]) -> Callable[[Progress], None]:
        """``report`` that also logs each epoch as it ends and the end of training, with the mean
        training losses of the latest report."""
        state: dict[str, Any] = {"epoch": None, "done": False}

        def logged(progress: Progress) -> None:
            report(progress)
            previous = state["epoch"]
            listed = ", ".join(f"{task} {value:.4g}" for task, value in progress.losses.items())
            losses = f"; losses {listed}" if listed else ""
            if previous is not None and progress.epoch != previous:
                self.write(logging.INFO, "epoch %s finished%s", previous, losses)
            if progress.fraction >= 1.0 and not state["done"]:
                state["done"] = True
                self.write(logging.INFO, "training finished: epoch %s, step %d of %d%s", progress.epoch,
                           progress.step, progress.total_steps, losses)
            state["epoch"] = progress.epoch

        return logged
