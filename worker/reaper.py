"""The reaper: gives jobs of dead workers, and jobs whose queue message was lost, back to the queue.

* A ``running`` job whose heartbeat is older than ``stale_after`` seconds lost its worker (killed,
  machine gone, network cut): it is set back to ``queued`` and its message published again; the next
  worker resumes it from its last epoch checkpoint. The broker would redeliver the unacknowledged
  message too, but only after its visibility timeout (hours, to suit long jobs); the reaper does
  not wait that long. Should the old worker still be alive after all, its fenced writes no longer
  match the row and it stops (see ``worker.progress``).
* A ``queued`` job published more than ``requeue_queued_after`` seconds ago is published again, in
  case the broker lost the message (e.g. Redis restarted without persistence). A duplicate message is
  harmless: a worker that finds the job claimed or finished does nothing.

Each re-enqueue is a conditional update on the value the reaper read, so reapers running in every
worker at once publish each job once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from service.db import transaction
from service.models import Job, utcnow
from service.settings import Settings

log = logging.getLogger(__name__)


def reap(
    session_factory: sessionmaker[Session], settings: Settings, publish: Callable[[str], None]
) -> list[str]:
    """One sweep (see the module docstring); the ids of the jobs published again."""
    now = utcnow()
    stale = now - timedelta(seconds=settings.stale_after)
    forgotten = now - timedelta(seconds=settings.requeue_queued_after)
    with session_factory() as session:
        candidates = session.execute(
            select(Job.id, Job.status, Job.heartbeat_at, Job.enqueued_at).where(
                or_(
                    (Job.status == "running") & (Job.heartbeat_at < stale),
                    (Job.status == "queued") & or_(Job.enqueued_at.is_(None), Job.enqueued_at < forgotten),
                )
            )
        ).all()
    published = []
    for job_id, status, heartbeat_at, enqueued_at in candidates:
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


def _lost(history: list | None, heartbeat_at: object) -> list:
    entry = {"outcome": "lost", "last_heartbeat": str(heartbeat_at)}
    return [*history[:-1], {**history[-1], **entry}] if history else [entry]


class Reaper:
    """Runs :func:`reap` every ``settings.reap_interval`` seconds in a daemon thread."""

    def __init__(
        self, session_factory: sessionmaker[Session], settings: Settings, publish: Callable[[str], None]
    ) -> None:
        self.session_factory = session_factory
        self.settings = settings
        self.publish = publish
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="taskgrouper-reaper", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()

    def _run(self) -> None:
        while not self.stopped.wait(self.settings.reap_interval):
            try:
                reap(self.session_factory, self.settings, self.publish)
            except Exception:
                log.warning("reaper sweep failed", exc_info=True)
