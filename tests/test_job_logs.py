"""Job logs and worker liveness: a job's log is bounded per attempt (warnings keep a reserve and the
drops are noted), readable only by the job's project, pageable with ``after``; a real Celery worker
shows in ``taskgrouper_workers_alive`` while it runs, idle, and leaves it when it stops."""

from __future__ import annotations

import logging
import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from child_processes import Processes, running_in
from conftest import make_key, stored_job
from fastapi.testclient import TestClient
from test_hardening_metrics import scrape, value
from test_hardening_server import wait_until
from test_hardening_workers import start_worker

from service.app import create_app
from service.db import make_engine, make_session_factory
from service.job_logs import MAX_MESSAGE_CHARS, JobLogHandler, clip, read_job_log
from service.logs import job_context
from service.migrate import upgrade

pytestmark = pytest.mark.services


@pytest.fixture
def sessions(embedded_settings):
    upgrade(embedded_settings.resolved_database_url)
    engine = make_engine(embedded_settings.resolved_database_url, pool_size=1)
    yield make_session_factory(engine)
    engine.dispose()


def test_an_attempt_stores_at_most_its_limit_and_keeps_warnings_in_a_reserve(embedded_settings, sessions):
    job_id = stored_job(sessions, embedded_settings.default_project, status="running")
    logger = logging.getLogger("test.job_logs")
    logger.setLevel(logging.INFO)
    handler = JobLogHandler(job_id, 1, sessions, limit=10)
    logger.addHandler(handler)
    try:
        with job_context(job_id, attempt=1, step="train"):
            for i in range(15):
                logger.info("line %d", i)
            logger.warning("the failure at the end")
            logger.warning("one warning too many")
            logger.info("x" * (3 * MAX_MESSAGE_CHARS))
        logger.info("outside the job: not stored")
    finally:
        logger.removeHandler(handler)
        handler.close()
    rows, more = read_job_log(sessions, job_id)
    messages = [r.message for r in rows]
    assert not more and messages[:10] == [f"line {i}" for i in range(10)]
    assert messages[10] == "5 entries of attempt 1 dropped: an attempt stores at most 10"
    assert messages[11] == "the failure at the end"
    assert rows[11].level == "WARNING" and rows[11].step == "train"
    assert messages[12] == "2 entries of attempt 1 dropped: an attempt stores at most 10"
    assert len(rows) == 13
    long = clip("x" * (3 * MAX_MESSAGE_CHARS))
    assert len(long) <= MAX_MESSAGE_CHARS and "characters cut" in long


def test_a_job_log_is_its_projects_and_pages_with_after(server_settings):
    with TestClient(create_app(server_settings)) as client:
        sessions = client.app.state.session_factory
        job_id = stored_job(sessions, server_settings.default_project, status="failed")
        handler = JobLogHandler(job_id, 1, sessions)
        for i in range(3):
            handler.handle(logging.makeLogRecord({"msg": f"entry {i}", "levelname": "INFO",
                                                  "levelno": logging.INFO, "job_id": job_id}))
        mine = {"Authorization": f"Bearer {make_key(server_settings, server_settings.default_project)}"}
        other = {"Authorization": f"Bearer {make_key(server_settings, 'another-project')}"}
        log = client.get(f"/jobs/{job_id}/logs", headers=mine).json()
        assert [e["message"] for e in log["entries"]] == ["entry 0", "entry 1", "entry 2"]
        first = log["entries"][0]["id"]
        newer = client.get(f"/jobs/{job_id}/logs", params={"after": first, "limit": 1}, headers=mine).json()
        assert [e["message"] for e in newer["entries"]] == ["entry 1"] and newer["more"]
        hidden = client.get(f"/jobs/{job_id}/logs", headers=other)
        assert hidden.status_code == 404 and hidden.json()["field"] == "job_id"
        assert client.get(f"/jobs/{job_id}/logs", params={"after": -1}, headers=mine).status_code == 422


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    yield from running_in(tmp_path)


@pytest.mark.slow
def test_an_idle_worker_is_alive_in_metrics_until_it_stops(server_settings, processes):
    tag = uuid.uuid4().hex[:8]  # queues of its own: no other test's worker beats into them
    settings = server_settings.model_copy(update={
        "training_queue": f"{server_settings.training_queue}-{tag}",
        "solve_queue": f"{server_settings.solve_queue}-{tag}",
        "heartbeat_interval": 0.5,
    })
    with TestClient(create_app(settings)) as client:
        queues = (settings.training_queue, settings.solve_queue)
        assert all(value(scrape(client), "taskgrouper_workers_alive", queue=q) == 0 for q in queues)
        worker = start_worker(processes, settings)
        wait_until(lambda: all(value(scrape(client), "taskgrouper_workers_alive", queue=q) == 1
                               for q in queues), 180, "the worker's presence")
        os.killpg(worker.pid, signal.SIGTERM)  # a clean shutdown leaves the sets
        worker.wait(timeout=120)
        assert all(value(scrape(client), "taskgrouper_workers_alive", queue=q) == 0 for q in queues)
