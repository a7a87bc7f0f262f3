"""``GET /jobs/{id}/logs``: a job's log, as its attempts stored it (``service.job_logs``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from sqlalchemy.orm import Session, sessionmaker

from service import jobs
from service.errors import problem_responses
from service.job_logs import MAX_READ, read_job_log
from service.routes import deps
from service.schemas import JobLogEntry, JobLogOut, ResourceId

router = APIRouter(tags=["jobs"])


@router.get(
    "/jobs/{job_id}/logs", response_model=JobLogOut, responses=problem_responses({404: "no such job"})
)
def get_job_log(
    job_id: Annotated[ResourceId, Path(description="the job's id")],
    sessions: Annotated[sessionmaker[Session], Depends(deps.read_session_factory)],
    project: Annotated[str, Depends(deps.project)],
    after: Annotated[int | None, Query(ge=0, le=2**62, description="only entries with a larger id")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_READ)] = MAX_READ,
) -> JobLogOut:
    """The job's log entries of every attempt, oldest first: each step the runner starts and ends
    (``step`` names it), progress per epoch, and — when the job failed — the entry naming the step
    that failed, the field and the reason. At most ``job_log_entries`` entries per attempt are kept
    (warnings and errors beyond them up to a tenth more); ``after`` reads only newer entries."""
    jobs.get_job(sessions, job_id, project)
    rows, more = read_job_log(sessions, job_id, after=after, limit=limit)
    entries = [
        JobLogEntry(
            id=r.id, time=r.created_at, attempt=r.attempt, level=r.level, step=r.step, message=r.message
        )
        for r in rows
    ]
    return JobLogOut(job_id=job_id, entries=entries, more=more)
