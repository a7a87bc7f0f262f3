"""Latency of the job list (``GET /jobs``, which the dashboard's job list pages through) with 10,000
jobs in PostgreSQL, in server mode over loopback.

Creates a throw-away PostgreSQL database, stores ``--jobs`` jobs of one project (statuses mixed as a
busy project's: mostly succeeded, some failed, cancelled, queued and running; created over a month)
and as many of another project (so that the project filter matters), starts ``taskgrouper serve``
(1 uvicorn worker, Redis for the rate limiter), and walks every page of the list one request at a
time, following the ``next`` links, ``--repeat`` times: unfiltered and per status, at the dashboard's
page size (50) and at 100; then the largest page (limit 500) and the dashboard's page itself. It
prints p50, p99 and the largest latency per walk, and the CPU time per request of the API process and of
the PostgreSQL backends serving it (what a request costs whatever else the machine runs), and writes
a Markdown report (``--out``). Target: p99 < 100 ms per page.

    nice python3 bench/job_list.py [--jobs 10000] [--repeat 3] [--out bench/results/job_list.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory

import httpx
import numpy as np
import psycopg
from sqlalchemy import insert

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _fixtures import add_server_arguments, server_env, serving, throwaway_database  # noqa: E402

from service.auth import create_api_key  # noqa: E402
from service.db import make_engine, make_session_factory, transaction  # noqa: E402
from service.models import Job  # noqa: E402

PROJECT = "bench"
#: share of each status among the seeded jobs
STATUS_MIX = {"succeeded": 0.70, "failed": 0.10, "cancelled": 0.05, "queued": 0.10, "running": 0.05}
TARGET_MS = 100.0


def seed(sessions, project: str, count: int, rng: np.random.Generator) -> None:
    """``count`` jobs of ``project`` with the statuses of :data:`STATUS_MIX`, created over 30 days."""
    now = datetime.now(UTC)
    statuses = rng.choice(list(STATUS_MIX), size=count, p=list(STATUS_MIX.values()))
    rows = []
    for i, status in enumerate(statuses):
        created = now - timedelta(seconds=float(rng.uniform(0, 30 * 86400)))
        finished = status in ("succeeded", "failed", "cancelled")
        rows.append(
            {
                "id": str(uuid.uuid4()),
                "project": project,
                "status": status,
                "spec": {
                    "dataset": "digits-attributes",
                    "methods": ["tag_first_order"],
                    "training": {"epochs": 10, "seed": i % 1000},
                },
                "spec_hash": "bench",
                "cancel_requested": status == "cancelled",
                "progress_fraction": 1.0 if status == "succeeded" else float(rng.uniform(0, 1)),
                "epoch": 5,
                "step": 50,
                "total_steps": 100,
                "eta_seconds": 12.0 if status == "running" else None,
                "losses": {"digit": 0.31, "even": 0.22},
                "device": "cpu",
                "attempts": 0 if status == "queued" else 1,
                "history": [] if status == "queued" else [{"attempt": 1, "worker": "bench@host"}],
                "error": {"field": None, "reason": "bench"} if status == "failed" else None,
                "run_seconds": 30.0 if finished else None,
                "created_at": created,
                "started_at": None if status == "queued" else created + timedelta(seconds=2),
                "finished_at": created + timedelta(seconds=32) if finished else None,
            }
        )
    with transaction(sessions) as session:
        for start in range(0, len(rows), 1000):
            session.execute(insert(Job), rows[start : start + 1000])


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) the process ``pid`` has used so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def backends(admin_url: str, database: str) -> dict[int, float]:
    """CPU seconds used so far by each PostgreSQL backend process serving ``database`` (same machine)."""
    with psycopg.connect(admin_url, autocommit=True) as admin:
        pids = [pid for (pid,) in admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (database,)
        )]
    return {pid: cpu_seconds(pid) for pid in pids if Path(f"/proc/{pid}").exists()}


def used(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def walk(client: httpx.Client, first: str, repeat: int) -> tuple[list[float], int]:
    """Latencies (ms) of every page of the list from ``first`` on, ``repeat`` times; and the page count."""
    latencies: list[float] = []
    pages = 0
    for _ in range(repeat):
        url: str | None = first
        pages = 0
        while url:
            started = time.perf_counter()
            response = client.get(url)
            latencies.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
            url = response.json()["next"]
            pages += 1
    return latencies, pages


def row(name: str, latencies: list[float], pages: int, cpu: float, db_cpu: float) -> str:
    p50, p99 = np.percentile(latencies, [50, 99])
    verdict = "yes" if p99 < TARGET_MS else "NO"
    n = len(latencies)
    return (
        f"| {name} | {pages} | {n} | {p50:.1f} | {p99:.1f} | {max(latencies):.1f} | "
        f"{1000 * cpu / n:.1f} | {1000 * db_cpu / n:.1f} | {verdict} |"
    )


def measure(base: str, key: str, repeat: int, server: int, database: tuple[str, str]) -> list[str]:
    """The table of :func:`walk` results; ``server`` is the API process and ``database`` the admin URL
    and name of the database (their CPU time per request)."""
    lines = [
        "| walk | pages | requests | p50 ms | p99 ms | max ms | API CPU ms/request | PostgreSQL CPU "
        "ms/request | p99 < 100 ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
        for _ in range(20):  # warm-up: connections, caches
            client.get("/jobs?limit=50").raise_for_status()
        walks = [("all jobs, limit 50 (the dashboard's page)", "/jobs?limit=50"),
                 ("all jobs, limit 100", "/jobs?limit=100")]
        walks += [(f"status={status}, limit 50", f"/jobs?limit=50&status={status}") for status in STATUS_MIX]
        for name, first in walks:
            cpu, db = cpu_seconds(server), backends(*database)
            latencies, pages = walk(client, first, repeat)
            db_cpu = used(db, backends(*database))
            lines.append(row(name, latencies, pages, cpu_seconds(server) - cpu, db_cpu))
            print(lines[-1], flush=True)
        for name, url in (("first page, limit 500 (the largest)", "/jobs?limit=500"),
                          ("GET /dashboard (the page itself, static)", "/dashboard")):
            cpu, db = cpu_seconds(server), backends(*database)
            latencies = []
            for _ in range(20 * repeat):
                started = time.perf_counter()
                client.get(url).raise_for_status()
                latencies.append((time.perf_counter() - started) * 1000)
            lines.append(row(name, latencies, 1, cpu_seconds(server) - cpu, used(db, backends(*database))))
            print(lines[-1], flush=True)
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_server_arguments(parser)
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs of the measured project")
    parser.add_argument("--repeat", type=int, default=3, help="walks through every page of each list")
    parser.add_argument("--out", type=Path, default=None, help="write the Markdown report here")
    args = parser.parse_args()

    with throwaway_database(args.database_url) as database, TemporaryDirectory() as home:
        engine = make_engine(database.url)
        sessions = make_session_factory(engine)
        rng = np.random.default_rng(0)
        started = time.perf_counter()
        seed(sessions, PROJECT, args.jobs, rng)
        seed(sessions, "other", args.jobs, rng)
        with engine.connect() as connection:
            connection.exec_driver_sql("ANALYZE jobs")
        print(f"seeded {2 * args.jobs} jobs in {time.perf_counter() - started:.1f} s", flush=True)
        key = create_api_key(sessions, PROJECT, name="job_list")[1]
        engine.dispose()
        with serving(server_env(database, args.redis_url, home)) as (base, pid):
            lines = measure(base, key, args.repeat, pid, (database.admin_url, database.name))
    load = os.getloadavg()
    facts = (
        f"{args.jobs} jobs of the measured project and {args.jobs} of another in PostgreSQL; "
        f"`taskgrouper serve` (server mode, 1 uvicorn worker) and this client on loopback, one request "
        f"at a time, every page walked {args.repeat} times; {os.cpu_count()} CPUs "
        f"({platform.processor() or platform.machine()}), load average at the end "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC."
    )
    print(facts)
    if args.out is not None:
        args.out.write_text(
            "# Job list latency with 10,000 jobs\n\n"
            "`nice python3 bench/job_list.py --out bench/results/job_list.md`\n\n"
            f"{facts}\n\n" + "\n".join(lines) + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
