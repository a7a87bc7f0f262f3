"""Soak test: mixed loopback traffic against the server-mode stack, its worker killed, Redis restarted.

Starts its own ``redis-server`` on a free loopback port (``--save "" --appendonly no``: nothing is
persisted, so a restart loses every queued and unacknowledged message), and, against a throw-away
PostgreSQL database and that Redis, the API (``taskgrouper serve --workers 2``) and one Celery
worker (``taskgrouper worker``). It creates an API key, then for ``--minutes`` drives ``--clients``
concurrent clients with a mix of requests — submit a small affinity job (one every ``--job-every``
seconds, each with its own ``Idempotency-Key``), poll jobs, list jobs, read groupings of a stored job
and of finished ones, upload a small CSV, solve a posted problem — while a killer SIGKILLs the worker
every ``--kill-every`` seconds and starts a new one, and Redis is stopped once, after
``--redis-restart-after`` seconds (default: half the run), left down ``--redis-down`` seconds and
started again on the same port.

While Redis is down ``POST /jobs`` answers 503 with ``Retry-After`` (problem+json naming the refused
job, which is recorded ``failed`` "could not be queued" and its Idempotency-Key released): that is
the designed answer, counted apart from other 5xx. The client then retries the submission with the
same key after ``Retry-After``; the retry, once Redis is back, is accepted as a new job.

Then it waits for every accepted job to end (while the jobs make progress, up to
``--drain-timeout``) and prints: requests served, the share of each status, the 503s (documented,
inside the outage window or not), jobs accepted vs succeeded (and how many were resumed after a
kill), the Redis restart (when, how long, what it lost) and what became of the jobs queued or
running at that moment (attempts, claims, re-publication by the reaper), and p50/p99 latency per
endpoint, GET /groupings first.

The acceptance: every accepted (202) job succeeded; no 5xx other than a documented 503 of
``POST /jobs`` while Redis was down (or within ``--redis-grace`` seconds of it answering again); no
transport errors; every refused submission accepted on a retry; the restart happened.

    python3 bench/soak.py [--minutes 10] [--kill-every 120] [--clients 4] [--job-every 10]
                          [--redis-restart-after SECONDS|off] [--redis-down 5]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from tempfile import TemporaryDirectory

import httpx
import numpy as np
import psycopg
import redis
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _fixtures import free_port, seed_succeeded_job, wait_ready  # noqa: E402

from service.auth import create_api_key  # noqa: E402
from service.db import make_engine, make_session_factory  # noqa: E402
from service.migrate import upgrade  # noqa: E402

PROJECT = "soak"
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
PROBLEM_JSON = "application/problem+json"
TERMINAL = ("succeeded", "failed", "cancelled")


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


def restart_after(value: str) -> float | None:
    """``--redis-restart-after``: seconds into the traffic (> 0), or ``off``."""
    if value.strip().lower() in ("off", "none", "no"):
        return None
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds or 'off': {value!r}") from None
    if not np.isfinite(seconds) or seconds <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds or 'off': {value!r}")
    return seconds


class OwnRedis:
    """A ``redis-server`` this script starts on a loopback port, without any persistence."""

    def __init__(self, executable: str, port: int, directory: Path, log: Path) -> None:
        self.executable = executable
        self.port = port
        self.directory = directory
        self.log = log
        self.process: subprocess.Popen | None = None
        self.url = f"redis://127.0.0.1:{port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2, socket_connect_timeout=2)

    def start(self, timeout: float = 60.0) -> None:
        """Start it and wait until it answers PING (its exit or ``timeout`` is an error)."""
        self.process = subprocess.Popen(
            [
                self.executable,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
                "--daemonize",
                "no",
            ],
            stdout=self.log.open("a"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        client = self.client()
        while True:
            if self.process.poll() is not None:
                raise SystemExit(
                    f"redis-server on port {self.port} exited with {self.process.returncode}:\n"
                    + self.log.read_text()[-2000:]
                )
            try:
                if client.ping():
                    return
            except (redis.RedisError, OSError):
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"redis-server on port {self.port} did not answer within {timeout:.0f} s")
            time.sleep(0.1)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (nothing is saved: ``--save ""``), SIGKILL after ``timeout``; returns once it exited."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Stats:
    """Thread-safe request outcomes: status counts and latencies per endpoint, and every 503."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.status: Counter = Counter()
        self.by_endpoint: dict[str, Counter] = defaultdict(Counter)
        #: (endpoint, monotonic start, monotonic end, documented: Retry-After and a problem+json body)
        self.unavailable: list[tuple[str, float, float, bool]] = []

    def record(
        self, endpoint: str, status: int | str, started: float, ended: float, documented: bool = False
    ) -> None:
        with self.lock:
            self.latency[endpoint].append((ended - started) * 1000.0)
            self.status[status] += 1
            self.by_endpoint[endpoint][status] += 1
            if status == 503:
                self.unavailable.append((endpoint, started, ended, documented))


@dataclass
class Submission:
    """One job the clients want run: its body and Idempotency-Key, retried after a 503."""

    key: str
    body: dict
    refused: list[str] = field(default_factory=list)  # ids of the jobs its 503s named
    not_before: float = 0.0


class Traffic:
    """The clients' shared state: accepted, finished and to-be-retried submissions."""

    def __init__(self, base: str, key: str, seeded_job: str, stats: Stats, job_every: float) -> None:
        self.base = base
        self.headers = {"Authorization": f"Bearer {key}"}
        self.seeded_job = seeded_job
        self.stats = stats
        self.job_every = job_every
        self.submitted: list[str] = []  # accepted (202) job ids
        self.finished: list[str] = []
        self.retry: list[Submission] = []  # refused with 503, to submit again
        self.refused_ids: list[str] = []  # job ids named by documented 503s
        self.accepted_on_retry = 0
        self.replayed: list[str] = []  # 202s with Idempotent-Replayed (none expected)
        self.submissions = 0
        self.next_job_at = time.monotonic()
        self.lock = threading.Lock()

    def call(
        self,
        client: httpx.Client,
        endpoint: str,
        method: str,
        url: str,
        headers: dict | None = None,
        **kwargs,
    ) -> httpx.Response | None:
        started = time.perf_counter()
        try:
            response = client.request(method, url, headers={**self.headers, **(headers or {})}, **kwargs)
        except httpx.HTTPError as exc:
            self.stats.record(endpoint, type(exc).__name__, started, time.perf_counter())
            return None
        documented = (
            response.status_code == 503
            and "retry-after" in response.headers
            and response.headers.get("content-type", "").startswith(PROBLEM_JSON)
        )
        self.stats.record(endpoint, response.status_code, started, time.perf_counter(), documented)
        return response

    def submit(self, client: httpx.Client, submission: Submission) -> None:
        """POST /jobs with the submission's Idempotency-Key; a 503 schedules a retry."""
        response = self.call(
            client,
            "POST /jobs",
            "POST",
            "/jobs",
            headers={"Idempotency-Key": submission.key},
            json=submission.body,
        )
        if response is None:
            return
        if response.status_code == 202:
            job_id = response.json()["id"]
            with self.lock:
                self.submitted.append(job_id)
                if submission.refused:
                    self.accepted_on_retry += 1
                if response.headers.get("idempotent-replayed"):
                    self.replayed.append(job_id)
        elif response.status_code == 503:
            try:
                wait = float(response.headers.get("retry-after", "1"))
            except ValueError:
                wait = 1.0
            try:
                refused = response.json().get("job_id")
            except ValueError:
                refused = None
            with self.lock:
                if refused:
                    submission.refused.append(refused)
                    self.refused_ids.append(refused)
                submission.not_before = time.monotonic() + wait
                self.retry.append(submission)

    def new_submission(self, rng: random.Random) -> Submission:
        """A new job to submit (counted in ``submissions``)."""
        with self.lock:
            self.submissions += 1
        body = {**TINY_JOB, "training": {**TINY_JOB["training"], "seed": rng.randrange(1000)}}
        return Submission(key=f"soak-{uuid.uuid4().hex}", body=body)

    def submit_soon(self) -> None:
        """Make the clients' next request a job submission."""
        with self.lock:
            self.next_job_at = min(self.next_job_at, time.monotonic())

    def due_retry(self) -> Submission | None:
        with self.lock:
            now = time.monotonic()
            for i, submission in enumerate(self.retry):
                if submission.not_before <= now:
                    return self.retry.pop(i)
        return None

    def one(self, client: httpx.Client, rng: random.Random) -> None:
        retry = self.due_retry()
        if retry is not None:
            self.submit(client, retry)
            return
        with self.lock:
            submit = time.monotonic() >= self.next_job_at
            if submit:
                self.next_job_at = max(self.next_job_at + self.job_every, time.monotonic())
            jobs = list(self.submitted)
            done = list(self.finished)
        if submit:
            self.submit(client, self.new_submission(rng))
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


@dataclass
class Restart:
    """What the Redis restart did (monotonic times; ``None`` until it happened)."""

    stopping_at: float | None = None
    stopped_at: float | None = None
    back_at: float | None = None
    queued_messages: dict[str, int] = field(default_factory=dict)  # Redis lists/hashes before the stop
    burst: list[str] = field(default_factory=list)  # jobs submitted just before the stop
    keys_before: int | None = None
    keys_after: int | None = None
    jobs_at_stop: dict[str, str] = field(default_factory=dict)  # job id -> status when Redis stopped
    error: str | None = None


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def jobs_in_database(url: str) -> list[dict]:
    """Every job of the soak's project, straight from the database (what the API does not show)."""
    with psycopg.connect(libpq(url)) as connection:
        rows = connection.execute(
            "SELECT id, status, attempts, history, error, created_at, enqueued_at, started_at, finished_at "
            "FROM jobs WHERE project = %s AND spec_hash <> 'soak' ORDER BY created_at",
            (PROJECT,),
        ).fetchall()
    columns = [
        "id",
        "status",
        "attempts",
        "history",
        "error",
        "created_at",
        "enqueued_at",
        "started_at",
        "finished_at",
    ]
    return [dict(zip(columns, row, strict=True)) for row in rows]


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
        "--redis-restart-after",
        type=restart_after,
        default=argparse.SUPPRESS,
        metavar="SECONDS|off",
        help="seconds into the traffic at which the soak's own Redis is stopped and started again, "
        "once (default: half of --minutes; 'off': no restart)",
    )
    parser.add_argument(
        "--redis-down", type=float, default=5.0, help="seconds Redis stays stopped during the restart"
    )
    parser.add_argument(
        "--redis-burst",
        type=int,
        default=3,
        help="jobs submitted just before Redis stops, so that messages are queued when it goes",
    )
    parser.add_argument(
        "--redis-grace",
        type=float,
        default=15.0,
        help="seconds after Redis answers again within which a documented 503 still counts as the outage's",
    )
    parser.add_argument(
        "--redis-server", default=shutil.which("redis-server"), help="the redis-server executable to start"
    )
    parser.add_argument(
        "--stall-timeout",
        type=float,
        default=300.0,
        help="seconds the draining may go without any pending job changing (status, attempt, progress)",
    )
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=1800.0,
        help="at most this many seconds waiting for jobs at the end",
    )
    parser.add_argument(
        "--keep-logs", action="store_true", help="keep the logs folder even when the soak passes"
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "TASKGROUPER_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
    )
    args = parser.parse_args()
    duration = args.minutes * 60.0
    restart_at = getattr(args, "redis_restart_after", duration / 2.0)
    if not args.redis_server:
        parser.error("no redis-server on PATH; pass --redis-server")
    if restart_at is not None and restart_at >= duration:
        parser.error(f"--redis-restart-after {restart_at:g} is not within the {duration:g} s of traffic")

    tag = uuid.uuid4().hex[:10]
    database = f"taskgrouper_soak_{tag}"
    logs = Path(tempfile.mkdtemp(prefix=f"taskgrouper-soak-{tag}-logs-"))
    with psycopg.connect(libpq(args.database_url), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    url = make_url(args.database_url).set(database=database).render_as_string(hide_password=False)
    processes: list[subprocess.Popen] = []
    own_redis: OwnRedis | None = None
    restart = Restart()
    restart_thread: threading.Thread | None = None
    final: dict[str, dict] = {}
    rows: list[dict] = []
    drain_note = ""
    flush_note = ""
    with TemporaryDirectory(prefix="taskgrouper-soak-") as home:
        redis_dir = Path(home) / "redis"
        redis_dir.mkdir()
        own_redis = OwnRedis(args.redis_server, free_port(), redis_dir, logs / "redis.log")
        training_queue = f"soak-training-{tag}"
        solve_queue = f"soak-solve-{tag}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("TASKGROUPER_")}
        env.update(
            {
                "TASKGROUPER_HOME": home,
                "TASKGROUPER_DATABASE_URL": url,
                "TASKGROUPER_BROKER_URL": own_redis.url,
                "TASKGROUPER_TRAINING_QUEUE": training_queue,
                "TASKGROUPER_SOLVE_QUEUE": solve_queue,
                "TASKGROUPER_PROGRESS_INTERVAL": "0.5",
                "TASKGROUPER_HEARTBEAT_INTERVAL": "1",
                "TASKGROUPER_STALE_AFTER": "8",
                "TASKGROUPER_REAP_INTERVAL": "2",
                "TASKGROUPER_RATE_LIMIT_REQUESTS": "0",
            }
        )

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
            own_redis.start()
            upgrade(url)
            key, seeded_job = seed(url, PROJECT)
            port = free_port()
            start("api", "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2")
            worker = start("worker", "worker", "--loglevel", "WARNING")
            base = f"http://127.0.0.1:{port}"
            try:
                wait_ready(base, 120)
            except TimeoutError:
                raise SystemExit(
                    "the API did not become ready:\n" + (logs / "api.log").read_text()[-3000:]
                ) from None

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

            def restart_redis() -> None:
                """Submit --redis-burst jobs and wait until messages wait in the queue, snapshot what
                is queued, stop Redis (the clients' next request is a submission, answered 503), wait
                --redis-down, start it again on the same port."""
                try:
                    client = own_redis.client()
                    rng = random.Random(4242)
                    before = len(traffic.submitted)
                    with httpx.Client(base_url=base, timeout=30) as http:
                        for _ in range(args.redis_burst):
                            traffic.submit(http, traffic.new_submission(rng))
                    with traffic.lock:
                        restart.burst = traffic.submitted[before:]
                    # state, not a fixed sleep: until a message waits in the training queue (the
                    # worker takes one at a time), or 30 s (then the snapshot says what there was)
                    deadline = time.monotonic() + 30
                    while args.redis_burst and time.monotonic() < deadline:
                        if client.llen(training_queue) > 0:
                            break
                        time.sleep(0.05)
                    restart.keys_before = client.dbsize()
                    for name in (training_queue, solve_queue):
                        restart.queued_messages[name] = client.llen(name)
                    restart.queued_messages["unacked"] = client.hlen("unacked")
                    client.close()
                    restart.stopping_at = time.monotonic()
                    own_redis.stop()
                    restart.stopped_at = time.monotonic()
                    traffic.submit_soon()
                    # the jobs whose messages Redis held (queued) or that ran when it went: read
                    # after the stop, so no job published before it is missed
                    with psycopg.connect(libpq(url)) as connection:
                        restart.jobs_at_stop = dict(
                            connection.execute(
                                "SELECT id, status FROM jobs "
                                "WHERE project = %s AND status IN ('queued', 'running')",
                                (PROJECT,),
                            ).fetchall()
                        )
                    print(
                        f"[{restart.stopped_at - began:6.0f} s] Redis stopped (SIGTERM, nothing saved): "
                        "it held "
                        f"{restart.keys_before} keys, queued messages {restart.queued_messages}; jobs then "
                        f"{dict(Counter(restart.jobs_at_stop.values()))}",
                        flush=True,
                    )
                    time.sleep(args.redis_down)
                    own_redis.start()
                    restart.back_at = time.monotonic()
                    client = own_redis.client()
                    restart.keys_after = client.dbsize()
                    client.close()
                    print(
                        f"[{restart.back_at - began:6.0f} s] Redis started again on port {own_redis.port} "
                        f"after {restart.back_at - restart.stopped_at:.1f} s down; "
                        f"keys now: {restart.keys_after}",
                        flush=True,
                    )
                except BaseException as exc:  # reported, and the soak fails
                    restart.error = f"{type(exc).__name__}: {exc}"
                    print(f"Redis restart failed: {restart.error}", flush=True)

            threads = [
                threading.Thread(target=client_loop, args=(i,), daemon=True) for i in range(args.clients)
            ]
            began = time.monotonic()
            began_wall = time.time()
            for thread in threads:
                thread.start()
            end = began + duration
            next_kill = began + args.kill_every
            while time.monotonic() < end:
                time.sleep(min(1.0, max(0.0, end - time.monotonic())))
                now = time.monotonic()
                if restart_at is not None and restart_thread is None and now >= began + restart_at:
                    restart_thread = threading.Thread(target=restart_redis, daemon=True)
                    restart_thread.start()
                if now >= next_kill and now < end:
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
            if restart_thread is not None:
                restart_thread.join()

            # submissions still refused when the traffic stopped: retry them (Retry-After) until accepted
            flush_deadline = time.monotonic() + 120
            with httpx.Client(base_url=base, timeout=30) as client:
                while traffic.retry and time.monotonic() < flush_deadline:
                    submission = traffic.due_retry()
                    if submission is None:
                        time.sleep(0.2)
                        continue
                    traffic.submit(client, submission)
            if traffic.retry:
                flush_note = f"{len(traffic.retry)} refused submissions still refused after 120 s of retries"

            print(
                f"traffic done after {traffic_seconds:.0f} s; waiting for {len(traffic.submitted)} jobs",
                flush=True,
            )
            drain_started = time.monotonic()
            last_change = drain_started
            seen: dict[str, tuple] = {}
            drain_errors: Counter = Counter()
            with httpx.Client(base_url=base, timeout=30, headers=traffic.headers) as client:
                while True:
                    pending = [j for j in traffic.submitted if final.get(j, {}).get("status") not in TERMINAL]
                    if not pending:
                        break
                    now = time.monotonic()
                    if now - drain_started > args.drain_timeout:
                        drain_note = f"gave up after --drain-timeout {args.drain_timeout:.0f} s"
                        break
                    if now - last_change > args.stall_timeout:
                        drain_note = (
                            f"gave up: no pending job changed (status, attempts, progress) for "
                            f"{args.stall_timeout:.0f} s"
                        )
                        break
                    for job_id in pending:
                        try:
                            response = client.get(f"/jobs/{job_id}")
                        except httpx.HTTPError as exc:
                            drain_errors[type(exc).__name__] += 1
                            continue
                        if response.status_code != 200:
                            drain_errors[response.status_code] += 1
                            continue
                        job = response.json()
                        final[job_id] = job
                        progress = job.get("progress") or {}
                        state = (
                            job["status"],
                            job.get("attempts"),
                            progress.get("fraction"),
                            progress.get("step"),
                        )
                        if seen.get(job_id) != state:
                            seen[job_id] = state
                            last_change = time.monotonic()
                    time.sleep(1.0)
            drain_seconds = time.monotonic() - drain_started
            if drain_errors:
                drain_note = (
                    drain_note + "; " if drain_note else ""
                ) + f"errors while polling: {dict(drain_errors)}"
            rows = jobs_in_database(url)
        finally:
            for process in processes:
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGTERM)
            for process in processes:
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
            if own_redis is not None:
                own_redis.stop()
            with psycopg.connect(libpq(args.database_url), autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')

    def since(when: datetime | str | None) -> float | None:
        if when is None:
            return None
        if isinstance(when, str):
            when = datetime.fromisoformat(when)
        return when.timestamp() - began_wall

    by_id = {row["id"]: row for row in rows}
    statuses = Counter(job.get("status", "unknown") for job in final.values())
    resumed = sum(1 for job in final.values() if job.get("attempts", 0) > 1)
    total = sum(stats.status.values())
    ok = True
    print(
        f"\nsoak: {traffic_seconds / 60:.1f} min of traffic, {args.clients} clients, "
        f"worker killed {kills} times, Redis restarted {1 if restart.back_at else 0} time, "
        f"drain {drain_seconds:.0f} s"
    )
    print(f"requests served: {total} ({total / traffic_seconds:.1f}/s)")
    print(
        "responses by status: "
        + ", ".join(f"{s}: {n} ({100 * n / total:.2f}%)" for s, n in sorted(stats.status.items(), key=str))
    )
    other_errors = sum(
        n for s, n in stats.status.items() if not isinstance(s, int) or (s >= 500 and s != 503)
    )
    print(
        f"5xx other than 503, or transport errors: {other_errors} ({100 * other_errors / max(total, 1):.3f}%)"
    )
    ok &= other_errors == 0

    # 503s: the designed answer of POST /jobs while the queue is unavailable
    window = None
    if restart.stopping_at is not None:
        window = (restart.stopping_at - 1.0, (restart.back_at or float("inf")) + args.redis_grace)
    n503 = len(stats.unavailable)
    not_jobs = [u for u in stats.unavailable if u[0] != "POST /jobs"]
    undocumented = [u for u in stats.unavailable if not u[3]]
    inside = [u for u in stats.unavailable if window and u[1] >= window[0] and u[2] <= window[1]]
    after_back = [u for u in stats.unavailable if restart.back_at is not None and u[2] > restart.back_at]
    print(
        f"503: {n503} ({100 * n503 / max(total, 1):.3f}%) — POST /jobs: {n503 - len(not_jobs)}, "
        f"other endpoints: {len(not_jobs)}; with Retry-After and a problem+json body: "
        f"{n503 - len(undocumented)}; within the Redis "
        f"outage (stop − 1 s … back + {args.redis_grace:g} s): {len(inside)}; answered after Redis was back: "
        f"{len(after_back)}"
        + (f" (the last {max(u[2] for u in after_back) - restart.back_at:.1f} s after)" if after_back else "")
    )
    if n503:
        print(
            f"  503s answered between {min(u[1] for u in stats.unavailable) - began:.1f} s and "
            f"{max(u[2] for u in stats.unavailable) - began:.1f} s of traffic"
        )
    ok &= not not_jobs and not undocumented and len(inside) == n503
    refused_rows = [
        r
        for r in rows
        if r["status"] == "failed"
        and str((r["error"] or {}).get("reason", "")).startswith("could not be queued")
    ]
    print(
        f"refused submissions: {len(traffic.refused_ids)} job ids named by 503s, "
        f"{len(refused_rows)} rows recorded "
        f"failed 'could not be queued' (should match); accepted on a retry with the same Idempotency-Key: "
        f"{traffic.accepted_on_retry}; replayed 202s: {len(traffic.replayed)}"
        + (f"; {flush_note}" if flush_note else "")
    )
    ok &= (
        sorted(traffic.refused_ids) == sorted(r["id"] for r in refused_rows)
        and not traffic.retry
        and not traffic.replayed
        and not set(traffic.refused_ids) & set(traffic.submitted)
    )

    print(
        f"jobs submitted (accepted, 202): {len(traffic.submitted)} of {traffic.submissions} submissions  "
        f"succeeded: {statuses.get('succeeded', 0)}  "
        f"other: {{{', '.join(f'{k}: {v}' for k, v in statuses.items() if k != 'succeeded')}}}  "
        f"resumed after a kill: {resumed}" + (f"  ({drain_note})" if drain_note else "")
    )
    ok &= statuses.get("succeeded", 0) == len(traffic.submitted) == traffic.submissions
    for job_id in traffic.submitted:
        job = final.get(job_id, {})
        if job.get("status") != "succeeded":
            row = by_id.get(job_id, {})
            print(
                f"  NOT SUCCEEDED {job_id}: {job.get('status')} attempts {row.get('attempts')} "
                f"history {row.get('history')} error {row.get('error')} "
                f"enqueued_at {since(row.get('enqueued_at'))}"
            )

    if restart_at is not None:
        if restart.back_at is None:
            print(f"Redis restart: DID NOT COMPLETE ({restart.error})")
            ok = False
        else:
            stop_t, back_t = restart.stopped_at - began, restart.back_at - began
            print(
                f"Redis restart at {restart.stopping_at - began:.1f} s: "
                f"down from {stop_t:.1f} s to {back_t:.1f} s "
                f"({back_t - stop_t:.1f} s); before: {restart.keys_before} keys, queued messages "
                f"{restart.queued_messages}; after: {restart.keys_after} keys (everything lost)"
            )
            refused = set(traffic.refused_ids)
            at_restart = {j: s for j, s in restart.jobs_at_stop.items() if j not in refused}
            print(
                f"  jobs queued or running when Redis stopped ({len(at_restart)}; "
                f"{len(restart.burst)} submitted just before it, marked *):"
            )
            recovered = []
            same_attempt = resumed_after = 0
            for job_id, at_stop in sorted(
                at_restart.items(), key=lambda kv: str(by_id.get(kv[0], {}).get("created_at"))
            ):
                row = by_id.get(job_id)
                if row is None:
                    print(f"    {job_id[:8]} {at_stop:<8} -> not found")
                    ok = False
                    continue
                claims = [since(h.get("claimed_at")) for h in row["history"] or []]
                outcomes = [h.get("outcome", "?") for h in row["history"] or []]
                enq = since(row["enqueued_at"])
                published = f"{enq:6.1f} s" if enq is not None else "  none"
                after = [c for c in claims if c is not None and c > back_t]
                if at_stop == "queued" and after:
                    recovered.append(after[0] - back_t)
                if at_stop == "running" and row["status"] == "succeeded":
                    if len(claims) == 1 or all(c is not None and c < stop_t for c in claims):
                        same_attempt += 1
                    else:
                        resumed_after += 1
                mark = "*" if job_id in restart.burst else " "
                print(
                    f"   {mark}{job_id[:8]} {at_stop:<8} -> {row['status']:<9} attempts {row['attempts']}  "
                    f"created {since(row['created_at']):6.1f} s  last published {published}  "
                    f"claims at {', '.join(f'{c:.1f}' for c in claims)} s  outcomes {outcomes}"
                )
            queued_at_stop = [j for j, s in at_restart.items() if s == "queued"]
            running_at_stop = [j for j, s in at_restart.items() if s == "running"]
            print(
                f"  queued at the restart: {len(queued_at_stop)}, all claimed after Redis was back: "
                f"{len(recovered) == len(queued_at_stop)}"
                + (
                    f" (first claim {min(recovered):.1f}–{max(recovered):.1f} s after it)"
                    if recovered
                    else ""
                )
                + f"; running at the restart: {len(running_at_stop)}, succeeded in the attempt that "
                f"ran through it: {same_attempt}, in a later attempt (worker lost): {resumed_after}"
            )
            ok &= all(by_id.get(j, {}).get("status") == "succeeded" for j in at_restart)

    for name in sorted(logs.glob("*.log")):
        text = name.read_text(errors="replace")
        print(
            f"  log {name.name}: {text.count('Traceback')} tracebacks, "
            f"{text.count('re-enqueueing job')} re-enqueueings, "
            f"{text.count('cannot queue job')} 'cannot queue job'"
        )
    order = ["GET /groupings"] + sorted(e for e in stats.latency if e != "GET /groupings")
    for endpoint in order:
        values = stats.latency.get(endpoint, [])
        print(
            f"  {endpoint:<18} n={len(values):>6}  p50 {percentile(values, 50):8.2f} ms  "
            f"p99 {percentile(values, 99):8.2f} ms  statuses {dict(stats.by_endpoint[endpoint])}"
        )
    print(
        "RESULT: "
        + (
            "PASS (every accepted job succeeded, every refused submission accepted on retry, "
            "no 5xx but documented 503s during the Redis outage)"
            if ok
            else "FAIL"
        )
    )
    if ok and not args.keep_logs:
        shutil.rmtree(logs, ignore_errors=True)
    else:
        print(f"logs kept in {logs}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
