"""``/groupings``: the optimal grouping of a finished job at a budget (stored after the first solve),
and ad-hoc solves of a problem sent in the body."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session, sessionmaker

from grouping.errors import InputError
from grouping.problem import parse_problem
from grouping.selection import parse_budgets
from service import jobs
from service.errors import input_error_response, problem_responses
from service.groupings import GroupingKey, budget_key, job_groupings, read_stored, solve_timed
from service.limits import check_problem_size
from service.routes import deps
from service.routes.jobs import require_succeeded
from service.schemas import GroupingCurve, GroupingOut, Singletons, SolutionOut, Solver, SolveRequest
from service.settings import Settings

router = APIRouter(tags=["groupings"])
ERRORS = problem_responses(
    {
        404: "no such job",
        409: "the job has not succeeded",
        422: "bad parameter, or a budget below the minimum feasible (min_budget)",
    }
)


@router.get("/groupings", response_model=GroupingOut | GroupingCurve, responses=ERRORS)
def get_groupings(
    response: Response,
    sessions: Annotated[sessionmaker[Session], Depends(deps.session_factory)],
    reads: Annotated[sessionmaker[Session], Depends(deps.read_session_factory)],
    project: Annotated[str, Depends(deps.project)],
    settings: Annotated[Settings, Depends(deps.settings)],
    job_id: str,
    budget: Annotated[
        float | None, Query(gt=0, allow_inf_nan=False, description="networks' cost budget")
    ] = None,
    budgets: Annotated[str | None, Query(description="a range start:stop:step, e.g. 1:5:0.5")] = None,
    method: Annotated[str | None, Query(description="affinity method (default: the job's first)")] = None,
    solver: Solver = "bip",
    singletons: Singletons = "forbid",
) -> GroupingOut | GroupingCurve:
    """The job's optimal grouping at ``budget`` (or the curve over ``budgets``), in the selection JSON."""
    if (budget is None) == (budgets is None):
        raise InputError("budget", "give exactly one of budget=B or budgets=start:stop:step")
    wanted = [budget] if budget is not None else parse_budgets(budgets)
    with reads() as session:
        job, stored = read_stored(session, job_id, solver, singletons, wanted)
    job = jobs.owned(job, job_id, project)
    require_succeeded(job)
    methods = jobs.job_request(job).methods
    method = method or methods[0]
    if method not in methods:
        raise InputError("method", f"job {job_id} computed {methods}, not {method!r}")
    keys = [(method, budget_key(b)) for b in wanted]
    if all(k in stored for k in keys):
        results = [(b, stored[(m, b)], True) for m, b in keys]
    else:
        results = job_groupings(
            sessions,
            GroupingKey(job_id, method, solver, singletons),
            wanted,
            time_limit=settings.solve_time_limit,
            project=project,
            skip_infeasible=budget is None,
        )
    if budget is not None:
        [(b, solution, stored)] = results
        response.headers["X-Grouping-Stored"] = str(stored).lower()
        return GroupingOut(
            **{
                **solution,
                "budget": b,
                "job_id": job_id,
                "method": method,
                "solver": solver,
                "singletons": singletons,
                "stored": stored,
            }
        )
    return GroupingCurve(
        job_id=job_id,
        method=method,
        solver=solver,
        singletons=singletons,
        curve=[SolutionOut(**{**s, "budget": b}) for b, s, _ in results],
    )


@router.post("/groupings", response_model=SolutionOut | GroupingCurve, responses=ERRORS)
async def solve_problem(
    body: SolveRequest,
    settings: Annotated[Settings, Depends(deps.settings)],
    _project: Annotated[str, Depends(deps.project)],
) -> SolutionOut | GroupingCurve:
    """Solve a problem sent in the body (explicit networks or an affinity matrix); nothing is
    trained or stored."""
    if (body.budget is None) == (body.budgets is None):
        raise InputError("budget", "give exactly one of budget or budgets")
    check_problem_size(body.problem, settings)
    try:
        problem = parse_problem(body.problem)
    except InputError as exc:
        return input_error_response(exc, prefix="problem.")
    limit = min(body.time_limit or settings.solve_time_limit, settings.solve_time_limit)
    if body.budget is not None:
        solution = await run_in_threadpool(solve_timed, problem, body.budget, body.solver, limit)
        return SolutionOut(**{**solution, "budget": body.budget})
    curve = []
    for b in parse_budgets(body.budgets):
        solution = await run_in_threadpool(solve_timed, problem, b, body.solver, limit)
        curve.append(SolutionOut(**{**solution, "budget": b}))
    return GroupingCurve(solver=body.solver, curve=curve)
