"""Queue faults with real processes: Celery worker subprocesses, a Redis server of the test's own and a
PostgreSQL database private to each test (so no other test's queued jobs are republished here).

* the queue refuses a submission (Redis down): ``POST /jobs`` answers 503 and the job is ``failed``;
  the client's retry with the same ``Idempotency-Key`` once Redis is back creates and queues a new
  job (it is not answered with the failed one), and later retries replay that new job;
* Redis restarts empty while a job waits in the queue: the reaper sees that the broker started after
  the job was published and publishes it again at once (not after ``requeue_queued_after``, an
  hour here) — a worker started after the restart runs it;
* the attempt cap: a job whose worker is killed on each of its ``max_attempts`` attempts is failed,
  naming the cap, instead of being requeued forever.

Every wait polls the state it waits for, with a generous deadline (the machine may be busy).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis
from child_processes import Processes, free_port, running_in
from conftest import TINY_JOB, _client, service_env

from service.client import TaskgrouperClient
from service.db import make_engine, make_session_factory
from service.executor import CeleryExecutor
from service.models import Job
from service.schemas import JobOut
from service.settings import Settings
from worker.reaper import broker_start_time, reap

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.timeout(420)]

#: a job that trains long enough to be killed mid-way
LONG_JOB = {**TINY_JOB, "training": {"epochs": 200, "batch_size": 128, "patience": 0, "every": 5}}



def poll(predicate: Callable[[], Any], timeout: float, what: str, logs: Callable[[], str] = str) -> Any:
    """Call ``predicate`` until it returns something truthy (returned); fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}\n{logs()}"
        time.sleep(0.2)
    return value


class RedisServer:
    """A ``redis-server`` of this test on a free loopback port, without persistence: killing it loses
    every message, as a restart of a Redis without AOF/RDB does."""

    def __init__(self, processes: Processes, directory: Path) -> None:
        self.processes = processes
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        command = [
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(self.directory),
        ]  # fmt: skip
        self.process = self.processes.start("redis", command)
        client = redis.Redis(port=self.port, socket_connect_timeout=1)

        def up() -> bool:
            assert self.process.poll() is None, self.processes.logs()
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        poll(up, 30, "redis-server to answer", self.processes.logs)
        client.close()

    def kill(self) -> None:
        assert self.process is not None
        self.processes.kill(self.process)
        self.process = None

    def queue_length(self, queue: str) -> int:
        client = redis.Redis(port=self.port)
        try:
            return int(client.llen(queue))
        finally:
            client.close()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    yield from running_in(tmp_path)


@pytest.fixture
def redis_server(processes: Processes, tmp_path: Path) -> RedisServer:
    server = RedisServer(processes, tmp_path)
    server.start()
    return server


@pytest.fixture
def settings(server_settings: Settings, private_db: str) -> Settings:
    """Server settings on the private database, with queues of this test alone, a fast heartbeat and
    reaper (a worker silent for 3 s is presumed dead) and the hour-long ``requeue_queued_after``."""
    tag = uuid.uuid4().hex[:8]
    return server_settings.model_copy(
        update={
            "database_url": private_db,
            "heartbeat_interval": 0.3,
            "stale_after": 3.0,
            "reap_interval": 0.5,
            "progress_interval": 0.2,
            "requeue_queued_after": 3600.0,
            "training_queue": f"{server_settings.training_queue}-{tag}",
            "solve_queue": f"{server_settings.solve_queue}-{tag}",
        }
    )


@pytest.fixture
def sessions(settings: Settings) -> Iterator[Any]:
    engine = make_engine(settings.resolved_database_url, pool_size=2)
    yield make_session_factory(engine)
    engine.dispose()


def worker_command() -> list[str]:
    exe = shutil.which("taskgrouper")
    prefix = [exe] if exe else [sys.executable, "-m", "service.cli"]
    return [*prefix, "worker", "--loglevel", "WARNING"]


def start_worker(processes: Processes, settings: Settings) -> subprocess.Popen:
    """A Celery worker subprocess (solo pool, both queues) for ``settings``."""
    env = service_env(settings) | {
        "TASKGROUPER_REQUEUE_QUEUED_AFTER": str(settings.requeue_queued_after),
        "TASKGROUPER_MAX_ATTEMPTS": str(settings.max_attempts),
    }
    return processes.start("worker", worker_command(), env)


@contextmanager
def api(settings: Settings) -> Iterator[Any]:
    """The API in-process for ``settings`` (server mode, an API key of its project)."""
    yield from _client(settings)


def job_of(client: TaskgrouperClient, job_id: str) -> JobOut:
    return client.job(job_id)


def test_a_submission_the_queue_refused_is_not_replayed_by_its_idempotency_key(
    redis_server, settings, sessions
):
    settings = settings.model_copy(update={"broker_url": redis_server.url})
    headers = {"Idempotency-Key": f"retry-{uuid.uuid4().hex[:8]}"}
    with api(settings) as http:
        redis_server.kill()
        refused = http.post("/jobs", json=TINY_JOB, headers=headers)
        assert refused.status_code == 503, refused.text
        failed_id = refused.json()["job_id"]
        with sessions() as session:
            failed = session.get(Job, failed_id)
        assert failed.status == "failed" and failed.idempotency_key is None
        assert "could not be queued" in failed.error["reason"] and "released" in failed.error["reason"]

        redis_server.start()  # empty: nothing of the refused submission is in the queue
        retried = http.post("/jobs", json=TINY_JOB, headers=headers)
        assert retried.status_code == 202, retried.text
        assert "Idempotent-Replayed" not in retried.headers
        job = retried.json()
        assert job["id"] != failed_id and job["status"] == "queued" and job["error"] is None
        assert redis_server.queue_length(settings.training_queue) == 1  # its message is really queued

        replayed = http.post("/jobs", json=TINY_JOB, headers=headers)
        assert replayed.status_code == 202 and replayed.headers["Idempotent-Replayed"] == "true"
        assert replayed.json()["id"] == job["id"]
        assert redis_server.queue_length(settings.training_queue) == 1
        assert http.get(f"/jobs/{failed_id}").json()["status"] == "failed"


def test_a_broker_restart_republishes_the_queued_jobs_it_lost(redis_server, settings, sessions):
    """The reaper's sweep, against the real restarted Redis: the queued job is published once more at
    the first sweep after the restart, and not again and again after that."""
    settings = settings.model_copy(update={"broker_url": redis_server.url})
    with api(settings) as http:
        submitted = http.post("/jobs", json=TINY_JOB)
        assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]
    queue = settings.training_queue
    assert redis_server.queue_length(queue) == 1
    redis_server.kill()
    redis_server.start()
    assert redis_server.queue_length(queue) == 0  # the message is gone; the job row says queued

    executor = CeleryExecutor(settings)
    published: list[str] = []

    def publish(job: str) -> None:
        published.append(job)
        executor.submit(job)

    try:
        # the hour-long fallback alone leaves it queued …
        assert reap(sessions, settings, publish) == []
        # … the broker's start time, later than the job's publication, republishes it at once
        started = broker_start_time(redis_server.url)
        assert started is not None and started() is not None
        assert reap(sessions, settings, publish, started) == [job_id]
        assert redis_server.queue_length(queue) >= 1
        # it is published again only while its publication could still predate the restart (a margin
        # of seconds), then never: sweep until a sweep publishes nothing, and once more
        poll(lambda: reap(sessions, settings, publish, started) == [], 60, "the sweeps to settle")
        count = len(published)
        assert reap(sessions, settings, publish, started) == [] and len(published) == count
    finally:
        executor.close()
    with sessions() as session:
        assert session.get(Job, job_id).status == "queued"


def test_a_job_whose_message_a_broker_restart_lost_is_run(redis_server, settings, processes):
    settings = settings.model_copy(update={"broker_url": redis_server.url})
    with api(settings) as http:
        client = TaskgrouperClient(http=http)
        job = client.submit_job(**TINY_JOB)  # no worker yet: the message waits in Redis
        assert redis_server.queue_length(settings.training_queue) == 1
        redis_server.kill()
        redis_server.start()
        assert redis_server.queue_length(settings.training_queue) == 0
        start_worker(processes, settings)  # requeue_queued_after is an hour: only the restart can tell
        done = poll(
            lambda: (j := job_of(client, job.id)).status in ("succeeded", "failed", "cancelled") and j,
            300,
            "the job to end",
            processes.logs,
        )
        assert done.status == "succeeded" and done.attempts == 1, done


def test_a_job_lost_on_each_of_max_attempts_fails_naming_the_cap(settings, sessions, processes):
    """``max_attempts = 2``: the job's worker is killed twice mid-training; the first loss requeues
    it, the second fails it. The reaper sweeps from the test (the workers are dead by then)."""
    settings = settings.model_copy(update={"max_attempts": 2})
    executor = CeleryExecutor(settings)
    try:
        with api(settings) as http:
            client = TaskgrouperClient(http=http)
            job = client.submit_job(**LONG_JOB)
            for attempt in (1, 2):
                worker = start_worker(processes, settings)
                poll(
                    lambda attempt=attempt: (
                        (j := job_of(client, job.id)).status == "running"
                        and j.attempts == attempt
                        and (j.progress.step or 0) > 0
                    ),
                    180,
                    f"attempt {attempt} to train",
                    processes.logs,
                )
                processes.kill(worker)
                # the heartbeat goes stale after stale_after seconds; sweep until the reaper acts
                poll(
                    lambda: (
                        job.id in reap(sessions, settings, executor.submit)
                        or job_of(client, job.id).status != "running"
                    ),
                    60,
                    f"the reaper to find attempt {attempt} lost",
                    processes.logs,
                )
                after = job_of(client, job.id)
                if attempt == 1:
                    assert after.status == "queued" and after.history[-1]["outcome"] == "lost", after
            assert after.status == "failed" and after.attempts == 2, after
            assert "max_attempts = 2" in after.error.reason and after.error.field is None, after.error
            assert [h["outcome"] for h in after.history] == ["lost", "lost"]
            # no later sweep brings it back
            assert job.id not in reap(sessions, settings, executor.submit)
            assert job_of(client, job.id).status == "failed"
            assert http.get(f"/jobs/{job.id}/affinity").status_code == 409
    finally:
        executor.close()
