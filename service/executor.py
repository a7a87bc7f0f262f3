"""Where submitted jobs run: Celery workers (server mode) or a thread pool in this process (embedded).

Both hand the job id to the same :func:`worker.runner.run_job`; the API only ever calls
:meth:`submit`, :meth:`check` and :meth:`close`.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from service.db import transaction
from service.models import Job
from service.settings import Settings

log = logging.getLogger(__name__)


class JobExecutor(Protocol):
    """Runs submitted jobs somewhere."""

    def submit(self, job_id: str) -> None:
        """Schedule the job (its row exists and is ``queued``); raise if it cannot be scheduled."""

    def submit_trial(self, trial_id: str) -> None:
        """Schedule a builtin study's trial (``worker.trials.run_trial``); raise if it cannot be."""

    def check(self) -> None:
        """Raise if jobs cannot be scheduled now (readiness)."""

    def close(self) -> None:
        """Release resources; running in-process jobs go back to ``queued``."""


class CeleryExecutor:
    """Publish ``run_job(job_id)`` on the training queue."""

    def __init__(self, settings: Settings) -> None:
        from worker.celery_app import create_celery

        self.settings = settings
        self.app = create_celery(settings)

    def submit(self, job_id: str) -> None:
        from worker.celery_app import RUN_JOB

        self.app.send_task(RUN_JOB, args=[job_id], queue=self.settings.training_queue, retry=False)

    def submit_trial(self, trial_id: str) -> None:
        from worker.celery_app import RUN_TRIAL

        self.app.send_task(RUN_TRIAL, args=[trial_id], queue=self.settings.training_queue, retry=False)

    def check(self) -> None:
        with self.app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)

    def close(self) -> None:
        self.app.close()


class InProcessExecutor:
    """A thread pool of ``settings.embedded_workers`` threads running jobs, then their groupings."""

    def __init__(self, settings: Settings, session_factory: sessionmaker[Session]) -> None:
        self.settings = settings
        self.session_factory = session_factory
        self.stop = threading.Event()
        self.pool = ThreadPoolExecutor(settings.embedded_workers, thread_name_prefix="taskgrouper-job")

    def submit(self, job_id: str) -> None:
        self.pool.submit(self._run, job_id)

    def _run(self, job_id: str) -> None:
        from service.groupings import precompute
        from worker.runner import run_job

        try:
            if (
                run_job(
                    job_id, self.session_factory, settings=self.settings, worker="embedded", stop=self.stop
                )
                == "succeeded"
            ):
                precompute(self.session_factory, job_id, time_limit=self.settings.solve_time_limit)
        except Exception:
            log.exception("embedded job %s", job_id)

    def submit_trial(self, trial_id: str) -> None:
        self.pool.submit(self._run_trial, trial_id)

    def _run_trial(self, trial_id: str) -> None:
        from worker.trials import run_trial

        try:
            for new in run_trial(trial_id, self.session_factory, worker="embedded", stop=self.stop):
                self.submit_trial(new)
        except Exception:
            log.exception("embedded trial %s", trial_id)

    def resume_pending(self) -> list[str]:
        """Resubmit jobs a previous process left ``queued`` or ``running``; their ids."""
        with transaction(self.session_factory) as session:
            session.execute(update(Job).where(Job.status == "running").values(status="queued"))
            ids = list(session.scalars(select(Job.id).where(Job.status == "queued").order_by(Job.created_at)))
        for job_id in ids:
            self.submit(job_id)
        return ids

    def check(self) -> None:
        if self.stop.is_set():
            raise RuntimeError("the in-process executor is shut down")

    def close(self) -> None:
        self.stop.set()
        self.pool.shutdown(wait=True, cancel_futures=True)
