"""``/groupings``: the optimal grouping of a finished job — or of an affinity run uploaded with
``POST /affinity-runs`` — at a budget (stored after the first solve), and ad-hoc solves of a problem
sent in the body.

Each request's solve work is bounded: at most ``max_budgets`` budgets in any form, and the time limits
of its solves sum to at most ``request_solve_seconds`` (each also at most ``solve_time_limit``).
When the client disconnects, no further budget is solved.

A job's affinity tables allow half-size single-task networks (cost 0.5; the runner stores them with
``"half_singletons": true``), so a budget such as 2.5 may buy two groups and one half-size network;
tables stored before that default allow none and answer as they always did.

Every grouping carries ``trust`` where samples of its estimate exist (``service.groupings``: a
warm_start table's validation-loss draws, an affinity run of at least two complete epochs; for a
posted problem, the draws under its ``metadata.val_draws``), else ``null``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import Field, TypeAdapter
from sqlalchemy.orm import Session, sessionmaker

from grouping.errors import InputError
from grouping.problem import parse_problem
from grouping.selection.solvers import DEFAULT_SOLVER
from grouping.selection.trust import problem_samples
from service import jobs
from service.errors import input_error_response, problem_responses
from service.groupings import (
    EXPLICIT_SINGLETONS,
    GroupingKey,
    budget_key,
    job_groupings,
    per_budget_limit,
    read_stored,
    solve_timed,
    with_trust,
)
from service.limits import check_problem, requested_budgets
from service.models import AffinityRunRecord
from service.routes import deps
from service.routes.jobs import require_succeeded
from service.routes.studies import study_groupings
from service.schemas import (
    WARM_START,
    Budgets,
    GroupingCurve,
    GroupingOut,
    Name,
    Singletons,
    SolutionOut,
    Solver,
    SolveRequest,
)
from service.settings import Settings
from service.study_schemas import StudyGroupingCurve, StudyGroupingOut

router = APIRouter(tags=["groupings"])
ERRORS = problem_responses(
    {
        404: "no such job or affinity run",
        409: "the job has not succeeded",
        422: "bad parameter, too many budgets (max_budgets), or a budget below the minimum feasible "
        "(min_budget)",
    }
)
#: seconds between checks whether the client of a long solve is still connected
DISCONNECT_POLL = 0.5


@asynccontextmanager
async def client_watch(request: Request) -> AsyncIterator[threading.Event]:
    """An event set once the client of ``request`` has disconnected, for work running in a thread
    to ask between steps; polled every :data:`DISCONNECT_POLL` seconds while the block runs."""
    gone = threading.Event()

    async def watch() -> None:
        while not gone.is_set():
            if await request.is_disconnected():
                gone.set()
                return
            await asyncio.sleep(DISCONNECT_POLL)

    task = asyncio.create_task(watch())
    try:
        yield gone
    finally:
        task.cancel()


#: descriptions of ``GET /groupings``' query parameters
_GET_PARAMETERS = {
    "job_id": "the succeeded job, or the uploaded affinity run (POST /affinity-runs), whose network table "
    "is solved",
    "budget": "networks' cost budget (one above n tasks x the largest network cost is solved at that "
    "cap); exactly one of budget and budgets",
    "budgets": "a range start:stop:step, e.g. 1:5:0.5, or a list 1,2,4 (at most max_budgets); exactly "
    "one of budget and budgets",
    "method": "the job's (or run's) method whose table is solved: warm_start or an affinity method "
    "(default: the first)",
    "study_id": "a study (POST /studies), solved on the trials measured so far (its strategy's "
    "predictions fill unmeasured networks); exactly one of job_id and study_id",
    "solver": f"the solver (default {DEFAULT_SOLVER}: the exact method picked per table; proved_by names it)",
    "singletons": "affinity tables' singleton rule (default forbid: a task is served alone only by a "
    "half-size network); a warm_start table is explicit and answers singletons 'none' whatever is asked",
}


def _query_object(types: dict[str, Any], required: list[str], one_of: list[list[str]]) -> dict[str, Any]:
    """The OpenAPI parameter stating a route's query parameters as one object (``style: form,
    explode: true``: on the wire each property is a parameter of its own, as the route reads them),
    so that rules across parameters are part of the schema: ``required`` and ``oneOf`` (each
    alternative names the properties that must be present). The route keeps its own parameters for
    validation (each hidden from the schema with ``include_in_schema=False``)."""
    properties = {
        name: {**TypeAdapter(kind).json_schema(), "description": _GET_PARAMETERS[name]}
        for name, kind in types.items()
    }
    schema = {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
        "oneOf": [{"required": names} for names in one_of],
    }
    return {
        "name": "query",
        "in": "query",
        "required": True,
        "style": "form",
        "explode": True,
        "description": "the query parameters (each on its own: job_id=…&budget=…)",
        "schema": schema,
    }


GET_QUERY = _query_object(
    {
        "job_id": Name,
        "study_id": Name,
        "budget": Annotated[float, Field(gt=0, allow_inf_nan=False)],
        "budgets": Budgets,
        "method": Name,
        "solver": Solver,
        "singletons": Singletons,
    },
    required=[],
    one_of=[["budget"], ["budgets"]],
)
#: exactly one of job_id and study_id
GET_QUERY["schema"] |= {"anyOf": [{"required": ["job_id"]}, {"required": ["study_id"]}],
                        "not": {"required": ["job_id", "study_id"]}}


@router.get(
    "/groupings",
    response_model=GroupingOut | GroupingCurve | StudyGroupingOut | StudyGroupingCurve,
    responses={202: {"description": "study_id: the study's answers at these budgets are being solved; ask "
                     "again after Retry-After"}, **ERRORS},
    openapi_extra={"parameters": [GET_QUERY]},
)
async def get_groupings(
    request: Request,
    response: Response,
    sessions: Annotated[sessionmaker[Session], Depends(deps.session_factory)],
    reads: Annotated[sessionmaker[Session], Depends(deps.read_session_factory)],
    project: Annotated[str, Depends(deps.project)],
    settings: Annotated[Settings, Depends(deps.settings)],
    job_id: Annotated[Name | None, Query(include_in_schema=False)] = None,
    study_id: Annotated[Name | None, Query(include_in_schema=False)] = None,
    budget: Annotated[float | None, Query(gt=0, allow_inf_nan=False, include_in_schema=False)] = None,
    budgets: Annotated[Budgets | None, Query(include_in_schema=False)] = None,
    method: Annotated[Name | None, Query(include_in_schema=False)] = None,
    solver: Annotated[Solver, Query(include_in_schema=False)] = DEFAULT_SOLVER,
    singletons: Annotated[Singletons | None, Query(include_in_schema=False)] = None,
) -> GroupingOut | GroupingCurve | StudyGroupingOut | StudyGroupingCurve | Response:
    """The job's optimal grouping at ``budget`` (or the curve over ``budgets``), in the selection JSON,
    with ``trust`` where samples of the table's estimate exist (else ``null``). ``job_id`` may name
    an uploaded affinity run: it is solved the same way (trust from two or more complete epochs)."""
    wanted = requested_budgets(budget, budgets, settings)
    if (job_id is None) == (study_id is None):
        raise InputError("job_id", "give exactly one of job_id and study_id")
    if study_id is not None:
        single = budget is not None
        executor = await deps.executor(request)
        return await study_groupings(sessions, project, settings, executor, study_id, wanted, single, solver)
    rule = singletons or "forbid"

    def read() -> tuple:
        with reads() as session:
            return read_stored(session, job_id, solver, rule, wanted)

    source, stored = await run_in_threadpool(read)
    run = isinstance(source, AffinityRunRecord)
    if run and source.project == project:
        methods = source.methods
    else:  # a job, or nothing this project may see: 404 on job_id
        job = jobs.owned(None if run else source, job_id, project)
        require_succeeded(job)
        methods = jobs.job_request(job).methods
    method = method or methods[0]
    if method not in methods:
        kind = "affinity run" if run else "job"
        raise InputError("method", f"{kind} {job_id} computed {methods}, not {method!r}")
    if method == WARM_START:
        rule = EXPLICIT_SINGLETONS
    keys = [(method, budget_key(b)) for b in wanted]
    if all(k in stored for k in keys):
        results = [(b, stored[(m, b)], True) for m, b in keys]
    else:
        async with client_watch(request) as gone:
            results = await run_in_threadpool(
                job_groupings,
                sessions,
                GroupingKey(job_id, method, solver, rule, run=run),
                wanted,
                time_limit=settings.solve_time_limit,
                project=project,
                skip_infeasible=budget is None,
                request_seconds=settings.request_solve_seconds,
                should_stop=gone.is_set,
            )
    if budget is not None and results:
        [(b, solution, stored)] = results
        response.headers["X-Grouping-Stored"] = str(stored).lower()
        return GroupingOut(
            **{
                **solution,
                "budget": b,
                "job_id": job_id,
                "method": method,
                "solver": solver,
                "singletons": rule,
                "stored": stored,
            }
        )
    return GroupingCurve(
        job_id=job_id,
        method=method,
        solver=solver,
        singletons=rule,
        curve=[SolutionOut(**{**s, "budget": b}) for b, s, _ in results],
    )


@router.post("/groupings", response_model=SolutionOut | GroupingCurve, responses=ERRORS)
async def solve_problem(
    request: Request,
    body: SolveRequest,
    settings: Annotated[Settings, Depends(deps.settings)],
    _project: Annotated[str, Depends(deps.project)],
) -> SolutionOut | GroupingCurve:
    """Solve a problem sent in the body (explicit networks or an affinity matrix); nothing is
    trained or stored. Every number of the problem must be finite and at most 1e6 in magnitude.
    An explicit problem carrying bootstrap draws of its losses (``metadata.val_draws``, as
    ``taskgrouper affinity --method warm_start`` writes them) is answered with ``trust``."""
    wanted = requested_budgets(body.budget, body.budgets, settings)
    check_problem(body.problem, settings)
    try:
        problem = parse_problem(body.problem)
        samples = await run_in_threadpool(problem_samples, body.problem)
    except InputError as exc:
        return input_error_response(exc, prefix="problem.")
    distinct = list(dict.fromkeys(wanted))
    asked = min(body.time_limit or settings.solve_time_limit, settings.solve_time_limit)
    limit = per_budget_limit(asked, len(distinct), settings.request_solve_seconds)
    solutions: dict[float, dict] = {}
    async with client_watch(request) as gone:
        for b in distinct:
            if gone.is_set():
                break
            solved = await run_in_threadpool(solve_timed, problem, b, body.solver, limit)
            solutions[b] = await run_in_threadpool(with_trust, solved, problem, samples)
    if body.budget is not None and solutions:
        return SolutionOut(**solutions[body.budget])
    return GroupingCurve(
        solver=body.solver, curve=[SolutionOut(**solutions[b]) for b in wanted if b in solutions]
    )
