"""Where submitted jobs run: Celery workers (server mode) or a thread pool in this process (embedded).

Both hand the job id to the same :func:`worker.runner.run_job`; the API only ever calls
:meth:`submit`, :meth:`submit_trial`, :meth:`submit_study_answers`, :meth:`check` and :meth:`close`.
A study's answers are solved on the solve queue, or in embedded mode in a child process (the solve
of a large study would hold this process's interpreter while requests wait).
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
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

    def submit_study_answers(self, study_id: str, solver: str, budgets: list[float], token: str) -> None:
        """Schedule the solve of a study's answers (:func:`service.study_answers.solve_answers`) under
        the refresh claim ``token``; raise if it cannot be scheduled."""

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

    def submit_study_answers(self, study_id: str, solver: str, budgets: list[float], token: str) -> None:
        from worker.celery_app import SOLVE_STUDY_ANSWERS

        self.app.send_task(SOLVE_STUDY_ANSWERS, args=[study_id, solver, budgets, token],
                           queue=self.settings.solve_queue, retry=False)

    def check(self) -> None:
        with self.app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)

    def close(self) -> None:
        self.app.close()


class InProcessExecutor:
    """A thread pool of ``settings.embedded_workers`` threads running jobs, then their groupings, and
    one child process (started on first use) solving studies' answers."""

    def __init__(self, settings: Settings, session_factory: sessionmaker[Session]) -> None:
        self.settings = settings
        self.session_factory = session_factory
        self.stop = threading.Event()
        self.pool = ThreadPoolExecutor(settings.embedded_workers, thread_name_prefix="taskgrouper-job")
        self.solvers: ProcessPoolExecutor | None = None
        self.solvers_lock = threading.Lock()

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
            for new in run_trial(trial_id, self.session_factory, worker="embedded",
                                 settings=self.settings, stop=self.stop):
                self.submit_trial(new)
        except Exception:
            log.exception("embedded trial %s", trial_id)

    def submit_study_answers(self, study_id: str, solver: str, budgets: list[float], token: str) -> None:
        from service.study_answers import solve_in_child

        with self.solvers_lock:
            if self.stop.is_set():
                raise RuntimeError("the in-process executor is shut down")
            if self.solvers is None:
                self.solvers = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
            future = self.solvers.submit(solve_in_child, self.settings.resolved_database_url, study_id,
                                         solver, budgets, token, time_limit=self.settings.solve_time_limit,
                                         max_budgets=self.settings.max_budgets)
        future.add_done_callback(lambda done: _log_failure(done, study_id))

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
        with self.solvers_lock:
            if self.solvers is not None:
                self.solvers.shutdown(wait=True, cancel_futures=True)


def _log_failure(done: Future, study_id: str) -> None:
    """Log a failed solve of a study's answers (its claim expires; a later request queues another)."""
    if not done.cancelled() and done.exception() is not None:
        log.warning("study %s: answers not solved", study_id, exc_info=done.exception())
