"""``/studies`` and ``/trials``: candidate-network studies whose trials callers ask for, train in
their own code, and tell (``service.studies`` holds the rules; ``service.study_client`` the loop).

``POST /studies/{id}/trials:ask`` answers a leased trial (200), 204 with ``Retry-After`` when none
waits now but some still run (an adaptive study plans its next round when they end, and an expired
lease puts a trial back), or 410 once the study is complete. ``:heartbeat`` extends a lease,
``:tell`` records the values; both refuse a finished trial or a lost or expired lease (409, ``reason``
``finished``, ``lease_lost`` or ``lease_expired``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from service import studies, study_answers
from service.errors import ApiError, problem_responses
from service.executor import JobExecutor
from service.groupings import budget_key, per_budget_limit
from service.models import Study, Trial
from service.routes import deps
from service.schemas import ResourceId, SolutionOut
from service.settings import Settings
from service.study_schemas import (
    AskRequest,
    LeaseRequest,
    StudyCreate,
    StudyGroupingCurve,
    StudyGroupingOut,
    StudyOut,
    StudyPage,
    TellRequest,
    TrialOut,
    TrialPage,
    TrialState,
)

log = logging.getLogger(__name__)
router = APIRouter(tags=["studies"])
Sessions = Annotated[sessionmaker[Session], Depends(deps.session_factory)]
Project = Annotated[str, Depends(deps.project)]
StudyId = Annotated[ResourceId, Path(description="the study's id")]
TrialId = Annotated[ResourceId, Path(description="the trial's id")]
#: largest accepted ``offset`` of the listings
MAX_OFFSET = 2**62
#: seconds a 204 answer to ask suggests waiting
ASK_RETRY_AFTER = 1
#: seconds a 202 answer of a study's groupings (its answers being solved) suggests waiting
SOLVING_RETRY_AFTER = 2
LEASE_ERRORS = problem_responses(
    {404: "no such trial", 409: "the trial has finished, or the lease was lost or has expired (`reason`)"}
)


@contextmanager
def refusals() -> Iterator[None]:
    """Answer a :class:`service.studies.StudyError` as its problem+json status."""
    try:
        yield
    except studies.StudyError as exc:
        raise ApiError(exc.status, exc.detail, **exc.extra) from None


@router.post("/studies", status_code=201, response_model=StudyOut,
             responses=problem_responses({503: "a builtin study's trials could not be queued"}))
def create_study(body: StudyCreate, response: Response, sessions: Sessions, project: Project,
                 settings: Annotated[Settings, Depends(deps.settings)],
                 executor: Annotated[JobExecutor, Depends(deps.executor)]) -> StudyOut:
    """Create a study and its first trials (422 naming ``tasks`` beyond the strategy's limit:
    exhaustive/esa/adaptive 10, pairwise 40). A builtin study's trials are queued for the workers
    at once (embedded mode: this process's pool)."""
    study = studies.create_study(sessions, body, project=project, max_budgets=settings.max_budgets)
    response.headers["Location"] = f"/studies/{study.id}"
    if study.execution == "builtin":
        try:
            for trial_id in studies.waiting_trials(sessions, study.id):
                executor.submit_trial(trial_id)
        except Exception:
            log.exception("study %s: trials not queued", study.id)
            raise ApiError(503, "the job queue is unavailable; the study was created but its trials "
                           "were not all queued", study_id=study.id) from None
    with sessions() as session:
        return studies.study_out(session, study)


@router.get("/studies", response_model=StudyPage)
def list_studies(sessions: Sessions, project: Project,
                 limit: Annotated[int, Query(ge=1, le=500)] = 50,
                 offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0) -> StudyPage:
    """The project's studies, newest first, with their progress."""
    with sessions() as session:
        total = session.scalar(select(func.count()).select_from(Study).where(Study.project == project)) or 0
        rows = session.scalars(select(Study).where(Study.project == project)
                               .order_by(Study.created_at.desc(), Study.id.desc())
                               .limit(limit).offset(offset)).all()
        items = [studies.study_out(session, s) for s in rows]
    more = offset + len(rows) < total
    return StudyPage(items=items, total=total, limit=limit, offset=offset,
                     next=f"/studies?limit={limit}&offset={offset + limit}" if more else None)


@router.get("/studies/{study_id}", response_model=StudyOut,
            responses=problem_responses({404: "no such study"}))
def get_study(study_id: StudyId, sessions: Sessions, project: Project) -> StudyOut:
    """A study and its progress (trials per state)."""
    with refusals(), sessions() as session:
        return studies.study_out(session, studies.owned_study(session, study_id, project))


@router.get("/studies/{study_id}/trials", response_model=TrialPage,
            responses=problem_responses({404: "no such study"}))
def list_trials(study_id: StudyId, sessions: Sessions, project: Project, state: TrialState | None = None,
                limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0) -> TrialPage:
    """The study's trials in order, optionally of one state."""
    where = [Trial.study_id == study_id] + ([Trial.state == state] if state else [])
    with refusals(), sessions() as session:
        studies.owned_study(session, study_id, project)
        total = session.scalar(select(func.count()).select_from(Trial).where(*where)) or 0
        rows = session.scalars(select(Trial).where(*where).order_by(Trial.number)
                               .limit(limit).offset(offset)).all()
    more = offset + len(rows) < total
    query = f"&state={state}" if state else ""
    return TrialPage(items=[studies.trial_out(t) for t in rows], total=total, limit=limit, offset=offset,
                     next=f"/studies/{study_id}/trials?limit={limit}&offset={offset + limit}{query}"
                     if more else None)


@router.post(
    "/studies/{study_id}/trials:ask",
    response_model=TrialOut,
    responses={
        204: {"description": "no trial waits now but some still run: ask again after Retry-After"},
        **problem_responses({404: "no such study", 409: "a builtin study: its trials run on the workers",
                             410: "the study is complete"}),
    },
)
def ask(study_id: StudyId, sessions: Sessions, project: Project, body: AskRequest | None = None
        ) -> TrialOut | Response:
    """Lease the next waiting trial (its ``lease`` goes with heartbeat and tell)."""
    with refusals():
        trial = studies.ask(sessions, study_id, project, body.worker if body else None)
    if trial is None:
        return Response(status_code=204, headers={"Retry-After": str(ASK_RETRY_AFTER)})
    return studies.trial_out(trial, with_lease=True)


@router.post("/trials/{trial_id}:heartbeat", response_model=TrialOut, responses=LEASE_ERRORS)
def heartbeat(trial_id: TrialId, body: LeaseRequest, sessions: Sessions, project: Project) -> TrialOut:
    """Extend the trial's lease by its study's ``lease_seconds``."""
    with refusals():
        return studies.trial_out(studies.heartbeat(sessions, trial_id, project, body.lease))


@router.post("/trials/{trial_id}:tell", response_model=TrialOut, responses=LEASE_ERRORS)
def tell(trial_id: TrialId, body: TellRequest, sessions: Sessions, project: Project) -> TrialOut:
    """Record the trial's per-task values (``val``: exactly the tasks it serves; 422 otherwise)."""
    with refusals():
        return studies.trial_out(studies.tell(sessions, trial_id, project, body))


@router.get("/studies/{study_id}/table",
            responses=problem_responses({404: "no such study", 422: "a task is not served by any "
                                         "measured network yet (field trials)"}))
def table(study_id: StudyId, sessions: Sessions, project: Project,
          split: Literal["val", "test"] = "val") -> dict:
    """The explicit problem (``taskgrouper solve`` reads it) of what the study has measured on
    ``split``, with the strategy's predictions of unmeasured networks (pairwise: HOA; adaptive: each
    member's best measured sub-group), and ``metadata`` saying how many trials it rests on."""
    with refusals(), sessions() as session:
        study = studies.owned_study(session, study_id, project)
        problem, measured = studies.study_problem(session, study, split)
    return {**problem.to_dict(), "metadata": {"study_id": study_id, "strategy": study.strategy,
                                              "split": split, "trials": measured,
                                              "predicted": len(problem.networks) - measured}}


async def study_groupings(sessions: sessionmaker[Session], project: str, settings: Settings,
                          executor: JobExecutor, study_id: str, wanted: list[float], single: bool, solver: str
                          ) -> StudyGroupingOut | StudyGroupingCurve | JSONResponse:
    """``GET /groupings?study_id=…``: the study's grouping at one budget (``single``) or its curve, from
    its newest stored answers (``service.study_answers``), each saying what it rests on: ``trials``
    (succeeded trials; the rest of its networks are the strategy's predictions), ``ended`` (the
    measured set: trials ended when it was solved) and ``current`` (no trial ended since).

    A running study's answers lag its trials by one solve: when trials ended since the stored
    answer, that answer is returned (``current: false``) and a solve of the newest measured set is
    queued (the solve queue; embedded mode: a child process), at most one per study at a time. A
    budget never solved for the study yet is answered **202** with ``Retry-After``: its solve is
    queued, ask again. A small study (at most 8 tasks) is always answered on every ended trial,
    solved in the request when needed. 422 (field ``trials``) while a task is unserved by the
    measured set, or ``budget`` below the cheapest covering for a single budget."""
    wanted = list(dict.fromkeys(budget_key(b) for b in wanted))
    limit = per_budget_limit(settings.solve_time_limit, len(wanted), settings.request_solve_seconds)
    with refusals():
        found = await run_in_threadpool(
            study_answers.study_answers, sessions, study_id, project, wanted, solver=solver,
            time_limit=limit, max_budgets=settings.max_budgets, enqueue=executor.submit_study_answers)
    answers = found.answers
    if answers is None:
        return JSONResponse(status_code=202, headers={"Retry-After": str(SOLVING_RETRY_AFTER)}, content={
            "study_id": study_id, "solver": solver, "ended": found.ended, "status": "solving",
            "detail": f"the answers of study {study_id} at these budgets are being solved on its "
                      f"{found.ended} ended trials; ask again"})
    results = [(b, study_answers.answer_solution(answers, b, single=single)) for b in wanted]
    common = {"study_id": study_id, "strategy": found.strategy, "solver": solver,
              "trials": answers.measured, "ended": answers.ended, "current": found.current}
    if single:
        [(budget, solution)] = results
        return StudyGroupingOut(**{**solution, "budget": budget, **common})
    return StudyGroupingCurve(**common, curve=[SolutionOut(**{**s, "budget": b}) for b, s in results])
