"""The job runner on the embedded stack: bad input fails the job naming the field, cancel stops a
running job, a finished job is never rerun, a redelivered running job reruns without duplicates."""

from __future__ import annotations

import time
from datetime import timedelta

from conftest import TINY_JOB
from sqlalchemy import func, select

from service.client import TaskgrouperClient
from service.db import transaction
from service.models import AffinityResult, Job, NetworkTable, utcnow
from worker.runner import run_job


def wait_for(client: TaskgrouperClient, job_id: str, predicate, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while not predicate(job := client.job(job_id)):
        assert time.monotonic() < deadline, job
        time.sleep(0.1)
    return job


def test_bad_dataset_fails_the_job_with_the_field(embedded_client):
    client = TaskgrouperClient(http=embedded_client)
    csv = "x1,x2,flag,size\n" + "\n".join(f"{i},{i % 5},1,{i * 0.5}" for i in range(200))
    dataset = client.http.post("/datasets", files={"file": ("const.csv", csv.encode())}).json()
    job = client.submit_job(
        dataset["id"],
        tasks=[{"name": "flag", "type": "binary"}, {"name": "size", "type": "regression"}],
        training={"epochs": 1},
    )
    failed = client.wait(job.id, timeout=120, check=False)
    assert failed.status == "failed" and failed.error.field and "flag" in failed.error.reason, failed.error
    assert (
        client.http.get("/groupings", params={"job_id": job.id, "budget": 2}).json()["job_status"] == "failed"
    )


def test_cancel_stops_a_running_job(embedded_client):
    client = TaskgrouperClient(http=embedded_client)
    job = client.submit_job(**{**TINY_JOB, "training": {"epochs": 200, "batch_size": 128, "patience": 0}})
    wait_for(client, job.id, lambda j: j.status == "running" and (j.progress.step or 0) > 0)
    assert client.cancel(job.id).cancel_requested
    cancelled = wait_for(client, job.id, lambda j: j.status != "running", timeout=30)
    assert cancelled.status == "cancelled" and cancelled.progress.fraction < 1
    with embedded_client.app.state.session_factory() as session:
        assert (
            session.scalar(
                select(func.count()).select_from(AffinityResult).where(AffinityResult.job_id == job.id)
            )
            == 0
        )


def test_finished_job_is_not_rerun_and_redelivery_does_not_duplicate(embedded_client):
    client = TaskgrouperClient(http=embedded_client)
    job = client.wait(client.submit_job(**TINY_JOB).id, timeout=120)
    sessions = embedded_client.app.state.session_factory
    settings = embedded_client.app.state.settings
    assert run_job(job.id, sessions, settings=settings) == "succeeded"
    assert client.job(job.id).attempts == 1
    with transaction(sessions) as session:  # as if the worker had died and the message came back
        row = session.get(Job, job.id)
        row.status, row.heartbeat_at = "running", utcnow() - timedelta(seconds=settings.stale_after + 1)
    assert run_job(job.id, sessions, settings=settings) == "succeeded"
    assert client.job(job.id).attempts == 2
    with sessions() as session:
        for table in (AffinityResult, NetworkTable):
            counts = session.execute(
                select(table.method, func.count()).where(table.job_id == job.id).group_by(table.method)
            ).all()
            assert counts and all(n == 1 if table is AffinityResult else n <= 2 for _, n in counts), counts
