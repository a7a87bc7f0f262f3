"""Results are stored as standard JSON on PostgreSQL, and a result that cannot be stored fails the job.

An epoch in which no step was measured has a NaN trajectory point; PostgreSQL's JSON types refuse the
``NaN`` token, so storing that run used to raise out of the runner and leave the job ``running`` for
the reaper to rerun forever. Run with the real runner on the real PostgreSQL database of the session.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
from conftest import TINY_JOB, _client
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from service.db import make_engine, make_session_factory
from service.jobs import create_job
from service.jsonsafe import json_safe
from service.models import AffinityResult, Job, NetworkTable
from service.schemas import JobCreate
from service.settings import Settings
from worker import runner
from worker.runner import run_job

pytestmark = [pytest.mark.services, pytest.mark.timeout(300)]

#: digits-attributes has 1258 training rows: batches of 210 make 6 steps per epoch (steps 0–5, 6–11,
#: 12–17), and with a measurement every 10th step (0 and 10) the third epoch measures nothing
NAN_EPOCH_JOB = {**TINY_JOB, "training": {"epochs": 3, "batch_size": 210, "every": 10, "patience": 0}}


def test_json_safe_turns_non_finite_numbers_into_null() -> None:
    value = {
        "matrix": np.array([[1.0, np.nan], [np.inf, -np.inf]], dtype=np.float32),
        "tensor": torch.tensor([float("nan"), 2.0]),
        "scalars": (np.float64("nan"), np.int64(3), np.bool_(True), 1.5, float("-inf")),
        1: {"nested": [np.float32(0.25), None, "text", {2.0}]},
    }
    safe = json_safe(value)
    assert safe == {
        "matrix": [[1.0, None], [None, None]],
        "tensor": [None, 2.0],
        "scalars": [None, 3, True, 1.5, None],
        "1": {"nested": [0.25, None, "text", [2.0]]},
    }
    assert json.loads(json.dumps(safe, allow_nan=False)) == safe
    assert type(json_safe(np.float64(2.0))) is float
    with pytest.raises(TypeError):
        json_safe(object())


@pytest.fixture
def sessions(server_settings: Settings) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(server_settings.resolved_database_url, pool_size=2)
    yield make_session_factory(engine)
    engine.dispose()


def new_job(sessions: sessionmaker[Session], settings: Settings, body: dict[str, Any]) -> str:
    """A queued job row (no message published: the test runs it itself)."""
    job, created = create_job(sessions, JobCreate.model_validate(body), project=settings.default_project)
    assert created
    return job.id


def test_a_trajectory_with_an_unmeasured_epoch_is_stored_with_null_on_postgres(sessions, server_settings):
    job_id = new_job(sessions, server_settings, NAN_EPOCH_JOB)
    assert run_job(job_id, sessions, settings=server_settings, worker="test") == "succeeded"
    with sessions() as session:
        job = session.get(Job, job_id)
        assert job.status == "succeeded" and job.error is None and job.progress_fraction == 1.0
        row = session.scalar(select(AffinityResult).where(AffinityResult.job_id == job_id))
        tables = session.scalar(
            select(func.count()).select_from(NetworkTable).where(NetworkTable.job_id == job_id)
        )
    trajectory = row.trajectory
    assert len(trajectory) == 3
    # the third epoch had no measured step: its point is null, the measured ones are numbers
    assert all(v is None for r in trajectory[2] for v in r), trajectory[2]
    assert all(isinstance(v, float) and math.isfinite(v) for r in trajectory[0] for v in r)
    assert all(isinstance(v, float) for r in row.matrix for v in r) and tables >= 1
    # the API serves the stored document as standard JSON
    for http in _client(server_settings):
        response = http.get(f"/jobs/{job_id}/affinity")
        assert response.status_code == 200, response.text
        assert response.json()["methods"]["tag"]["trajectory"][2][0][0] is None
        assert "NaN" not in response.text
        grouping = http.get("/groupings", params={"job_id": job_id, "budget": 2})
        assert grouping.status_code == 200 and grouping.json()["status"] == "optimal", grouping.text


def test_results_that_cannot_be_stored_fail_the_job_with_the_reason(sessions, server_settings, monkeypatch):
    """A document the database write refuses (NaN no longer can be: the engines' JSON serializer
    writes null; here a value that is not JSON data at all, which the serializer rejects at the
    write): the attempt must end the job ``failed`` naming why, with nothing half-written, rather
    than leave it ``running``."""

    def unstorable(value: Any) -> Any:  # every document the runner writes gains a non-JSON member
        safe = json_safe(value)
        return {**safe, "unstorable": complex(1, 2)} if isinstance(safe, dict) else safe

    monkeypatch.setattr(runner, "json_safe", unstorable)
    job_id = new_job(sessions, server_settings, NAN_EPOCH_JOB)
    assert run_job(job_id, sessions, settings=server_settings, worker="test") == "failed"
    with sessions() as session:
        job = session.get(Job, job_id)
        stored = session.scalar(
            select(func.count()).select_from(AffinityResult).where(AffinityResult.job_id == job_id)
        )
    assert job.status == "failed" and job.finished_at is not None, job.status
    assert job.error["reason"].startswith("the results could not be stored"), job.error
    assert "json" in job.error["reason"].lower(), job.error
    assert job.history[-1]["outcome"] == "failed" and job.attempts == 1
    assert stored == 0
    # a message delivered again finds the job finished and does not rerun it
    assert run_job(job_id, sessions, settings=server_settings, worker="test") == "failed"
