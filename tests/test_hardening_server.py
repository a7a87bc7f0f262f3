"""The API behind a real uvicorn server, and what operators see of failures:

* an unexpected error is a 500 problem response that leaves the keep-alive connection usable (the
  server used to close it without ``Connection: close``, so the client's next request was reset);
* a client that disconnects stops a curve's solving at the next budget;
* a job failing on bad input logs one structured line with its id, the field and the reason — also a
  job whose stored request no longer validates, which fails naming the field instead of with an
  internal error;
* ``taskgrouper worker`` gives every worker process its own node name.

Every wait polls the state it waits for (threads and events), never a fixed sleep.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from conftest import _client, make_key, stored_job
from fastapi import FastAPI
from sqlalchemy import func, select

from grouping.selection import solve
from service import groupings
from service.app import create_app
from service.db import make_engine, make_session_factory, transaction
from service.jobs import create_job
from service.migrate import upgrade
from service.models import Grouping, Job, utcnow
from service.routes import groupings as grouping_routes
from service.schemas import JobCreate
from service.settings import Settings
from worker.runner import run_job

pytestmark = [pytest.mark.services, pytest.mark.timeout(300)]

PROBLEM = {
    "tasks": ["a", "b", "c", "d"],
    "objective": "max_affinity",
    "affinity": {
        "onto_row_from_column": [
            [0.0, 0.5, -0.2, 0.1],
            [0.4, 0.0, 0.1, -0.3],
            [-0.1, 0.2, 0.0, 0.6],
            [0.0, -0.2, 0.7, 0.0],
        ]
    },
}


def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """``app`` on a real uvicorn server (a thread of this process, an ephemeral port): its base URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started or not thread.is_alive(), 120, "uvicorn to start")
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=60)


def local_port(response: httpx.Response) -> int:
    """The client-side port of the connection that carried ``response``."""
    return response.extensions["network_stream"].get_extra_info("client_addr")[1]


# --- a 500 keeps the connection ---------------------------------------------------------------------


def test_a_500_is_a_problem_response_and_the_connection_stays_usable(server_settings, caplog):
    app = create_app(server_settings)

    def broken() -> None:
        raise RuntimeError("an unexpected failure")

    app.add_api_route("/test-broken", broken)
    headers = {"Authorization": f"Bearer {make_key(server_settings, server_settings.default_project)}"}
    with serving(app) as url, httpx.Client(base_url=url, headers=headers) as client:
        caplog.set_level(logging.ERROR, logger="service.errors")
        failed = client.get("/test-broken")
        assert failed.status_code == 500
        assert failed.headers["content-type"].startswith("application/problem+json")
        assert failed.json()["detail"] == "internal error (RuntimeError); see the server log"
        assert "an unexpected failure" not in failed.text  # the details stay in the log
        assert failed.headers.get("connection", "").lower() != "close"
        # the next requests travel on the same connection, which the server kept open
        after = client.get("/jobs")
        assert after.status_code == 200, after.text
        again = client.get("/test-broken")
        assert again.status_code == 500 and client.get("/healthz").status_code == 200
        assert local_port(failed) == local_port(after) == local_port(again)
    logged = [r for r in caplog.records if r.name == "service.errors" and r.exc_info]
    assert logged and "an unexpected failure" in str(logged[0].exc_info[1])


# --- a client that goes away stops the solving -------------------------------------------------------


@pytest.fixture
def slow_solves(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Solves that report their calls and hold the first one until the server has noticed that its
    client disconnected; ``state["done"]`` is set when the request's solving block has ended."""
    state: dict[str, Any] = {"calls": [], "first": threading.Event(), "done": threading.Event(), "gone": []}
    watch = grouping_routes.client_watch

    @asynccontextmanager
    async def spied(request: Any) -> AsyncIterator[threading.Event]:
        try:
            async with watch(request) as gone:
                state["gone"].append(gone)
                yield gone
        finally:
            state["done"].set()

    def held(problem: Any, budget: float, **options: Any) -> Any:
        state["calls"].append(budget)
        if len(state["calls"]) == 1:
            state["first"].set()
            state["gone"][0].wait(120)
        return solve(problem, budget, **options)

    monkeypatch.setattr(grouping_routes, "client_watch", spied)
    monkeypatch.setattr(groupings, "solve", held)
    return state


def send_and_hang_up(url: str, request: bytes, state: dict[str, Any]) -> None:
    """Send a raw HTTP request, and close the connection once the first solve has begun."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(request)
        assert state["first"].wait(120), "the first solve never started"
    wait_until(state["done"].is_set, 120, "the request's solving to end")


def test_a_posted_curve_stops_when_the_client_disconnects(embedded_settings, slow_solves):
    body = json.dumps({"budgets": "2,2.5,3,3.5,4", "problem": PROBLEM}).encode()
    request = (
        b"POST /groupings HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    with serving(create_app(embedded_settings)) as url:
        send_and_hang_up(url, request, slow_solves)
    assert slow_solves["gone"][0].is_set()
    assert slow_solves["calls"] == [2.0]  # nothing solved after the client left


def test_a_job_curve_stops_when_the_client_disconnects_and_keeps_what_it_solved(
    embedded_settings, slow_solves
):
    app = create_app(embedded_settings)
    sessions = app.state.session_factory
    with serving(app) as url:
        job_id = stored_job(sessions, embedded_settings.default_project, problem=PROBLEM, attempts=1)
        request = f"GET /groupings?job_id={job_id}&budgets=2:4:0.5 HTTP/1.1\r\nHost: test\r\n\r\n".encode()
        send_and_hang_up(url, request, slow_solves)
    assert slow_solves["gone"][0].is_set() and slow_solves["calls"] == [2.0]
    with sessions() as session:
        kept = session.scalar(select(func.count()).select_from(Grouping).where(Grouping.job_id == job_id))
    assert kept == 1  # the budget solved before the client left is stored


# --- structured failure logs ---------------------------------------------------------------------------


@pytest.fixture(params=["sqlite-embedded", "postgres-server"])
def settings(request: pytest.FixtureRequest) -> Settings:
    return request.getfixturevalue(
        "embedded_settings" if request.param == "sqlite-embedded" else "server_settings"
    )


@pytest.fixture
def sessions(settings: Settings) -> Iterator[Any]:
    if settings.embedded:
        upgrade(settings.resolved_database_url)  # the app would at start-up
    engine = make_engine(settings.resolved_database_url, pool_size=1)
    yield make_session_factory(engine)
    engine.dispose()


def failure_lines(caplog: pytest.LogCaptureFixture, job_id: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "worker.runner" and getattr(r, "job_id", None) == job_id]


def test_a_job_failing_on_bad_input_logs_its_id_field_and_reason(settings, sessions, caplog):
    caplog.set_level(logging.WARNING, logger="worker.runner")
    body = JobCreate.model_validate({"dataset": "digits-attributes", "features": ["no-such-column"]})
    job, _ = create_job(sessions, body, project=settings.default_project)
    assert run_job(job.id, sessions, settings=settings, worker="test") == "failed"
    with sessions() as session:
        error = session.get(Job, job.id).error
    assert error["field"] == "dataset.features" and "no-such-column" in error["reason"]
    [record] = failure_lines(caplog, job.id)
    assert record.levelno == logging.WARNING
    assert record.field == "dataset.features" and record.reason == error["reason"]
    line = record.getMessage()
    assert line.startswith(f"job failed job_id={job.id} step=load_dataset field=dataset.features reason=")
    assert json.loads(line.split(" reason=", 1)[1]) == error["reason"] and "\n" not in line


def test_a_stored_request_that_no_longer_validates_fails_naming_the_field(settings, sessions, caplog):
    """A job accepted before seeds were bounded: the worker fails it on ``training.seed`` (it used to
    be an internal overflow error), and the API still shows it."""
    caplog.set_level(logging.WARNING, logger="worker.runner")
    with transaction(sessions) as session:
        job = Job(
            project=settings.default_project,
            status="queued",
            spec={"dataset": "synthetic", "training": {"seed": 10**30}},
            spec_hash="x",
            cancel_requested=False,
            progress_fraction=0.0,
            attempts=0,
            created_at=utcnow(),
        )
        session.add(job)
        session.flush()
        job_id = job.id
    assert run_job(job_id, sessions, settings=settings, worker="test") == "failed"
    with sessions() as session:
        error = session.get(Job, job_id).error
    assert error["field"] == "training.seed" and "internal error" not in error["reason"], error
    [record] = failure_lines(caplog, job_id)
    assert record.field == "training.seed"
    for client in _client(settings):
        shown = client.get(f"/jobs/{job_id}")
        assert shown.status_code == 200, shown.text
        assert shown.json()["error"]["field"] == "training.seed"


# --- worker names ---------------------------------------------------------------------------------------


def test_each_worker_process_gets_its_own_node_name(monkeypatch):
    from service.cli import main
    from service.commands import default_worker_name
    from worker.celery_app import app

    started: list[list[str]] = []
    monkeypatch.setattr(app, "worker_main", lambda argv: started.append(argv))
    monkeypatch.setenv("TASKGROUPER_BROKER_URL", "redis://127.0.0.1:6379/13")
    assert main(["worker", "--queues", "training,solve"]) == 0
    assert main(["worker", "--queues", "solve", "--name", "cpu-solver@%h"]) == 0
    first, named = started
    assert first[first.index("--hostname") + 1] == f"training-{os.getpid()}@%h"
    assert named[named.index("--hostname") + 1] == "cpu-solver@%h"
    assert default_worker_name("training", pid=11) != default_worker_name("training", pid=12)
