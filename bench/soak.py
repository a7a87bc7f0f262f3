"""Soak test: mixed loopback traffic against the server-mode stack while its worker is killed.

Starts, against a throw-away PostgreSQL database and Redis (unique queue names), the API
(``taskgrouper serve --workers 2``) and one Celery worker (``taskgrouper worker``), creates an API
key, then for ``--minutes`` drives ``--clients`` concurrent clients with a mix of requests — submit
a small affinity job (one every ``--job-every`` seconds), poll jobs, list jobs, read groupings of a
stored job and of finished ones, upload a small CSV, solve a posted problem — while a killer
SIGKILLs the worker every ``--kill-every`` seconds and starts a new one. Then it waits for every
submitted job to end and prints: requests served, the share of each status, jobs submitted vs
succeeded (and how many were resumed after a kill), and p50/p99 latency per endpoint, GET /groupings
first. The acceptance: every submitted job succeeded, no 5xx.

    python3 bench/soak.py [--minutes 10] [--kill-every 120] [--clients 4] [--job-every 10]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from tempfile import TemporaryDirectory

import httpx
import numpy as np
import psycopg
import redis
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _fixtures import free_port, seed_succeeded_job  # noqa: E402

from service.auth import create_api_key  # noqa: E402
from service.db import make_engine, make_session_factory  # noqa: E402
from service.migrate import upgrade  # noqa: E402

TINY_JOB = {
    "dataset": "digits-attributes",
    "methods": ["tag"],
    "model": {"hidden_units": 16, "hidden_layers": 1, "representation": 8},
    "training": {"epochs": 2, "batch_size": 128, "patience": 0},
}
PROBLEM = {
    "tasks": ["a", "b", "c", "d"],
    "objective": "max_affinity",
    "singletons": "forbid",
    "network_cost": 1.0,
    "affinity": {
        "onto_row_from_column": [
            [0.0, 0.5, -0.2, 0.1],
            [0.4, 0.0, 0.1, -0.3],
            [-0.1, 0.2, 0.0, 0.6],
            [0.0, -0.2, 0.7, 0.0],
        ]
    },
}
CSV = ("x1,x2,label\n" + "\n".join(f"{i * 0.1},{i % 7},{i % 2}" for i in range(200))).encode()


def libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def taskgrouper() -> list[str]:
    exe = shutil.which("taskgrouper")
    return [exe] if exe else [sys.executable, "-m", "service.cli"]


def seed(url: str, project: str) -> tuple[str, str]:
    """An API key and a succeeded job with a 10-task affinity table (stored grouping reads)."""
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    _, key = create_api_key(sessions, project, name="soak")
    job_id = seed_succeeded_job(sessions, project, "soak")
    engine.dispose()
    return key, job_id


class Stats:
    """Thread-safe request outcomes: status counts and latencies per endpoint."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.status: Counter = Counter()
        self.by_endpoint: dict[str, Counter] = defaultdict(Counter)

    def record(self, endpoint: str, status: int | str, seconds: float) -> None:
        with self.lock:
            self.latency[endpoint].append(seconds * 1000.0)
            self.status[status] += 1
            self.by_endpoint[endpoint][status] += 1


class Traffic:
    """The clients' shared state: submitted and finished job ids."""

    def __init__(self, base: str, key: str, seeded_job: str, stats: Stats, job_every: float) -> None:
        self.base = base
        self.headers = {"Authorization": f"Bearer {key}"}
        self.seeded_job = seeded_job
        self.stats = stats
        self.job_every = job_every
        self.submitted: list[str] = []
        self.finished: list[str] = []
        self.next_job_at = time.monotonic()
        self.lock = threading.Lock()

    def call(
        self, client: httpx.Client, endpoint: str, method: str, url: str, **kwargs
    ) -> httpx.Response | None:
        started = time.perf_counter()
        try:
            response = client.request(method, url, headers=self.headers, **kwargs)
        except httpx.HTTPError as exc:
            self.stats.record(endpoint, type(exc).__name__, time.perf_counter() - started)
            return None
        self.stats.record(endpoint, response.status_code, time.perf_counter() - started)
        return response

    def one(self, client: httpx.Client, rng: random.Random) -> None:
        with self.lock:
            submit = time.monotonic() >= self.next_job_at
            if submit:
                self.next_job_at += self.job_every
            jobs = list(self.submitted)
            done = list(self.finished)
        if submit:
            body = {**TINY_JOB, "training": {**TINY_JOB["training"], "seed": rng.randrange(1000)}}
            response = self.call(client, "POST /jobs", "POST", "/jobs", json=body)
            if response is not None and response.status_code == 202:
                with self.lock:
                    self.submitted.append(response.json()["id"])
            return
        roll = rng.random()
        if roll < 0.40:
            params = {"job_id": self.seeded_job, "budget": rng.choice([2, 3, 4, 5])}
            self.call(client, "GET /groupings", "GET", "/groupings", params=params)
        elif roll < 0.50 and done:
            params = {"job_id": rng.choice(done), "budget": 2}
            self.call(client, "GET /groupings", "GET", "/groupings", params=params)
        elif roll < 0.75 and jobs:
            job_id = rng.choice(jobs)
            response = self.call(client, "GET /jobs/{id}", "GET", f"/jobs/{job_id}")
            if (
                response is not None
                and response.status_code == 200
                and response.json()["status"] == "succeeded"
            ):
                with self.lock:
                    if job_id not in self.finished:
                        self.finished.append(job_id)
        elif roll < 0.85:
            self.call(client, "GET /jobs", "GET", "/jobs", params={"limit": 20})
        elif roll < 0.93:
            self.call(client, "POST /groupings", "POST", "/groupings", json={"problem": PROBLEM, "budget": 2})
        else:
            self.call(client, "POST /datasets", "POST", "/datasets", files={"file": ("soak.csv", CSV)})


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--kill-every", type=float, default=120.0, help="seconds between worker kills")
    parser.add_argument("--clients", type=int, default=4, help="concurrent client threads")
    parser.add_argument("--job-every", type=float, default=10.0, help="seconds between job submissions")
    parser.add_argument(
        "--think", type=float, default=0.02, help="seconds each client waits between requests"
    )
    parser.add_argument(
        "--drain-timeout", type=float, default=600.0, help="seconds to wait for jobs at the end"
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "TASKGROUPER_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
    )
    parser.add_argument(
        "--redis-url", default=os.environ.get("TASKGROUPER_SOAK_REDIS_URL", "redis://127.0.0.1:6379/12")
    )
    args = parser.parse_args()

    tag = uuid.uuid4().hex[:10]
    database = f"taskgrouper_soak_{tag}"
    with psycopg.connect(libpq(args.database_url), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    url = make_url(args.database_url).set(database=database).render_as_string(hide_password=False)
    processes: list[subprocess.Popen] = []
    with TemporaryDirectory(prefix="taskgrouper-soak-") as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TASKGROUPER_")}
        env.update(
            {
                "TASKGROUPER_HOME": home,
                "TASKGROUPER_DATABASE_URL": url,
                "TASKGROUPER_BROKER_URL": args.redis_url,
                "TASKGROUPER_TRAINING_QUEUE": f"soak-training-{tag}",
                "TASKGROUPER_SOLVE_QUEUE": f"soak-solve-{tag}",
                "TASKGROUPER_PROGRESS_INTERVAL": "0.5",
                "TASKGROUPER_HEARTBEAT_INTERVAL": "1",
                "TASKGROUPER_STALE_AFTER": "8",
                "TASKGROUPER_REAP_INTERVAL": "2",
                "TASKGROUPER_RATE_LIMIT_REQUESTS": "0",
            }
        )
        logs = Path(home) / "logs"
        logs.mkdir()

        def start(name: str, *command: str) -> subprocess.Popen:
            process = subprocess.Popen(
                [*taskgrouper(), *command],
                env=env,
                cwd=home,
                stdout=(logs / f"{name}.log").open("a"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            processes.append(process)
            return process

        try:
            upgrade(url)
            key, seeded_job = seed(url, "soak")
            port = free_port()
            start("api", "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2")
            worker = start("worker", "worker", "--loglevel", "WARNING")
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit(
                        "the API did not become ready:\n" + (logs / "api.log").read_text()[-3000:]
                    )
                time.sleep(0.3)

            stats = Stats()
            traffic = Traffic(base, key, seeded_job, stats, args.job_every)
            stop = threading.Event()
            kills = 0

            def client_loop(seed_value: int) -> None:
                rng = random.Random(seed_value)
                with httpx.Client(base_url=base, timeout=30) as client:
                    while not stop.is_set():
                        traffic.one(client, rng)
                        time.sleep(args.think)

            threads = [
                threading.Thread(target=client_loop, args=(i,), daemon=True) for i in range(args.clients)
            ]
            began = time.monotonic()
            for thread in threads:
                thread.start()
            end = began + args.minutes * 60.0
            next_kill = began + args.kill_every
            while time.monotonic() < end:
                time.sleep(min(1.0, max(0.0, end - time.monotonic())))
                if time.monotonic() >= next_kill and time.monotonic() < end:
                    os.killpg(worker.pid, signal.SIGKILL)
                    worker.wait()
                    kills += 1
                    print(
                        f"[{time.monotonic() - began:6.0f} s] worker killed (kill -9), starting another",
                        flush=True,
                    )
                    worker = start("worker", "worker", "--loglevel", "WARNING")
                    next_kill += args.kill_every
            stop.set()
            for thread in threads:
                thread.join()
            traffic_seconds = time.monotonic() - began

            print(
                f"traffic done after {traffic_seconds:.0f} s; waiting for {len(traffic.submitted)} jobs",
                flush=True,
            )
            final: dict[str, dict] = {}
            drain_deadline = time.monotonic() + args.drain_timeout
            with httpx.Client(base_url=base, timeout=30, headers=traffic.headers) as client:
                while time.monotonic() < drain_deadline:
                    pending = [
                        j
                        for j in traffic.submitted
                        if final.get(j, {}).get("status") not in ("succeeded", "failed", "cancelled")
                    ]
                    if not pending:
                        break
                    for job_id in pending:
                        final[job_id] = client.get(f"/jobs/{job_id}").json()
                    time.sleep(1.0)
            drain_seconds = time.monotonic() - began - traffic_seconds
        finally:
            for process in processes:
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGTERM)
            for process in processes:
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
            with psycopg.connect(libpq(args.database_url), autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            client = redis.Redis.from_url(args.redis_url)
            for name in client.scan_iter(match=f"*{tag}*"):
                client.delete(name)

    statuses = Counter(job.get("status", "unknown") for job in final.values())
    resumed = sum(1 for job in final.values() if job.get("attempts", 0) > 1)
    total = sum(stats.status.values())
    print(
        f"\nsoak: {traffic_seconds / 60:.1f} min of traffic, {args.clients} clients, "
        f"worker killed {kills} times, drain {drain_seconds:.0f} s"
    )
    print(f"requests served: {total} ({total / traffic_seconds:.1f}/s)")
    print(
        "responses by status: "
        + ", ".join(f"{s}: {n} ({100 * n / total:.2f}%)" for s, n in sorted(stats.status.items(), key=str))
    )
    errors_5xx = sum(n for s, n in stats.status.items() if not isinstance(s, int) or s >= 500)
    print(f"5xx or transport errors: {errors_5xx} ({100 * errors_5xx / max(total, 1):.3f}%)")
    print(
        f"jobs submitted: {len(traffic.submitted)}  succeeded: {statuses.get('succeeded', 0)}  "
        f"other: {{{', '.join(f'{k}: {v}' for k, v in statuses.items() if k != 'succeeded')}}}  "
        f"resumed after a kill: {resumed}"
    )
    order = ["GET /groupings"] + sorted(e for e in stats.latency if e != "GET /groupings")
    for endpoint in order:
        values = stats.latency.get(endpoint, [])
        print(
            f"  {endpoint:<18} n={len(values):>6}  p50 {percentile(values, 50):8.2f} ms  "
            f"p99 {percentile(values, 99):8.2f} ms  statuses {dict(stats.by_endpoint[endpoint])}"
        )
    ok = statuses.get("succeeded", 0) == len(traffic.submitted) and errors_5xx == 0
    print("RESULT: " + ("PASS (every job succeeded, no 5xx)" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
