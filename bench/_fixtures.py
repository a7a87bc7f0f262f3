"""Set-up shared by the server benchmarks (``api_load.py``, ``soak.py``)."""

from __future__ import annotations

import socket

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from service.db import transaction
from service.models import Job, NetworkTable, utcnow


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
