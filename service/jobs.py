"""Job submission, lookup and cancellation — shared by the API routes and ``taskgrouper demo``."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, literal, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from grouping.data import BUILTIN_DATASETS
from grouping.errors import InputError
from service.datasets import check_columns
from service.db import transaction
from service.errors import ApiError
from service.models import Dataset, Job, utcnow
from service.schemas import JobCreate, JobError, JobOut, Progress, Timings

log = logging.getLogger(__name__)


def spec_hash(spec: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a validated request with its defaults filled in (what "the
    same body" means for an idempotency key)."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def create_job(
    session_factory: sessionmaker[Session],
    request: JobCreate,
    *,
    project: str,
    idempotency_key: str | None = None,
) -> tuple[Job, bool]:
    """Insert a queued job for ``request`` (stored as given, without the defaults, so that it validates
    again exactly as it did now — except ``methods`` and the ``warm_start`` options, stored in full so
    that a later change of their defaults never changes what this job runs); ``(job, created)``. With
    an idempotency key already used for the same request, returns that job (``created`` False); for
    another request, a 409. A job the server failed to queue no longer holds its key (see
    :func:`fail_unqueued`). An uploaded dataset deleted between its check and the insert (the
    database's foreign key refuses the row) is an ``InputError`` (422) naming ``dataset``."""
    spec = request.model_dump(mode="json", exclude_unset=True)
    spec["methods"] = list(request.methods)
    if request.warm_start is not None:
        spec["warm_start"] = request.warm_start.model_dump(mode="json")
    digest = spec_hash(request.model_dump(mode="json"))
    if idempotency_key is not None:
        replay = _replay(session_factory, project, idempotency_key, digest)
        if replay is not None:
            return replay, False
    dataset_id = resolve_dataset(session_factory, request, project)
    job = Job(
        project=project,
        status="queued",
        spec=spec,
        spec_hash=digest,
        idempotency_key=idempotency_key,
        dataset_id=dataset_id,
        cancel_requested=False,
        progress_fraction=0.0,
        attempts=0,
        created_at=utcnow(),
        enqueued_at=utcnow(),
    )
    try:
        with transaction(session_factory) as session:
            session.add(job)
    except IntegrityError:
        replay = _replay(session_factory, project, idempotency_key, digest) if idempotency_key else None
        if replay is not None:
            return replay, False
        if dataset_id is not None and not _dataset_exists(session_factory, dataset_id):
            raise InputError(
                "dataset", f"dataset {dataset_id} no longer exists (it was deleted meanwhile)"
            ) from None
        raise
    return job, True


def _dataset_exists(session_factory: sessionmaker[Session], dataset_id: str) -> bool:
    with session_factory() as session:
        return session.scalar(select(Dataset.id).where(Dataset.id == dataset_id)) is not None


def fail_unqueued(session_factory: sessionmaker[Session], job_id: str, exc: BaseException) -> None:
    """Record that the server could not queue job ``job_id`` (the broker refused or was unreachable).

    Idempotency never replays such a submission: the job is set ``failed`` with the reason, and
    its ``Idempotency-Key`` is released (set to null) in the same update, so the client's retry
    with that key creates and queues a new job instead of being answered with this one. The
    failed row stays as the record of the refused attempt (``error.reason`` says the key was
    released). Conditional on the job still being ``queued`` and unclaimed, so a worker that somehow
    got the message after all is never overruled.

    A request that replayed the key in the instant between the insert and this update got this
    job's id; it then sees the job ``failed`` with that reason, and its next retry submits anew.
    """
    reason = (
        f"could not be queued: {type(exc).__name__}: {exc}; "
        "its Idempotency-Key (if any) was released, so a retry with it submits the job anew"
    )
    with transaction(session_factory) as session:
        session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == "queued", Job.attempts == 0)
            .values(
                status="failed",
                finished_at=utcnow(),
                idempotency_key=None,
                error={"field": None, "reason": reason[:1000]},
            )
        )


def _replay(session_factory: sessionmaker[Session], project: str, key: str, digest: str) -> Job | None:
    with session_factory() as session:
        job = session.scalar(select(Job).where(Job.project == project, Job.idempotency_key == key))
    if job is not None and job.spec_hash != digest:
        raise ApiError(
            409,
            "Idempotency-Key was already used with a different request body",
            field="Idempotency-Key",
            job_id=job.id,
        )
    return job


def resolve_dataset(session_factory: sessionmaker[Session], request: JobCreate, project: str) -> str | None:
    """``None`` for a built-in dataset, else the id of the project's uploaded dataset (columns checked)."""
    if request.dataset in BUILTIN_DATASETS:
        return None
    with session_factory() as session:
        dataset = session.get(Dataset, request.dataset)
    if dataset is None or dataset.project != project:
        raise InputError(
            "dataset",
            f"{request.dataset!r} is neither a built-in dataset "
            f"({', '.join(sorted(BUILTIN_DATASETS))}) nor the id of an uploaded dataset",
        )
    check_columns(dataset, request.features, request.tasks, request.split.column)
    return dataset.id


def get_job(session_factory: sessionmaker[Session], job_id: str, project: str) -> Job:
    """The project's job ``job_id``, or a 404."""
    with session_factory() as session:
        job = session.get(Job, job_id)
    return owned(job, job_id, project)


def owned(job: Job | None, job_id: str, project: str) -> Job:
    """``job`` if it exists and belongs to ``project``, else a 404 (another project's job is not found)."""
    if job is None or job.project != project:
        raise ApiError(404, f"no job {job_id}", field="job_id")
    return job


@dataclass(frozen=True)
class JobListing:
    """A page of a project's job list: its rows, how many jobs match, and the position (0-based) of
    the first row among them."""

    rows: list[Job]
    total: int
    offset: int


def list_jobs(
    session_factory: sessionmaker[Session],
    project: str,
    *,
    status: str | None = None,
    limit: int = 50,
    offset: int = 0,
    after: str | None = None,
) -> JobListing:
    """The project's jobs newest first (``created_at``, then ``id``, descending), optionally of one
    ``status``: ``limit`` of them, skipping ``offset`` after the job ``after`` (keyset paging: the
    page's rows are read from the index ``(project[, status], created_at, id)`` from the cursor on,
    so a deep page costs what the first does; without ``after``, from the newest). A 404 naming
    ``after`` when that job is not one of the project's (deleted, or never existed). Its few reads
    need no common snapshot: ``session_factory`` may be an autocommit one (no BEGIN/ROLLBACK)."""
    where = [Job.project == project] + ([Job.status == status] if status else [])
    counts = [func.count()]
    if after is not None:
        anchor = select(Job.created_at).where(Job.id == after, Job.project == project).scalar_subquery()
        key, cursor = tuple_(Job.created_at, Job.id), tuple_(anchor, literal(after, Job.id.type))
        found = select(func.count()).select_from(Job).where(Job.id == after, Job.project == project)
        counts += [func.count().filter(key >= cursor), found.scalar_subquery()]
    with session_factory() as session:
        # two statements: the counts (and whether the cursor exists), then the page's rows
        total, *before = session.execute(select(*counts).select_from(Job).where(*where)).one()
        if after is not None:
            if not before[1]:
                raise ApiError(404, f"no job {after} (the cursor of this page)", field="after")
            where.append(key < cursor)
        rows = session.scalars(
            select(Job)
            .where(*where)
            .order_by(Job.created_at.desc(), Job.id.desc())
            .limit(limit)
            .offset(offset)
        ).all()
    position = offset + (before[0] if before else 0)
    return JobListing(rows=list(rows), total=total, offset=position)


def cancel_job(session_factory: sessionmaker[Session], job_id: str, project: str) -> Job:
    """Cancel a queued job now, or ask a running one to stop at its next step (idempotent); 409 when it
    has already succeeded or failed. A queued job cancelled here loses the checkpoint folder an
    earlier, interrupted attempt left (a running job's worker removes it when it stops)."""
    job = get_job(session_factory, job_id, project)
    with transaction(session_factory) as session:
        now_cancelled = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == "queued")
            .values(status="cancelled", cancel_requested=True, finished_at=utcnow())
        ).rowcount
        session.execute(
            update(Job).where(Job.id == job_id, Job.status == "running").values(cancel_requested=True)
        )
        job = session.get(Job, job_id, populate_existing=True)
    if now_cancelled and job.checkpoint_dir:
        shutil.rmtree(job.checkpoint_dir, ignore_errors=True)
    if job.status in ("succeeded", "failed"):
        raise ApiError(409, f"job {job_id} has already {job.status}", job_status=job.status)
    return job


def delete_job(
    session_factory: sessionmaker[Session], job_id: str, project: str, *, checkpoints: Path
) -> None:
    """Delete the project's job ``job_id`` with everything it produced: its row, its results
    (affinity rows, network tables and groupings go with it through their foreign keys' cascade)
    and its checkpoint folder (``job.checkpoint_dir``, and ``checkpoints/<job id>`` where workers
    put it).

    A 404 :class:`ApiError` (on ``job_id``) when the job does not exist or belongs to another
    project. A ``running`` job is not deleted: it is asked to cancel (as ``POST /jobs/{id}/cancel``
    does) and the answer is a 409 asking the client to retry once the job has stopped — its worker
    may still be writing to the row and the checkpoint folder. A ``queued`` job is deleted at once
    (a worker that receives its message later finds no job and does nothing), as is a finished one
    (succeeded, failed, cancelled). The row is locked first (PostgreSQL), so a worker claiming the
    job meanwhile either claims it first (and this is a 409) or finds it gone. The folder is removed
    after the row's deletion commits. A deleted job's ``Idempotency-Key`` is free again."""
    with transaction(session_factory) as session:
        job = owned(session.get(Job, job_id, with_for_update=True), job_id, project)
        if job.status == "running":
            job.cancel_requested = True
            raise_after = ApiError(
                409,
                f"job {job_id} is running: it was asked to cancel; retry DELETE once it has stopped "
                "(GET /jobs/{id} shows its status)",
                headers={"Retry-After": "1"},
                field="job_id",
                job_status=job.status,
            )
        else:
            raise_after = None
            folders = {Path(job.checkpoint_dir)} if job.checkpoint_dir else set()
            folders.add(checkpoints / job_id)
            session.delete(job)
    if raise_after is not None:
        raise raise_after
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
        if folder.exists():
            log.warning("job %s deleted, but its checkpoint folder %s could not be removed", job_id, folder)


def job_links(job_id: str) -> dict[str, str]:
    """Where to go from a job."""
    return {
        "self": f"/jobs/{job_id}",
        "cancel": f"/jobs/{job_id}/cancel",
        "affinity": f"/jobs/{job_id}/affinity",
        "groupings": f"/groupings?job_id={job_id}&budget=2",
    }


def job_request(job: Job) -> JobCreate:
    """The job's validated request."""
    return JobCreate.model_validate(job.spec)


@lru_cache(maxsize=1024)
def _shown_request(stored: str) -> str:
    """The JSON of a stored request (canonical JSON) with the defaults filled in, or as stored when it no
    longer validates (a validation rule tightened since). Cached: a job list shows the same few requests
    over and over, and validating one costs far more than the lookup."""
    try:
        return JobCreate.model_validate_json(stored).model_dump_json()
    except ValidationError:
        return json.dumps({"methods": [], **json.loads(stored)})


def job_out(job: Job) -> JobOut:
    """The API view of a job row (its request shown with the defaults filled in; a request stored
    before a validation rule tightened, which no longer validates, is shown as stored)."""
    spec = json.loads(_shown_request(json.dumps(job.spec, sort_keys=True)))
    queued = (
        ((job.started_at or job.finished_at) - job.created_at).total_seconds()
        if (job.started_at or job.finished_at)
        else None
    )
    return JobOut(
        id=job.id,
        status=job.status,
        dataset=spec["dataset"],
        methods=spec["methods"],
        spec=spec,
        progress=Progress(
            fraction=job.progress_fraction,
            epoch=job.epoch,
            step=job.step,
            total_steps=job.total_steps,
            eta_seconds=job.eta_seconds,
            losses=job.losses,
        ),
        timings=Timings(
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            queued_seconds=queued,
            run_seconds=job.run_seconds,
        ),
        device=job.device,
        attempts=job.attempts,
        resumed_from_epoch=job.resumed_from_epoch,
        history=job.history or [],
        cancel_requested=job.cancel_requested,
        error=JobError(**job.error) if job.error else None,
        links=job_links(job.id),
    )
