"""Celery tasks: each message carries only a job id; the job row is the source of truth.

Worker life cycle (Celery signals): when a worker is ready it starts a :class:`worker.reaper.Reaper`
(which also watches the broker's start time, to republish queued jobs a broker restart lost);
on a warm shutdown (SIGTERM) it sets :data:`STOP`, so a running job ends its current step and goes
back to the queue — the task rejects its message with ``requeue`` and the next worker resumes the
job from its last epoch checkpoint. This reaches the task when it runs in the worker's main process,
which is why training workers use the ``solo`` pool (``taskgrouper worker`` does, at concurrency 1).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from celery import Task, signals
from celery.exceptions import Reject
from sqlalchemy.orm import Session, sessionmaker

from service import presence
from service.db import make_engine, make_session_factory
from service.groupings import precompute
from service.settings import Settings, get_settings
from service.study_answers import solve_answers
from worker.celery_app import RUN_JOB, RUN_TRIAL, SOLVE_GROUPINGS, SOLVE_STUDY_ANSWERS, app
from worker.heartbeat import Heartbeat
from worker.reaper import Reaper, broker_start_time
from worker.runner import run_job
from worker.trials import TrialReaper, run_trial

log = logging.getLogger(__name__)

#: set when this worker process is shutting down (SIGTERM): running jobs stop at their next step
STOP = threading.Event()
_reaper: list[Reaper | TrialReaper] = []
_presence: list[Callable[[], None]] = []


@lru_cache(maxsize=1)
def session_factory() -> sessionmaker[Session]:
    """This worker process's sessions (created on first use, i.e. after the prefork)."""
    return make_session_factory(make_engine(get_settings().resolved_database_url, pool_size=2))


def publish_job(job_id: str) -> None:
    """Queue a run of job ``job_id`` (used by the reaper)."""
    app.send_task(RUN_JOB, args=[job_id], queue=get_settings().training_queue)


def publish_trial(trial_id: str) -> None:
    """Queue a run of a builtin study's trial (used by the trial reaper)."""
    app.send_task(RUN_TRIAL, args=[trial_id], queue=get_settings().training_queue)


@signals.worker_ready.connect
def _start_reaper(sender: Any = None, **_: Any) -> None:
    settings = get_settings()
    try:
        _start_presence(sender, settings)
    except Exception:  # the metric then misses this worker; its jobs still run
        log.warning("worker presence not started", exc_info=True)
    reaper = Reaper(
        make_session_factory(make_engine(settings.resolved_database_url, pool_size=1)),
        settings,
        publish_job,
        broker_start_time(settings.broker_url),
    )
    reaper.start()
    _reaper.append(reaper)
    trials = TrialReaper(session_factory(), settings.reap_interval, publish_trial)
    trials.start()
    _reaper.append(trials)


@signals.worker_shutting_down.connect
def _stop_jobs(**_: Any) -> None:
    STOP.set()
    for reaper in _reaper:
        reaper.stop()
    for stop in _presence:
        stop()


def _start_presence(consumer: Any, settings: Settings) -> None:
    """Beat this worker's presence (``service.presence``) every ``heartbeat_interval`` until shutdown,
    for the ``taskgrouper_workers_alive`` metric; it leaves the sets when it stops."""
    import redis

    if not (settings.broker_url or "").startswith(("redis://", "rediss://", "unix://")):
        return
    client = redis.Redis.from_url(settings.broker_url, socket_timeout=5, socket_connect_timeout=5)
    name = getattr(consumer, "hostname", None) or app.conf.get("worker_name") or "worker"
    queues = sorted(app.amqp.queues.consume_from or app.amqp.queues) or [settings.training_queue]
    presence.beat(client, name, queues)
    running = contextlib.ExitStack()
    running.callback(_leave, client, name, queues)
    running.enter_context(Heartbeat(lambda: presence.beat(client, name, queues), settings.heartbeat_interval))
    _presence.append(running.close)


def _leave(client: Any, name: str, queues: list[str]) -> None:
    try:
        presence.leave(client, name, queues)
    except Exception:
        log.warning("worker %s: presence not removed", name, exc_info=True)


@app.task(name=RUN_JOB, bind=True)
def run_job_task(self: Task, job_id: str) -> str:
    """Run the job; on success queue the precomputation of its groupings on the solve queue
    (if that cannot be queued, ``GET /groupings`` solves on demand); requeue it when stopped."""
    status = run_job(
        job_id, session_factory(), settings=get_settings(), worker=self.request.hostname, stop=STOP
    )
    if status == "queued":
        raise Reject(f"job {job_id} requeued: the worker is shutting down", requeue=True)
    if status == "succeeded":
        try:
            app.send_task(SOLVE_GROUPINGS, args=[job_id])
        except Exception:
            log.warning("job %s: groupings not queued for precomputation", job_id, exc_info=True)
    return status


@app.task(name=SOLVE_GROUPINGS)
def solve_groupings_task(job_id: str) -> int:
    """Solve and store the job's groupings at every default budget (idempotent)."""
    return precompute(session_factory(), job_id, time_limit=get_settings().solve_time_limit)


@app.task(name=RUN_TRIAL, bind=True)
def run_trial_task(self: Task, trial_id: str) -> int:
    """Train a builtin study's trial (``worker.trials``; a finished or held trial is left alone) and
    publish the next round of an adaptive study it completed; how many were published."""
    published = run_trial(trial_id, session_factory(), worker=self.request.hostname,
                          settings=get_settings(), stop=STOP)
    for new in published:
        publish_trial(new)
    return len(published)


@app.task(name=SOLVE_STUDY_ANSWERS)
def solve_study_answers_task(study_id: str, solver: str, budgets: list[float], token: str) -> int:
    """Solve and store a study's answers on what it has measured now (``service.study_answers``),
    releasing the refresh claim ``token``; how many budgets were asked for."""
    settings = get_settings()
    solve_answers(session_factory(), study_id, solver, budgets, time_limit=settings.solve_time_limit,
                  max_budgets=settings.max_budgets, token=token)
    return len(budgets)
