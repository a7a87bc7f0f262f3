"""The attempt cap on PostgreSQL: a job lost once more after ``max_attempts`` claims fails, naming the
cap, whether the reaper finds it (stale heartbeat) or its message comes back to a worker (the claim).

A lost job below the cap, and a job whose attempts ended gracefully (requeued on a worker's
shutdown), still run again. The job rows are written directly; the reaper sweep and the runner's
claim are the real ones. (The end-to-end case, a worker killed mid-job, is in
``test_hardening_workers.py``.)
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from conftest import TINY_JOB

from service.db import make_engine, make_session_factory, transaction
from service.models import Job, utcnow
from service.settings import Settings
from worker.reaper import reap
from worker.runner import run_job

pytestmark = [pytest.mark.services, pytest.mark.timeout(120)]


@pytest.fixture
def settings(server_settings: Settings) -> Settings:
    return server_settings.model_copy(update={"max_attempts": 3, "stale_after": 60.0})


@pytest.fixture
def sessions(settings: Settings) -> Iterator[Any]:
    engine = make_engine(settings.resolved_database_url, pool_size=2)
    yield make_session_factory(engine)
    engine.dispose()


def add_job(sessions: Any, settings: Settings, *, status: str, attempts: int, **fields: Any) -> str:
    """A job row of ``settings.default_project`` that was claimed ``attempts`` times."""
    history = fields.pop("history", [{"attempt": n + 1, "worker": "w"} for n in range(attempts)])
    with transaction(sessions) as session:
        job = Job(
            project=settings.default_project,
            status=status,
            spec=fields.pop("spec", TINY_JOB),
            spec_hash="x",
            cancel_requested=False,
            progress_fraction=0.5,
            attempts=attempts,
            history=history,
            created_at=utcnow() - timedelta(hours=1),
            started_at=utcnow() - timedelta(hours=1) if attempts else None,
            enqueued_at=utcnow(),
            **fields,
        )
        session.add(job)
        session.flush()
        return job.id


def read(sessions: Any, job_id: str) -> Job:
    with sessions() as session:
        return session.get(Job, job_id)


def test_the_reaper_fails_a_job_lost_after_max_attempts_and_requeues_one_below(sessions, settings, tmp_path):
    stale = utcnow() - timedelta(hours=1)
    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    capped = add_job(
        sessions, settings, status="running", attempts=3, heartbeat_at=stale, checkpoint_dir=str(checkpoint)
    )
    below = add_job(sessions, settings, status="running", attempts=2, heartbeat_at=stale)
    published: list[str] = []
    swept = reap(sessions, settings, published.append)
    assert below in swept and capped not in swept and capped not in published

    failed = read(sessions, capped)
    assert failed.status == "failed" and failed.finished_at is not None and failed.attempts == 3
    assert "max_attempts = 3" in failed.error["reason"] and "3 attempts" in failed.error["reason"]
    assert failed.history[-1]["outcome"] == "lost" and len(failed.history) == 3
    assert not checkpoint.exists()
    requeued = read(sessions, below)
    assert requeued.status == "queued" and requeued.error is None
    assert requeued.history[-1]["outcome"] == "lost"

    # the next sweep leaves both alone
    assert not {capped, below} & set(reap(sessions, settings, published.append))
    assert read(sessions, capped).status == "failed"


def test_a_redelivered_message_of_a_job_lost_after_max_attempts_fails_it(sessions, settings):
    """The message of a job whose worker died comes back (visibility timeout) before any reaper ran."""
    job_id = add_job(
        sessions, settings, status="running", attempts=3, heartbeat_at=utcnow() - timedelta(hours=1)
    )
    assert run_job(job_id, sessions, settings=settings, worker="test") == "failed"
    job = read(sessions, job_id)
    assert job.attempts == 3 and "max_attempts = 3" in job.error["reason"]
    assert job.history[-1]["outcome"] == "lost"


def test_a_job_that_lost_its_attempt_to_a_process_restart_is_capped_too(sessions, settings):
    """An embedded restart puts a ``running`` job back to ``queued`` without an outcome: that attempt
    was lost, and at the cap the claim fails the job."""
    job_id = add_job(sessions, settings, status="queued", attempts=3)
    assert run_job(job_id, sessions, settings=settings, worker="test") == "failed"
    assert "max_attempts = 3" in read(sessions, job_id).error["reason"]


def test_a_fresh_running_job_at_the_cap_is_left_to_its_worker(sessions, settings):
    job_id = add_job(sessions, settings, status="running", attempts=3, heartbeat_at=utcnow())
    assert run_job(job_id, sessions, settings=settings, worker="duplicate") == "running"
    assert job_id not in reap(sessions, settings, lambda _: None)
    job = read(sessions, job_id)
    assert job.status == "running" and job.error is None


def test_gracefully_requeued_attempts_are_not_lost_ones(sessions, settings):
    """Three attempts each requeued by a worker's shutdown: the job is claimed again (here it fails at
    once on its dataset, which shows the claim happened: a fourth attempt with the dataset's error)."""
    history = [{"attempt": n + 1, "worker": "w", "outcome": "requeued"} for n in range(3)]
    job_id = add_job(
        sessions, settings, status="queued", attempts=3, history=history, spec={**TINY_JOB, "dataset": "nope"}
    )
    assert run_job(job_id, sessions, settings=settings, worker="test") == "failed"
    job = read(sessions, job_id)
    assert job.attempts == 4 and job.error["field"].startswith("dataset"), job.error
