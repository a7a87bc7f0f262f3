"""Shared fixtures for the service tests: real PostgreSQL and Redis, isolated per test session.

* ``pg_url``: a database created for this session on the PostgreSQL server of
  ``TASKGROUPER_TEST_DATABASE_URL`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``),
  migrated to the latest revision, dropped at the end.
* ``redis_url``: Redis database 13 of ``TASKGROUPER_TEST_REDIS_URL`` (default
  ``redis://127.0.0.1:6379/13``), with queue names unique to the session so parallel runs never
  take each other's messages.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
import redis
from sqlalchemy.engine import make_url

from service.settings import Settings

PG_BASE = os.environ.get("TASKGROUPER_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TASKGROUPER_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
SESSION_TAG = uuid.uuid4().hex[:10]


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def _migrated_database(name: str) -> Iterator[str]:
    """Create PostgreSQL database ``name`` beside ``PG_BASE``'s, migrate it, yield its URL, drop it."""
    from service.migrate import upgrade

    with psycopg.connect(_libpq(PG_BASE), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = make_url(PG_BASE).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield url
    finally:
        with psycopg.connect(_libpq(PG_BASE), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test session."""
    with _migrated_database(f"taskgrouper_test_{SESSION_TAG}") as url:
        yield url


@pytest.fixture
def private_db() -> Iterator[str]:
    """A migrated PostgreSQL database of this test alone (dropped at the end)."""
    with _migrated_database(f"taskgrouper_test_{SESSION_TAG}_{uuid.uuid4().hex[:8]}") as url:
        yield url


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The test Redis database (keys of this session's queues removed at the end)."""
    client = redis.Redis.from_url(REDIS_URL)
    client.ping()
    yield REDIS_URL
    for key in client.scan_iter(match=f"*{SESSION_TAG}*"):
        client.delete(key)
    client.close()


@pytest.fixture
def server_settings(pg_url: str, redis_url: str, tmp_path: Path) -> Settings:
    """Server mode: PostgreSQL + Redis, queues private to this test session."""
    return Settings(
        home=tmp_path / "home",
        database_url=pg_url,
        broker_url=redis_url,
        training_queue=f"training-{SESSION_TAG}",
        solve_queue=f"solve-{SESSION_TAG}",
        progress_interval=0.2,
        default_project=f"test-{uuid.uuid4().hex[:12]}",
    )


@pytest.fixture
def embedded_settings(tmp_path: Path) -> Settings:
    """Embedded mode: SQLite under a temporary home, in-process runner."""
    return Settings(home=tmp_path / "home", database_url=None, broker_url=None, progress_interval=0.2)


@pytest.fixture
def embedded_client(embedded_settings: Settings) -> Iterator:
    """A test client of the embedded app (lifespan run: schema migrated, executor started)."""
    yield from _client(embedded_settings)


@pytest.fixture(params=["sqlite-embedded", "postgres-server"])
def api_client(request: pytest.FixtureRequest) -> Iterator:
    """A test client of the app in each mode: embedded (SQLite, in-process runner) and server
    (PostgreSQL, jobs published to Redis; no worker consumes them here)."""
    name = "embedded_settings" if request.param == "sqlite-embedded" else "server_settings"
    yield from _client(request.getfixturevalue(name))


def _client(settings: Settings) -> Iterator:
    """A started test client; in server mode it carries an API key of ``settings.default_project``."""
    from fastapi.testclient import TestClient

    from service.app import create_app

    with TestClient(create_app(settings)) as client:
        if settings.auth_required:
            client.headers["Authorization"] = f"Bearer {make_key(settings, settings.default_project)}"
        yield client


def make_key(settings: Settings, project: str) -> str:
    """A new API key of ``project`` in the database of ``settings``."""
    from service.auth import create_api_key
    from service.db import make_engine, make_session_factory

    engine = make_engine(settings.resolved_database_url, pool_size=1)
    try:
        return create_api_key(make_session_factory(engine), project)[1]
    finally:
        engine.dispose()


def service_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a child process use ``settings`` (database, broker, queues, and the
    timing and limit settings the reliability and hardening tests change)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKGROUPER_")}
    env.update(
        {
            "TASKGROUPER_HOME": str(settings.home),
            "TASKGROUPER_DATABASE_URL": settings.resolved_database_url,
            "TASKGROUPER_TRAINING_QUEUE": settings.training_queue,
            "TASKGROUPER_SOLVE_QUEUE": settings.solve_queue,
            "TASKGROUPER_PROGRESS_INTERVAL": str(settings.progress_interval),
            "TASKGROUPER_HEARTBEAT_INTERVAL": str(settings.heartbeat_interval),
            "TASKGROUPER_STALE_AFTER": str(settings.stale_after),
            "TASKGROUPER_REAP_INTERVAL": str(settings.reap_interval),
            "TASKGROUPER_REQUEUE_QUEUED_AFTER": str(settings.requeue_queued_after),
            "TASKGROUPER_MAX_ATTEMPTS": str(settings.max_attempts),
            "TASKGROUPER_SOLVE_TIME_LIMIT": str(settings.solve_time_limit),
            "TASKGROUPER_MAX_BUDGETS": str(settings.max_budgets),
            "TASKGROUPER_REQUEST_SOLVE_SECONDS": str(settings.request_solve_seconds),
        }
    )
    if settings.broker_url:
        env["TASKGROUPER_BROKER_URL"] = settings.broker_url
    return env


#: a job small enough for end-to-end tests: one epoch of a tiny MLP on a built-in dataset
def stored_job(sessions, project: str, *, status: str = "succeeded", problem: dict | None = None,
               attempts: int = 0, **fields) -> str:
    """The id of a job row stored directly (no training): the ``tag`` method of ``synthetic``, with a
    ``forbid`` network table holding ``problem`` when one is given."""
    from service.db import transaction
    from service.models import Job, NetworkTable, utcnow

    with transaction(sessions) as session:
        job = Job(project=project, status=status, spec={"dataset": "synthetic", "methods": ["tag"]},
                  spec_hash="x", cancel_requested=False,
                  progress_fraction=1.0 if status == "succeeded" else 0.0, attempts=attempts,
                  created_at=utcnow(), **fields)
        session.add(job)
        session.flush()
        if problem is not None:
            session.add(NetworkTable(job_id=job.id, method="tag", singletons="forbid", problem=problem))
        return job.id


TINY_JOB = {
    "dataset": "digits-attributes",
    "methods": ["tag"],
    "model": {"hidden_units": 16, "hidden_layers": 1, "representation": 8},
    "training": {"epochs": 1, "batch_size": 128},
}


@pytest.fixture
def job_flow():
    """The acceptance flow, through the Python client: submit → wait → groupings at budget 2, which
    must equal solving the job's stored affinity matrix directly. Returns the finished job."""
    from grouping.problem import parse_problem
    from grouping.selection import solve

    def flow(client) -> object:
        job = client.submit_job(**TINY_JOB)
        assert job.status in ("queued", "running") and job.links["self"] == f"/jobs/{job.id}"
        done = client.wait(job.id, timeout=240, poll=0.25)
        assert done.progress.fraction == 1.0 and done.error is None and done.device
        assert done.timings.started_at and done.timings.run_seconds > 0 and done.attempts == 1
        affinity = client.affinity(job.id)
        tag = affinity["methods"]["tag"]
        assert len(tag["trajectory"]) == 1 and tag["metadata"]["epochs"] == 1
        problem = {
            "tasks": affinity["tasks"],
            "objective": "max_affinity",
            "singletons": "forbid",
            "affinity": {"onto_row_from_column": tag["onto_row_from_column"]},
            "network_cost": 1.0,
            "half_singletons": True,  # as the runner stores every affinity table
        }
        direct = solve(parse_problem(problem), 2.0).to_dict()
        grouping = client.groupings(job.id, 2)
        assert grouping.status == "optimal"
        assert grouping.objective == pytest.approx(direct["objective"], rel=1e-9, abs=1e-12)
        assert [n.model_dump() for n in grouping.networks] == direct["networks"]
        assert grouping.per_task == pytest.approx(direct["per_task"])
        assert client.groupings(job.id, 2).stored
        return done

    return flow
