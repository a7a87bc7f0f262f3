"""``/affinity-runs``: store an affinity run measured in the user's own training
(``AffinityTracker.result().to_dict()`` plus a name), list, read and delete the project's runs. A run's
id is accepted by ``GET /groupings?job_id=…`` like a finished job's (``service.affinity_runs``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response
from sqlalchemy.orm import Session, sessionmaker

from service import affinity_runs
from service.errors import problem_responses
from service.routes import deps
from service.routes.jobs import MAX_OFFSET
from service.schemas import AffinityRunCreate, AffinityRunDetail, AffinityRunOut, AffinityRunPage, ResourceId
from service.settings import Settings

router = APIRouter(tags=["affinity runs"])
Sessions = Annotated[sessionmaker[Session], Depends(deps.session_factory)]
Project = Annotated[str, Depends(deps.project)]
RunId = Annotated[ResourceId, Path(description="the run's id")]
NOT_FOUND = problem_responses({404: "no such affinity run"})


@router.post("/affinity-runs", status_code=201, response_model=AffinityRunOut)
def upload_run(
    body: AffinityRunCreate,
    response: Response,
    sessions: Sessions,
    project: Project,
    settings: Annotated[Settings, Depends(deps.settings)],
) -> AffinityRunOut:
    """Store a run measured elsewhere: its ``tasks``, a matrix per method, per-epoch ``trajectories``
    and free ``metadata``. Every matrix is n x n for the n tasks (422 naming the matrix or row), every
    score finite; at most ``max_tasks`` tasks and 1000 epochs. ``links.groupings`` solves it."""
    record = affinity_runs.create_run(sessions, body, project=project, settings=settings)
    response.headers["Location"] = f"/affinity-runs/{record.id}"
    return affinity_runs.run_out(record)


@router.get("/affinity-runs", response_model=AffinityRunPage)
def list_runs(
    sessions: Sessions,
    project: Project,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> AffinityRunPage:
    """The project's runs, newest first (without their matrices)."""
    rows, total = affinity_runs.list_runs(sessions, project, limit=limit, offset=offset)
    more = offset + len(rows) < total
    return AffinityRunPage(
        items=[affinity_runs.run_out(r) for r in rows],
        total=total,
        limit=limit,
        offset=offset,
        next=f"/affinity-runs?limit={limit}&offset={offset + limit}" if more else None,
    )


@router.get("/affinity-runs/{run_id}", response_model=AffinityRunDetail, responses=NOT_FOUND)
def get_run(run_id: RunId, sessions: Sessions, project: Project) -> AffinityRunDetail:
    """A run with its matrices and trajectories."""
    return affinity_runs.run_detail(affinity_runs.get_run(sessions, run_id, project))


@router.delete("/affinity-runs/{run_id}", status_code=204, response_class=Response, responses=NOT_FOUND)
def delete_run(run_id: RunId, sessions: Sessions, project: Project) -> Response:
    """Delete a run with the groupings solved from it."""
    affinity_runs.delete_run(sessions, run_id, project)
    return Response(status_code=204)
