"""Fault injection with real processes: Celery worker subprocesses on real PostgreSQL and Redis.

* kill -9 a worker mid-training, start another: the reaper re-enqueues the job (its heartbeat went
  stale), the new worker resumes it from its last epoch checkpoint (the epochs before were not run
  again), and it succeeds exactly once with one set of results;
* restart Redis (our own ``redis-server`` on a free loopback port, killed and started empty) while a
  job runs and another waits in the queue: both complete;
* SIGTERM a worker mid-training (a rolling deploy): it finishes the step, puts the job back in the
  queue and exits; the next worker takes the requeued message at once (no wait for the reaper) and
  resumes from the last epoch checkpoint;
* cancel a running job: it stops within seconds and nothing is published for it.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from child_processes import Processes, free_port, running_in
from conftest import TINY_JOB, service_env
from sqlalchemy import func, select

from service.client import TERMINAL, TaskgrouperClient
from service.models import AffinityResult, Grouping, Job, NetworkTable
from service.schemas import JobOut
from service.settings import Settings
from worker.runner import checkpoint_epoch

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.timeout(1200)]

#: a job whose state has not changed for this long is stuck; generous, because a worker's start
#: (imports, connections) or an epoch can take a minute on a busy machine. The waits below end as soon
#: as the state they wait for is reached, so a generous value costs nothing when all is well.
STALL_SECONDS = 300.0
#: rows of digits-attributes' training split / batch size: steps per epoch of the jobs below
STEPS_PER_EPOCH = 10
LONG_JOB = {**TINY_JOB, "training": {"epochs": 6, "batch_size": 128, "patience": 0, "every": 5}}



@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    yield from running_in(tmp_path)


@pytest.fixture
def fault_settings(server_settings: Settings, private_db: str) -> Settings:
    """Server settings with a fast heartbeat and reaper (a worker silent for 3 s is presumed dead), and
    a database and queues of this test alone: no other test's jobs ahead of its own (a reaper
    republishes every long-queued job of its database onto its queue)."""
    tag = uuid.uuid4().hex[:8]
    return server_settings.model_copy(
        update={
            "database_url": private_db,
            "heartbeat_interval": 0.3,
            "stale_after": 3.0,
            "reap_interval": 0.5,
            "progress_interval": 0.2,
            "training_queue": f"{server_settings.training_queue}-{tag}",
            "solve_queue": f"{server_settings.solve_queue}-{tag}",
        }
    )


def worker_command() -> list[str]:
    exe = shutil.which("taskgrouper")
    prefix = [exe] if exe else [sys.executable, "-m", "service.cli"]
    return [*prefix, "worker", "--loglevel", "WARNING"]


@pytest.fixture
def start_worker(processes: Processes, fault_settings: Settings) -> Callable[..., subprocess.Popen]:
    """Start a Celery worker subprocess (solo pool, both queues) for ``fault_settings``."""
    counter = iter(range(100))

    def start(**overrides: str) -> subprocess.Popen:
        env = service_env(fault_settings) | overrides
        return processes.start(f"worker-{next(counter)}", worker_command(), env)

    return start


@pytest.fixture
def api(fault_settings: Settings) -> Iterator[TaskgrouperClient]:
    """The API in-process (server mode, API key of the test's project); jobs go to the real Redis."""
    from conftest import _client

    for http in _client(fault_settings):
        yield TaskgrouperClient(http=http)


def wait_for(
    client: TaskgrouperClient,
    job_id: str,
    predicate: Callable[[JobOut], bool],
    processes: Processes,
    workers: Sequence[subprocess.Popen] = (),
    stall: float = STALL_SECONDS,
) -> JobOut:
    """Poll the job until ``predicate`` holds. The wait is derived from state, not a fixed time: it
    fails when the job's observable state (status, attempts, epoch, step) has not changed for
    ``stall`` seconds, or as soon as every process in ``workers`` has exited (nobody is left to
    move the job on)."""
    changed, last = time.monotonic(), None
    while not predicate(job := client.job(job_id)):
        state = (job.status, job.attempts, job.progress.epoch, job.progress.step)
        if state != last:
            changed, last = time.monotonic(), state
        assert time.monotonic() - changed < stall, f"no change in {stall:g} s: {job}\n{processes.logs()}"
        alive = not workers or any(w.poll() is None for w in workers)
        assert alive, f"every worker exited: {job}\n{processes.logs()}"
        time.sleep(0.1)
    return job


def finished(job: JobOut) -> bool:
    return job.status in TERMINAL


def wait_for_exit(process: subprocess.Popen, processes: Processes, deadline: float = STALL_SECONDS) -> int:
    """The exit code of a process asked to stop; fails with the logs past a generous deadline."""
    try:
        return process.wait(timeout=deadline)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the process did not exit within {deadline:g} s\n{processes.logs()}")


def result_counts(client: TaskgrouperClient, job_id: str) -> dict[str, int]:
    with client.http.app.state.session_factory() as session:
        return {
            table.__tablename__: session.scalar(
                select(func.count()).select_from(table).where(table.job_id == job_id)
            )
            for table in (AffinityResult, NetworkTable, Grouping)
        }


def test_kill_9_worker_mid_job_resumes_from_checkpoint(api, start_worker, processes):
    first = start_worker()
    job = api.submit_job(**LONG_JOB)
    # two epochs done (a checkpoint on disk), the third under way
    running = wait_for(api, job.id, lambda j: (j.progress.epoch or 0) >= 3, processes, [first])
    assert running.status == "running" and running.attempts == 1
    processes.kill(first)
    # What the killed worker left on disk. (Not the job row's progress: that is written at most once per
    # interval, so it can lag the checkpoint, and a bound on it raced with the worker.)
    with api.http.app.state.session_factory() as session:
        directory = Path(session.get(Job, job.id).checkpoint_dir)
    checkpointed = checkpoint_epoch(directory)

    second = start_worker()
    done = wait_for(api, job.id, finished, processes, [second])
    assert done.status == "succeeded" and done.attempts == 2, done
    first_attempt, second_attempt = done.history
    assert first_attempt["outcome"] == "lost" and first_attempt["resumed_from_epoch"] is None
    assert second_attempt["outcome"] == "succeeded"
    resumed = done.resumed_from_epoch
    assert resumed == second_attempt["resumed_from_epoch"] and 2 <= resumed < 6
    # it resumed from the last checkpoint the killed worker wrote (at most the epoch under way is lost),
    # and its first step is the first after it: earlier epochs were not re-run
    assert resumed == checkpointed
    assert second_attempt["first_step"] == resumed * STEPS_PER_EPOCH + 1
    assert done.progress.step == done.progress.total_steps == 6 * STEPS_PER_EPOCH
    affinity = api.affinity(job.id)["methods"]["tag"]
    assert len(affinity["trajectory"]) == 6 and affinity["metadata"]["epochs"] == 6
    assert result_counts(api, job.id)["affinity_results"] == 1
    grouping = api.groupings(job.id, 2)
    assert grouping.status == "optimal"


def test_sigterm_requeues_the_running_job_and_the_next_worker_resumes_it(api, start_worker, processes):
    first = start_worker()
    job = api.submit_job(**LONG_JOB)
    wait_for(api, job.id, lambda j: (j.progress.epoch or 0) >= 3, processes, [first])
    first.send_signal(signal.SIGTERM)  # the worker process itself: Celery's warm shutdown
    # it finishes the step, puts the job back and exits (the job row says when; no fixed wait)
    requeued = wait_for(api, job.id, lambda j: j.status != "running", processes, [first])
    assert requeued.status == "queued" and requeued.history[-1]["outcome"] == "requeued", requeued
    assert wait_for_exit(first, processes) == 0, processes.logs()
    with api.http.app.state.session_factory() as session:
        row = session.get(Job, job.id)
        checkpointed = checkpoint_epoch(Path(row.checkpoint_dir))
        enqueued_at = row.enqueued_at
    # it stopped mid-job: the training was not run to its end before the worker let go
    assert checkpointed is not None and 2 <= checkpointed < 6, checkpointed

    second = start_worker()
    done = wait_for(api, job.id, finished, processes, [second])
    assert done.status == "succeeded" and done.attempts == 2, done
    first_attempt, second_attempt = done.history
    assert first_attempt["outcome"] == "requeued" and second_attempt["outcome"] == "succeeded"
    assert done.resumed_from_epoch == second_attempt["resumed_from_epoch"] == checkpointed
    assert second_attempt["first_step"] == checkpointed * STEPS_PER_EPOCH + 1
    assert result_counts(api, job.id)["affinity_results"] == 1
    # the next worker took the message the first one gave back: a reaper republishing the job (only
    # after requeue_queued_after) would have stamped a new enqueued_at
    with api.http.app.state.session_factory() as session:
        assert session.get(Job, job.id).enqueued_at == enqueued_at


def test_redis_restart_mid_job_loses_no_job(fault_settings, start_worker, processes, tmp_path):
    port = free_port()
    redis_cmd = [
        "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
        "--dir", str(tmp_path),
    ]  # fmt: skip
    redis_server = processes.start("redis", redis_cmd)
    url = f"redis://127.0.0.1:{port}/0"
    settings = fault_settings.model_copy(update={"broker_url": url, "requeue_queued_after": 4.0})
    deadline = time.monotonic() + STALL_SECONDS  # generous: a failed start ends the wait at once
    while subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).returncode:
        assert time.monotonic() < deadline and redis_server.poll() is None, processes.logs()
        time.sleep(0.1)
    from conftest import _client

    for http in _client(settings):
        client = TaskgrouperClient(http=http)
        worker = start_worker(TASKGROUPER_BROKER_URL=url, TASKGROUPER_REQUEUE_QUEUED_AFTER="4")
        running = client.submit_job(**{**LONG_JOB, "training": {**LONG_JOB["training"], "epochs": 4}})
        waiting = client.submit_job(**TINY_JOB)  # queued behind it, its message only in Redis
        wait_for(client, running.id, lambda j: (j.progress.step or 0) > 0, processes, [worker])
        processes.kill(redis_server)  # every message and unacked delivery is gone
        time.sleep(1.0)
        redis_server = processes.start("redis-restarted", redis_cmd)
        for job in (running, waiting):
            done = wait_for(client, job.id, finished, processes, [worker])
            assert done.status == "succeeded", done
        assert client.job(running.id).attempts == 1  # the running job was not interrupted
        assert result_counts(client, waiting.id)["affinity_results"] == 1


def test_cancel_stops_a_running_job_and_publishes_nothing(api, start_worker, processes):
    worker = start_worker()
    job = api.submit_job(**{**LONG_JOB, "training": {**LONG_JOB["training"], "epochs": 200}})
    wait_for(api, job.id, lambda j: j.status == "running" and (j.progress.step or 0) > 0, processes, [worker])
    assert api.cancel(job.id).cancel_requested
    # it stops at the next step: the wait ends on the status change, and how little of the 200 epochs
    # ran (not seconds, which a busy machine stretches) shows that it stopped promptly
    cancelled = wait_for(api, job.id, lambda j: j.status != "running", processes, [worker])
    assert cancelled.status == "cancelled" and cancelled.progress.fraction < 0.5, cancelled
    assert cancelled.history[-1]["outcome"] == "cancelled"
    assert result_counts(api, job.id) == {"affinity_results": 0, "network_tables": 0, "groupings": 0}
    response = api.http.get("/groupings", params={"job_id": job.id, "budget": 2})
    assert response.status_code == 409 and response.json()["job_status"] == "cancelled"
    assert api.http.get(f"/jobs/{job.id}/affinity").status_code == 409
