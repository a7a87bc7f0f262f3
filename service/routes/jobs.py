"""``/jobs``: submit a run (affinity methods, by default ``tag_first_order``, and/or a warm-start
table), watch it, list, cancel, delete, read its affinity matrices."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Response
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service import jobs
from service.errors import ApiError, problem_responses
from service.executor import JobExecutor
from service.limits import check_job_size, check_warm_start_size
from service.models import AffinityResult, Job
from service.routes import deps
from service.schemas import JobCreate, JobOut, JobPage, JobStatus, Name, ResourceId
from service.settings import Settings

log = logging.getLogger(__name__)
#: largest accepted ``offset`` of ``GET /jobs`` (any offset past the last job gives an empty page)
MAX_OFFSET = 2**62

router = APIRouter(tags=["jobs"])
Sessions = Annotated[sessionmaker[Session], Depends(deps.session_factory)]
Project = Annotated[str, Depends(deps.project)]
JobId = Annotated[ResourceId, Path(description="the job's id")]


@router.post(
    "/jobs",
    status_code=202,
    response_model=JobOut,
    responses=problem_responses(
        {
            409: "Idempotency-Key reused with another body",
            503: "the job queue is unavailable: the job was not queued and its Idempotency-Key was released",
        }
    ),
)
def submit_job(
    body: JobCreate,
    response: Response,
    sessions: Sessions,
    project: Project,
    executor: Annotated[JobExecutor, Depends(deps.executor)],
    settings: Annotated[Settings, Depends(deps.settings)],
    idempotency_key: Annotated[Name | None, Header()] = None,
) -> JobOut:
    """Queue a run: the ``methods`` (default ``tag_first_order``, whose stored network tables allow
    half-size single-task networks) on ``dataset``. Only ``dataset`` is required; a warm_start job
    trains at most ``max_warm_start_networks`` networks (422 naming ``warm_start``). An uploaded
    dataset deleted while the job is submitted is a 422 naming ``dataset``. An ``Idempotency-Key``
    makes retries safe:
    a retry replays the job the key created — unless the server could not queue it (503), in which
    case the key was released and the retry submits the job anew."""
    check_job_size(len(body.tasks) if body.tasks else None, settings)
    check_warm_start_size(body, settings)
    job, created = jobs.create_job(sessions, body, project=project, idempotency_key=idempotency_key)
    response.headers["Location"] = f"/jobs/{job.id}"
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
        return jobs.job_out(job)
    try:
        executor.submit(job.id)
    except Exception as exc:
        log.exception("cannot queue job %s", job.id)
        try:
            jobs.fail_unqueued(sessions, job.id, exc)
        except Exception:  # the database too: the row stays queued, for the reaper to publish later
            log.exception("job %s: the failure to queue it could not be recorded", job.id)
        raise ApiError(
            503,
            "the job queue is unavailable; the job was not started (retrying with the same "
            "Idempotency-Key submits it anew)",
            job_id=job.id,
        ) from None
    return jobs.job_out(job)


@router.get(
    "/jobs", response_model=JobPage, responses=problem_responses({404: "no job `after` in this project"})
)
def list_jobs(
    reads: Annotated[sessionmaker[Session], Depends(deps.read_session_factory)],
    project: Project,
    status: JobStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    # bounded so the value fits the databases' 64-bit OFFSET (an unbounded one was a 500 on PostgreSQL)
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="jobs to skip (after `after`)")] = 0,
    after: Annotated[
        ResourceId | None,
        Query(description="a job's id: list the jobs older than it (`next` links carry the page's last)"),
    ] = None,
) -> JobPage:
    """The project's jobs, newest first, optionally of one status. ``next`` is the URL of the next page
    (``after`` its last job: keyset paging, as fast deep in the list as at its start); ``offset`` in
    the answer is the position of the page's first job, ``total`` counts the matching jobs."""
    page = jobs.list_jobs(reads, project, status=status, limit=limit, offset=offset, after=after)
    query = f"&status={status}" if status else ""
    more = bool(page.rows) and page.offset + len(page.rows) < page.total
    return JobPage(
        items=[jobs.job_out(j) for j in page.rows],
        total=page.total,
        limit=limit,
        offset=page.offset,
        next=f"/jobs?limit={limit}&after={page.rows[-1].id}{query}" if more else None,
    )


@router.get("/jobs/{job_id}", response_model=JobOut, responses=problem_responses({404: "no such job"}))
def get_job(job_id: JobId, sessions: Sessions, project: Project) -> JobOut:
    """A job's status, progress (fraction, epoch, step, ETA), timings, device and error."""
    return jobs.job_out(jobs.get_job(sessions, job_id, project))


@router.post(
    "/jobs/{job_id}/cancel",
    status_code=202,
    response_model=JobOut,
    responses=problem_responses({404: "no such job", 409: "the job has ended"}),
)
def cancel_job(job_id: JobId, sessions: Sessions, project: Project) -> JobOut:
    """Cancel a queued job at once, or a running one at its next training step."""
    return jobs.job_out(jobs.cancel_job(sessions, job_id, project))


@router.delete(
    "/jobs/{job_id}",
    status_code=204,
    response_class=Response,
    responses=problem_responses(
        {
            404: "no such job",
            409: "the job is running: it was asked to cancel; retry the delete once it has stopped",
        }
    ),
)
def delete_job(
    job_id: JobId,
    sessions: Sessions,
    project: Project,
    settings: Annotated[Settings, Depends(deps.settings)],
) -> Response:
    """Delete a job with its results (affinity matrices, network tables, groupings) and its
    checkpoints. A queued or finished job is deleted at once (204). A running job is asked to cancel
    and the answer is 409: retry once it has stopped (it stops at its next training step)."""
    jobs.delete_job(sessions, job_id, project, checkpoints=settings.checkpoints_dir)
    return Response(status_code=204)


@router.get(
    "/jobs/{job_id}/affinity",
    responses=problem_responses({404: "no such job", 409: "the job has not succeeded"}),
)
def get_affinity(job_id: JobId, sessions: Sessions, project: Project) -> dict:
    """Per method: the affinity matrix (``onto_row_from_column``), its per-epoch trajectory, run metadata."""
    job = jobs.get_job(sessions, job_id, project)
    require_succeeded(job)
    with sessions() as session:
        rows = session.scalars(
            select(AffinityResult).where(AffinityResult.job_id == job_id).order_by(AffinityResult.id)
        ).all()
    return {
        "job_id": job_id,
        "tasks": rows[0].tasks if rows else [],
        "methods": {
            r.method: {"onto_row_from_column": r.matrix, "trajectory": r.trajectory, "metadata": r.meta}
            for r in rows
        },
    }


def require_succeeded(job: Job) -> None:
    """409 naming the job's status unless it succeeded."""
    if job.status != "succeeded":
        raise ApiError(
            409, f"job {job.id} is {job.status}, not succeeded", job_id=job.id, job_status=job.status
        )
