"""Deleting jobs, and jobs racing the deletion of their dataset — in both modes (embedded SQLite;
server PostgreSQL + Redis) and with a real Celery worker:

* ``DELETE /jobs/{id}`` removes the row, its results (affinity rows, network tables, groupings, by
  the foreign keys' cascade) and its checkpoint folder → 204; a queued job is deleted at once (a
  worker receiving its message later finds nothing to do); a running job is asked to cancel and
  answers 409 until it has stopped, then 204; another project's job is a 404 and stays;
* a job submitted while its uploaded dataset is deleted (the insert loses the race to the delete)
  is a 422 naming ``dataset``, not a 500, and leaves no row;
* a job asked to cancel before a worker claims it (queued, or left running by a dead worker) is set
  ``cancelled`` at claim time and its checkpoint folder removed; one another worker is running
  with a fresh heartbeat is left to that worker.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import TINY_JOB
from sqlalchemy import func, select
from test_fault_worker import (  # noqa: F401  (fixtures)
    api,
    fault_settings,
    processes,
    start_worker,
    wait_for,
)
from test_service_api import PROBLEM, add_job, assert_problem

from service import jobs as job_service
from service.client import ApiError
from service.datasets import delete_dataset
from service.db import transaction
from service.models import AffinityResult, Grouping, Job, NetworkTable, utcnow
from worker.runner import run_job

pytestmark = [pytest.mark.services]

CSV = b"x,label\n" + b"\n".join(f"{i * 0.5},{i % 2}".encode() for i in range(20)) + b"\n"
RESULT_TABLES = (AffinityResult, NetworkTable, Grouping)


def results(client: Any, job_id: str) -> dict[str, int]:
    """Rows of each result table that belong to ``job_id``."""
    with client.app.state.session_factory() as session:
        return {
            table.__tablename__: session.scalar(
                select(func.count()).select_from(table).where(table.job_id == job_id)
            )
            for table in RESULT_TABLES
        }


def checkpoint(client: Any, job_id: str) -> Path:
    """A checkpoint folder of ``job_id`` where workers put it, with a file in it, recorded on the row."""
    folder = client.app.state.settings.checkpoints_dir / job_id
    folder.mkdir(parents=True)
    (folder / "checkpoint.pt").write_bytes(b"epochs")
    with transaction(client.app.state.session_factory) as session:
        session.get(Job, job_id).checkpoint_dir = str(folder)
    return folder


def add_results(client: Any, job_id: str) -> None:
    """An affinity row and a stored grouping besides the network table :func:`add_job` adds."""
    with transaction(client.app.state.session_factory) as session:
        session.add(
            AffinityResult(
                job_id=job_id, method="tag", tasks=PROBLEM["tasks"], matrix=[[0.0]], trajectory=[], meta={}
            )
        )
    response = client.get("/groupings", params={"job_id": job_id, "budget": 2})
    assert response.status_code == 200, response.text
    assert results(client, job_id) == {"affinity_results": 1, "network_tables": 1, "groupings": 1}


def exists(client: Any, job_id: str) -> bool:
    with client.app.state.session_factory() as session:
        return session.get(Job, job_id) is not None


# --- DELETE /jobs/{id} --------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["succeeded", "failed", "cancelled"])
def test_delete_removes_a_finished_job_its_results_and_checkpoints(api_client, status):
    job = add_job(api_client, status)
    if status == "succeeded":
        add_results(api_client, job)
    folder = checkpoint(api_client, job)
    response = api_client.delete(f"/jobs/{job}")
    assert response.status_code == 204 and response.content == b""
    assert not exists(api_client, job) and not folder.exists()
    assert results(api_client, job) == {"affinity_results": 0, "network_tables": 0, "groupings": 0}
    assert_problem(api_client.get(f"/jobs/{job}"), 404, "job_id")
    assert_problem(api_client.get("/groupings", params={"job_id": job, "budget": 2}), 404)
    assert_problem(api_client.delete(f"/jobs/{job}"), 404, "job_id")


def test_delete_removes_a_queued_job_at_once(api_client):
    job = add_job(api_client, "queued")
    assert api_client.delete(f"/jobs/{job}").status_code == 204
    assert not exists(api_client, job)
    # a worker that receives the job's message afterwards finds nothing to run
    settings = api_client.app.state.settings
    assert run_job(job, api_client.app.state.session_factory, settings=settings) == "missing"


def test_a_running_job_is_asked_to_cancel_and_deleted_once_stopped(api_client):
    job = add_job(api_client, "running")
    folder = checkpoint(api_client, job)
    body = assert_problem(api_client.delete(f"/jobs/{job}"), 409, "job_id")
    assert body["job_status"] == "running" and "cancel" in body["detail"] and "retry" in body["detail"]
    state = api_client.get(f"/jobs/{job}").json()
    assert state["status"] == "running" and state["cancel_requested"] is True
    assert folder.exists()  # its worker may still be writing there
    with transaction(api_client.app.state.session_factory) as session:  # what its worker does next
        session.get(Job, job).status = "cancelled"
    assert api_client.delete(f"/jobs/{job}").status_code == 204
    assert not exists(api_client, job) and not folder.exists()


def test_another_projects_job_is_404_and_stays(api_client):
    job = add_job(api_client, "succeeded")
    with transaction(api_client.app.state.session_factory) as session:
        session.get(Job, job).project = "someone-else"
    assert_problem(api_client.delete(f"/jobs/{job}"), 404, "job_id")
    assert exists(api_client, job)
    assert results(api_client, job)["network_tables"] == 1


def test_delete_is_in_the_schema_and_the_client(api_client):
    operation = api_client.get("/openapi.json").json()["paths"]["/jobs/{job_id}"]["delete"]
    assert {"204", "404", "409"} <= set(operation["responses"])
    job = add_job(api_client, "succeeded")
    from service.client import TaskgrouperClient

    client = TaskgrouperClient(http=api_client)
    client.delete_job(job)
    with pytest.raises(ApiError) as missing:
        client.delete_job(job)
    assert missing.value.status == 404


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_deleting_a_job_a_real_worker_runs(api, start_worker, processes):  # noqa: F811
    worker = start_worker()
    long = {**TINY_JOB, "training": {"epochs": 200, "batch_size": 128, "patience": 0, "every": 5}}
    job = api.submit_job(**long)
    wait_for(api, job.id, lambda j: j.status == "running" and (j.progress.step or 0) > 0, processes, [worker])
    with pytest.raises(ApiError) as refused:
        api.delete_job(job.id)
    assert refused.value.status == 409 and api.job(job.id).cancel_requested
    stopped = wait_for(api, job.id, lambda j: j.status != "running", processes, [worker])
    assert stopped.status == "cancelled" and stopped.progress.fraction < 0.5, stopped
    api.delete_job(job.id)
    with pytest.raises(ApiError) as gone:
        api.job(job.id)
    assert gone.value.status == 404
    assert not (api.http.app.state.settings.checkpoints_dir / job.id).exists()


# --- a job submitted while its dataset is deleted -----------------------------------------------------


def test_a_job_whose_dataset_is_deleted_while_it_is_submitted_is_a_422(api_client, monkeypatch):
    response = api_client.post("/datasets", files={"file": ("t.csv", CSV)})
    assert response.status_code == 201, response.text
    dataset = response.json()["id"]
    settings = api_client.app.state.settings
    sessions = api_client.app.state.session_factory
    checked = job_service.resolve_dataset

    def checked_then_deleted(*args: Any, **kwargs: Any) -> str | None:
        """The dataset passes its checks, then is deleted before the job's row is inserted."""
        found = checked(*args, **kwargs)
        delete_dataset(sessions, dataset, settings.default_project, uploads=settings.datasets_dir)
        return found

    monkeypatch.setattr(job_service, "resolve_dataset", checked_then_deleted)
    body = {"dataset": dataset, "tasks": [{"name": "label", "type": "binary"}], "features": ["x"]}
    reply = api_client.post("/jobs", json=body)
    problem = assert_problem(reply, 422, "dataset")
    assert "no longer exists" in problem["reason"]
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Job).where(Job.dataset_id == dataset)) == 0
    monkeypatch.undo()
    assert_problem(api_client.post("/jobs", json=body), 422, "dataset")  # and later, as any unknown id


# --- cancelled at claim time ----------------------------------------------------------------------------


def _interrupted(client: Any, status: str, *, heartbeat_age: float) -> tuple[str, Path]:
    """A job asked to cancel after an attempt left its checkpoint: ``status`` with a heartbeat this
    many seconds old."""
    job = add_job(client, status)
    folder = checkpoint(client, job)
    with transaction(client.app.state.session_factory) as session:
        row = session.get(Job, job)
        row.attempts, row.cancel_requested = 1, True
        row.heartbeat_at = utcnow() - timedelta(seconds=heartbeat_age)
        row.history = [{"attempt": 1, "worker": "gone@host"}]
    return job, folder


@pytest.mark.parametrize("status", ["queued", "running"])
def test_a_job_cancelled_at_claim_time_loses_its_checkpoint_folder(api_client, status):
    settings = api_client.app.state.settings
    job, folder = _interrupted(api_client, status, heartbeat_age=settings.stale_after * 2)
    assert run_job(job, api_client.app.state.session_factory, settings=settings) == "cancelled"
    state = api_client.get(f"/jobs/{job}").json()
    assert state["status"] == "cancelled" and state["timings"]["finished_at"]
    assert not folder.exists()


def test_a_job_another_worker_runs_is_left_to_it(api_client):
    settings = api_client.app.state.settings
    job, folder = _interrupted(api_client, "running", heartbeat_age=0.0)
    assert run_job(job, api_client.app.state.session_factory, settings=settings) == "running"
    assert api_client.get(f"/jobs/{job}").json()["status"] == "running"
    assert folder.exists()


def test_cancelling_a_queued_job_removes_an_earlier_attempts_checkpoint(api_client):
    job = add_job(api_client, "queued")
    folder = checkpoint(api_client, job)  # an earlier attempt's, stopped and requeued
    with transaction(api_client.app.state.session_factory) as session:
        session.get(Job, job).attempts = 1
    assert api_client.post(f"/jobs/{job}/cancel").json()["status"] == "cancelled"
    assert not folder.exists()
