"""The job runner: executes one affinity job from its row to its results. One function for both the
Celery task (``worker.tasks``) and the embedded in-process executor (``service.executor``).

Contract of :func:`run_job`:

* the job row is the source of truth; the runner *claims* it with a conditional update
  (``queued`` → ``running``; a ``running`` row is re-claimed, which is how a redelivered message
  resumes a job whose worker died) and does nothing for a job in a terminal state;
* progress and heartbeat are written at most once per ``progress_interval``; cancellation is read
  at the same pace and stops training at the next step;
* results are written in the same transaction that marks the job ``succeeded``, replacing any rows
  of an earlier attempt, so readers never see half a result and a rerun never duplicates one;
* bad input ends the job ``failed`` with ``error = {field, reason}``; an unexpected exception
  ends it ``failed`` with the exception's type and message (the traceback goes to the log);
* a process stop (``stop`` set, e.g. the API shutting down) puts the job back to ``queued``;
  the epoch checkpoints in ``checkpoint_dir`` let the next attempt resume.
"""

from __future__ import annotations

import logging
import shutil
import socket
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from grouping.affinity import compute_affinity
from grouping.data import DatasetSpec, load_dataset
from grouping.errors import InputError
from grouping.problem import parse_problem
from grouping.training import Cancelled
from service.db import transaction
from service.models import AffinityResult, Dataset, Grouping, Job, NetworkTable, utcnow
from service.schemas import JobCreate
from service.settings import Settings, get_settings
from worker.progress import JobProgress

log = logging.getLogger(__name__)

#: the singleton rules a network table is stored for (see the selection issue's affinity form)
SINGLETON_RULES = ("forbid", "normalized")


def run_job(
    job_id: str,
    session_factory: sessionmaker[Session],
    *,
    settings: Settings | None = None,
    worker: str | None = None,
    stop: threading.Event | None = None,
) -> str:
    """Run job ``job_id`` to a final state and return its status (see the module docstring)."""
    settings = settings or get_settings()
    job = _claim(job_id, session_factory, settings, worker or socket.gethostname())
    if job is None:
        with session_factory() as session:
            return session.scalar(select(Job.status).where(Job.id == job_id)) or "missing"
    progress = JobProgress(
        job_id,
        session_factory,
        interval=settings.progress_interval,
        stop=stop,
        start_fraction=0.0 if job.attempts == 1 else None,
    )
    try:
        request = JobCreate.model_validate(job.spec)
        dataset = load_dataset(dataset_spec(request, job, session_factory))
        run = compute_affinity(
            dataset,
            list(request.methods),
            request.model,
            request.training,
            progress=progress.report,
            should_cancel=progress.should_cancel,
            checkpoint_dir=Path(job.checkpoint_dir or settings.checkpoints_dir / job_id),
        )
    except Cancelled:
        if not progress.cancel_requested:
            return _requeue(job_id, session_factory)
        return _finish(job_id, session_factory, "cancelled")
    except InputError as exc:
        return _finish(job_id, session_factory, "failed", error={"field": exc.field, "reason": exc.reason})
    except Exception as exc:
        log.exception("job %s failed", job_id)
        return _finish(
            job_id,
            session_factory,
            "failed",
            error={"field": None, "reason": f"internal error: {type(exc).__name__}: {exc}"},
        )
    return _finish(job_id, session_factory, "succeeded", run=run)


def dataset_spec(request: JobCreate, job: Job, session_factory: sessionmaker[Session]) -> DatasetSpec:
    """The library's dataset spec for a job: a built-in name, or the stored file of an uploaded dataset."""
    source = request.dataset
    if job.dataset_id is not None:
        with session_factory() as session:
            row = session.get(Dataset, job.dataset_id)
            if row is None:
                raise InputError("dataset", f"dataset {job.dataset_id} no longer exists")
            source = row.path
    return DatasetSpec(source=source, features=request.features, tasks=request.tasks, split=request.split)


def _claim(
    job_id: str, session_factory: sessionmaker[Session], settings: Settings, worker: str
) -> Job | None:
    with transaction(session_factory) as session:
        job = session.get(Job, job_id)
        if job is None or job.status not in ("queued", "running"):
            return None
        if job.cancel_requested:
            job.status, job.finished_at = "cancelled", utcnow()
            return None
        claimed = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status.in_(("queued", "running")))
            .values(
                status="running",
                worker=worker,
                attempts=Job.attempts + 1,
                heartbeat_at=utcnow(),
                started_at=job.started_at or utcnow(),
                checkpoint_dir=job.checkpoint_dir or str(settings.checkpoints_dir / job_id),
            )
        ).rowcount
        if not claimed:
            return None
        session.refresh(job)
        return job


def _finish(
    job_id: str,
    session_factory: sessionmaker[Session],
    status: str,
    error: dict[str, Any] | None = None,
    run: Any = None,
) -> str:
    """Move the job to its final ``status``; with ``run``, write its results in the same transaction."""
    with transaction(session_factory) as session:
        job = session.get(Job, job_id)
        if job is None:
            return "missing"
        if run is not None:
            _write_results(session, job_id, run)
            job.device = str(run.metadata.get("device") or "") or job.device
            job.progress_fraction = 1.0
        now = utcnow()
        job.status, job.error, job.finished_at, job.eta_seconds = status, error, now, None
        job.run_seconds = (now - job.started_at).total_seconds() if job.started_at else None
        checkpoint_dir = job.checkpoint_dir
    if checkpoint_dir:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
    return status


def _requeue(job_id: str, session_factory: sessionmaker[Session]) -> str:
    with transaction(session_factory) as session:
        session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == "running")
            .values(status="queued", eta_seconds=None)
        )
    return "queued"


def _write_results(session: Session, job_id: str, run: Any) -> None:
    """Replace the job's affinity rows and network tables, dropping groupings solved from an earlier
    attempt's tables (idempotent across attempts).

    A network table is stored per singleton rule the matrix admits (``normalized`` needs positive
    self-affinities); the tables differ only in their ``singletons`` key.
    """
    session.execute(delete(AffinityResult).where(AffinityResult.job_id == job_id))
    session.execute(delete(NetworkTable).where(NetworkTable.job_id == job_id))
    session.execute(delete(Grouping).where(Grouping.job_id == job_id))
    for method, matrix in run.matrices.items():
        base = _jsonable(run.to_problem_dict(method, singletons="forbid"))
        session.add(
            AffinityResult(
                job_id=job_id,
                method=method,
                tasks=list(base["tasks"]),
                matrix=_jsonable(matrix),
                trajectory=[_jsonable(m) for m in run.trajectories.get(method, [])],
                meta=_jsonable({**run.metadata, "method": method}),
            )
        )
        for rule in SINGLETON_RULES:
            problem = {**base, "singletons": rule}
            try:
                parse_problem(problem)
            except InputError:
                continue
            session.add(NetworkTable(job_id=job_id, method=method, singletons=rule, problem=problem))


def _jsonable(value: Any) -> Any:
    """numpy arrays and scalars → lists and floats, recursively."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value
