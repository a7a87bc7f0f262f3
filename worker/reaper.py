"""The reaper: gives jobs of dead workers, and jobs whose queue message was lost, back to the queue.

* A ``running`` job whose heartbeat is older than ``stale_after`` seconds lost its worker (killed,
  machine gone, network cut): it is set back to ``queued`` and its message published again; the next
  worker resumes it from its last epoch checkpoint. The broker would redeliver the unacknowledged
  message too, but only after its visibility timeout (hours, to suit long jobs); the reaper does
  not wait that long. Should the old worker still be alive after all, its fenced writes no longer
  match the row and it stops (see ``worker.progress``).
* The attempt cap: a lost job already claimed ``max_attempts`` times is not requeued but set
  ``failed`` with a reason naming the cap (a job that kills its worker — out of memory, a crash in
  native code — would otherwise take workers down in a loop). :func:`attempts_exhausted` is the one
  rule; the claim in ``worker.runner`` applies it too, to a lost job whose message came back.
* A ``queued`` job whose message the broker may have lost is published again:

  - when the broker (Redis) started after the job was published — Redis restarted, and without
    persistence every message is gone. Each sweep asks the broker its uptime
    (:class:`RedisStartTime`), so a restart is noticed within ``reap_interval``;
  - in any case when it was published more than ``requeue_queued_after`` seconds ago (a message
    lost some other way, e.g. a failover to a replica that had not received it).

  A duplicate message is harmless: a worker that finds the job claimed or finished does nothing.

Each re-enqueue is a conditional update on the value the reaper read, so reapers running in every
worker at once publish each job once.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from service.db import transaction
from service.models import Job, utcnow
from service.settings import Settings

log = logging.getLogger(__name__)

#: seconds added to the broker's computed start time: its uptime is whole seconds, and the clocks of
#: the API (which stamps ``enqueued_at``) and of this worker may differ a little. A job published
#: within this margin after a restart may be published twice, which is harmless.
BROKER_START_MARGIN = 2.0

#: when the broker last started (None: unknown — not Redis, or unreachable)
BrokerStartTime = Callable[[], datetime | None]


def attempts_exhausted(attempts: int, settings: Settings) -> bool:
    """Whether a job that was claimed ``attempts`` times and lost its last attempt must fail
    rather than run again."""
    return attempts >= settings.max_attempts


def exhausted_error(attempts: int, settings: Settings) -> dict[str, Any]:
    """The ``error`` of a job failed by the attempt cap."""
    return {
        "field": None,
        "reason": (
            f"the job was lost (its worker stopped responding) on each of its {attempts} attempts; "
            f"it is not retried beyond max_attempts = {settings.max_attempts}"
        ),
    }


def reap(
    session_factory: sessionmaker[Session],
    settings: Settings,
    publish: Callable[[str], None],
    broker_started_at: BrokerStartTime | None = None,
) -> list[str]:
    """One sweep (see the module docstring); the ids of the jobs published again (a lost job failed
    by the attempt cap is not among them)."""
    now = utcnow()
    stale = now - timedelta(seconds=settings.stale_after)
    forgotten = now - timedelta(seconds=settings.requeue_queued_after)
    started = broker_started_at() if broker_started_at is not None else None
    if started is not None:
        forgotten = max(forgotten, min(now, started + timedelta(seconds=BROKER_START_MARGIN)))
    with session_factory() as session:
        candidates = session.execute(
            select(Job.id, Job.status, Job.heartbeat_at, Job.enqueued_at, Job.attempts).where(
                or_(
                    (Job.status == "running") & (Job.heartbeat_at < stale),
                    (Job.status == "queued") & or_(Job.enqueued_at.is_(None), Job.enqueued_at < forgotten),
                )
            )
        ).all()
    published = []
    for job_id, status, heartbeat_at, enqueued_at, attempts in candidates:
        if status == "running" and attempts_exhausted(attempts, settings):
            _fail_exhausted(session_factory, settings, job_id, heartbeat_at, attempts)
            continue
        with transaction(session_factory) as session:
            if status == "running":
                job = session.get(Job, job_id)
                matched = session.execute(
                    update(Job)
                    .where(Job.id == job_id, Job.status == "running", Job.heartbeat_at == heartbeat_at)
                    .values(status="queued", enqueued_at=now, history=_lost(job.history, heartbeat_at))
                ).rowcount
            else:
                same = Job.enqueued_at.is_(None) if enqueued_at is None else Job.enqueued_at == enqueued_at
                matched = session.execute(
                    update(Job).where(Job.id == job_id, Job.status == "queued", same).values(enqueued_at=now)
                ).rowcount
        if matched:
            log.warning(
                "re-enqueueing job %s (%s)", job_id, "worker lost" if status == "running" else "queued"
            )
            publish(job_id)
            published.append(job_id)
    return published


def _fail_exhausted(
    session_factory: sessionmaker[Session],
    settings: Settings,
    job_id: str,
    heartbeat_at: datetime,
    attempts: int,
) -> None:
    """Fail a lost job that used up its attempts (conditional, like a requeue); its checkpoint goes."""
    with transaction(session_factory) as session:
        job = session.get(Job, job_id)
        matched = session.execute(
            update(Job)
            .where(
                Job.id == job_id,
                Job.status == "running",
                Job.heartbeat_at == heartbeat_at,
                Job.attempts == attempts,
            )
            .values(
                status="failed",
                error=exhausted_error(attempts, settings),
                finished_at=utcnow(),
                eta_seconds=None,
                history=_lost(job.history, heartbeat_at),
            )
        ).rowcount
        checkpoint_dir = job.checkpoint_dir
    if matched:
        log.warning("job %s failed: lost on each of its %d attempts", job_id, attempts)
        if checkpoint_dir:
            shutil.rmtree(checkpoint_dir, ignore_errors=True)


def _lost(history: list | None, heartbeat_at: object) -> list:
    entry = {"outcome": "lost", "last_heartbeat": str(heartbeat_at)}
    return [*history[:-1], {**history[-1], **entry}] if history else [entry]


class RedisStartTime:
    """When the Redis server at ``url`` last started: this machine's now minus the server's uptime
    (so the two machines' clocks need not agree). ``None`` when Redis cannot be asked."""

    def __init__(self, url: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)

    def __call__(self) -> datetime | None:
        from redis.exceptions import RedisError

        try:
            uptime = float(self.client.info("server")["uptime_in_seconds"])
        except (RedisError, OSError, KeyError, TypeError, ValueError):
            log.debug("broker uptime unavailable", exc_info=True)
            return None
        return utcnow() - timedelta(seconds=uptime)


def broker_start_time(broker_url: str | None) -> BrokerStartTime | None:
    """A :class:`RedisStartTime` for a Redis broker URL; ``None`` for any other broker (then only
    ``requeue_queued_after`` republishes queued jobs)."""
    if broker_url and broker_url.startswith(("redis://", "rediss://", "unix://")):
        return RedisStartTime(broker_url)
    return None


class Reaper:
    """Runs :func:`reap` every ``settings.reap_interval`` seconds in a daemon thread."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        settings: Settings,
        publish: Callable[[str], None],
        broker_started_at: BrokerStartTime | None = None,
    ) -> None:
        self.session_factory = session_factory
        self.settings = settings
        self.publish = publish
        self.broker_started_at = broker_started_at
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="taskgrouper-reaper", daemon=True)

    def start(self) -> None:
        """Start sweeping."""
        self.thread.start()

    def stop(self) -> None:
        """Stop after the current sweep."""
        self.stopped.set()

    def _run(self) -> None:
        while not self.stopped.wait(self.settings.reap_interval):
            try:
                reap(self.session_factory, self.settings, self.publish, self.broker_started_at)
            except Exception:
                log.warning("reaper sweep failed", exc_info=True)
