"""Set-up shared by the server benchmarks (``api_load.py``, ``job_list.py``, ``soak.py``,
``studies_load.py``): a throw-away PostgreSQL database, a ``taskgrouper serve`` on it, free ports and
seeded jobs."""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import psycopg
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from service.db import transaction
from service.migrate import upgrade
from service.models import Job, NetworkTable, utcnow

ROOT = Path(__file__).resolve().parent.parent
#: seconds a started server may take to answer ``/readyz``
READY_SECONDS = 60.0


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """``--database-url`` (a PostgreSQL server where a throw-away database may be created) and
    ``--redis-url``, the options every server benchmark takes."""
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "TASKGROUPER_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
        help="a PostgreSQL server where a throw-away database may be created",
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")


@dataclass(frozen=True)
class Database:
    """A throw-away database: its SQLAlchemy ``url``, its ``name``, and ``admin_url`` (libpq form) of
    its server for queries about it (``pg_stat_activity``)."""

    url: str
    name: str
    admin_url: str
    tag: str


@contextmanager
def throwaway_database(server_url: str) -> Iterator[Database]:
    """Create a uniquely named database on ``server_url``'s server, migrate it to the newest schema,
    yield it, and drop it (forcibly, whatever still connects) afterwards."""
    tag = uuid.uuid4().hex[:8]
    name = f"taskgrouper_bench_{tag}"
    admin_url = make_url(server_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield Database(url, name, admin_url, tag)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def server_env(database: Database, redis_url: str, home: str, **extra: str) -> dict[str, str]:
    """The environment of a server or worker on ``database``: this process's environment without its
    ``TASKGROUPER_*`` settings, then the database, broker, home, a training queue of the database's own
    and a rate limit that is never reached, then ``extra``."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("TASKGROUPER_")},
        "TASKGROUPER_DATABASE_URL": database.url,
        "TASKGROUPER_BROKER_URL": redis_url,
        "TASKGROUPER_HOME": home,
        "TASKGROUPER_TRAINING_QUEUE": f"bench-training-{database.tag}",
        "TASKGROUPER_RATE_LIMIT_REQUESTS": "100000000",  # counted in Redis, never reached
        **extra,
    }


def wait_ready(base: str, seconds: float, server: subprocess.Popen | None = None) -> None:
    """Return once ``base``'s ``/readyz`` answers 200; ``TimeoutError`` after ``seconds``, or as soon as
    ``server`` (the process serving it, if given) has exited."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or (server is not None and server.poll() is not None):
            raise TimeoutError(f"the API at {base} did not become ready")
        time.sleep(0.1)


@contextmanager
def serving(env: dict[str, str], workers: int = 1, quiet: bool = True) -> Iterator[tuple[str, int]]:
    """Run ``taskgrouper serve`` with ``workers`` uvicorn workers in ``env`` on a free port; yield its
    base URL and process id once ``/readyz`` answers 200 (:func:`wait_ready`, ``TimeoutError`` after
    :data:`READY_SECONDS`), and stop it afterwards."""
    port = free_port()
    command = [sys.executable, "-m", "service.cli", "serve", "--port", str(port)]
    if workers > 1:
        command += ["--workers", str(workers)]
    output = subprocess.DEVNULL if quiet else None
    server = subprocess.Popen(command, env=env, cwd=ROOT, stdout=output, stderr=output)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, READY_SECONDS, server)
        yield base, server.pid
    finally:
        server.terminate()
        server.wait(timeout=30)


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def seed_succeeded_job(sessions: sessionmaker[Session], project: str, label: str, n_tasks: int = 10) -> str:
    """A succeeded job of ``project`` with a random ``n_tasks`` affinity table (what a finished run stores),
    so that ``GET /groupings`` on it reads a stored solve; returns the job id."""
    rng = np.random.default_rng(0)
    problem = {
        "tasks": [f"t{i}" for i in range(n_tasks)],
        "objective": "max_affinity",
        "singletons": "forbid",
        "network_cost": 1.0,
        "affinity": {"onto_row_from_column": rng.normal(0.0, 0.05, (n_tasks, n_tasks)).tolist()},
    }
    with transaction(sessions) as session:
        now = utcnow()
        job = Job(
            project=project,
            status="succeeded",
            spec={"dataset": "synthetic", "methods": ["tag"]},
            spec_hash=label,
            cancel_requested=False,
            progress_fraction=1.0,
            attempts=1,
            created_at=now,
            started_at=now,
            finished_at=now,
            run_seconds=1.0,
        )
        session.add(job)
        session.flush()
        session.add(NetworkTable(job_id=job.id, method="tag", singletons="forbid", problem=problem))
        return job.id
