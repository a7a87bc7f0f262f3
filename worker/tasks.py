"""Celery tasks: each message carries only a job id; the job row is the source of truth."""

from __future__ import annotations

from functools import lru_cache

from celery import Task
from sqlalchemy.orm import Session, sessionmaker

from service.db import make_engine, make_session_factory
from service.groupings import precompute
from service.settings import get_settings
from worker.celery_app import RUN_JOB, SOLVE_GROUPINGS, app
from worker.runner import run_job


@lru_cache(maxsize=1)
def session_factory() -> sessionmaker[Session]:
    """This worker process's sessions (created on first use, i.e. after the prefork)."""
    return make_session_factory(make_engine(get_settings().resolved_database_url, pool_size=2))


@app.task(name=RUN_JOB, bind=True)
def run_job_task(self: Task, job_id: str) -> str:
    """Run the affinity job; on success queue the precomputation of its groupings on the solve queue."""
    status = run_job(job_id, session_factory(), settings=get_settings(), worker=self.request.hostname)
    if status == "succeeded":
        app.send_task(SOLVE_GROUPINGS, args=[job_id])
    return status


@app.task(name=SOLVE_GROUPINGS)
def solve_groupings_task(job_id: str) -> int:
    """Solve and store the job's groupings at every default budget (idempotent)."""
    return precompute(session_factory(), job_id, time_limit=get_settings().solve_time_limit)
