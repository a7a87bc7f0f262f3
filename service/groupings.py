"""Groupings of a job: solve a stored network table at a budget once, store it, read it back after.

The source of the tables is a finished job, or an affinity run measured elsewhere and uploaded
(``service.affinity_runs``): a run's tables are built from its matrices as the runner builds a job's,
its trust comes from its trajectories the same way, and its groupings are stored keyed by the run
(:attr:`GroupingKey.run`). Everything else here is one path for both.

A grouping is keyed by (job, method, solver, singletons, budget); budgets are rounded to 1e-6 so
``2.5`` and ``2.5000000001`` share a row. Concurrent solvers of the same key are harmless: the
insert skips a row that exists, and both return the same optimum. Solutions are stored (and returned)
as :func:`service.jsonsafe.json_safe` documents: a non-finite number is ``null``.

Bounded work: every solve goes through :func:`solve_timed`, which solves a budget above
:func:`max_useful_budget` (n tasks times the largest network cost: no selection can spend more
usefully) at that cap; a request's budgets share one total solve time (``per_budget_limit``); new
groupings are written in batches of at most :data:`INSERT_ROWS` rows, every :data:`STORE_EVERY`
solved budgets, so a long curve keeps what it has solved.

Affinity tables stored by the runner allow half-size single-task networks (``"half_singletons":
true``, cost ``network_cost / 2``): their default budgets (:func:`table_budgets`) step by 0.5, so a
curve shows the x.5 budgets that buy one.

Trust: a solution solved here carries ``trust`` (:func:`grouping.selection.trust.selection_trust`'s
report, stored with it) when its table has samples of its estimate (:func:`estimate_samples`): the
bootstrap draws of a warm_start table's validation losses, or bootstrap means over the complete
epochs of an affinity run's trajectory (at least :data:`MIN_TRUST_EPOCHS`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.elements import ColumnElement

from grouping.errors import InputError
from grouping.problem import AffinityProblem, Problem, Solution, parse_problem
from grouping.selection import InfeasibleBudget, solve
from grouping.selection.solvers import DEFAULT_SOLVER
from grouping.selection.trust import problem_samples, resampled_affinity, selection_trust
from service.affinity_runs import run_table
from service.db import transaction
from service.jsonsafe import json_safe
from service.limits import check_problem_values
from service.metrics import SOLVE_SECONDS
from service.models import AffinityResult, AffinityRunRecord, Grouping, Job, NetworkTable

log = logging.getLogger(__name__)

#: most rows one INSERT carries (PostgreSQL allows 65,535 parameters per statement; a row has 10)
INSERT_ROWS = 500
#: solved budgets of a curve are written at least this often
STORE_EVERY = 50
#: fewest complete epochs of an affinity run's trajectory that a trust report resamples
MIN_TRUST_EPOCHS = 2
#: the singleton rule of an explicit (warm_start) table: its networks are measured, there is no rule
EXPLICIT_SINGLETONS = "none"


@dataclass(frozen=True)
class GroupingKey:
    """Which table of which job (or, with ``run``, of which uploaded affinity run), solved how."""

    job_id: str
    method: str
    solver: str
    singletons: str
    run: bool = False

    def owns(self) -> ColumnElement[bool]:
        """The condition selecting this source's groupings."""
        return Grouping.run_id == self.job_id if self.run else Grouping.job_id == self.job_id


def budget_key(budget: float) -> float:
    """The stored form of a budget (rounded to 1e-6)."""
    return round(float(budget), 6)


def default_budgets(n_tasks: int, step: float = 1.0) -> list[float]:
    """Budgets 1, 1 + step, …, n: with unit-cost networks (the affinity form, ``step`` 1) every
    distinct grouping; ``step`` 0.5 adds the budgets that buy a half-size network."""
    count = int(round((max(n_tasks, 1) - 1) / step))
    return [1.0 + k * step for k in range(count + 1)]


def table_budgets(problem: dict[str, Any]) -> list[float]:
    """The default budgets of a stored table: :func:`default_budgets` of its tasks, in steps of 0.5
    when some network costs a half — an explicit (warm_start) table with a network of cost x.5, or an
    affinity table with ``half_singletons`` (a half-size single-task network costs half of
    ``network_cost``) — else in steps of 1. Affinity tables stored before half-size singletons became
    the default have no ``half_singletons`` key, and keep whole budgets."""
    if problem.get("objective") == "max_affinity":
        halves = problem.get("half_singletons") is True
    else:
        halves = any(
            isinstance(net, dict) and float(net.get("cost", 1.0)) % 1.0
            for net in problem.get("networks") or []
        )
    return default_budgets(len(problem.get("tasks") or []), 0.5 if halves else 1.0)


def complete_epochs(trajectory: Sequence[Any] | None) -> int:
    """How many epochs of an affinity trajectory hold a complete, finite matrix."""

    def complete(matrix: Any) -> bool:
        return isinstance(matrix, list) and all(
            isinstance(row, list)
            and all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in row)
            for row in matrix
        )

    return sum(1 for matrix in trajectory or [] if complete(matrix))


def estimate_samples(
    problem: Problem, document: dict[str, Any], trajectory: Sequence[Any] | None = None
) -> list[Problem]:
    """Samples of a table's estimate for trust reports: the draws an explicit problem ``document``
    carries (:func:`grouping.selection.trust.problem_samples`), or — for an affinity problem —
    bootstrap means over the complete epochs of its run's ``trajectory``
    (:func:`grouping.selection.trust.resampled_affinity`) when there are at least
    :data:`MIN_TRUST_EPOCHS`; ``[]`` when there are none. ``InputError`` for malformed draws."""
    if isinstance(problem, AffinityProblem):
        if complete_epochs(trajectory) < MIN_TRUST_EPOCHS:
            return []
        return list(resampled_affinity(problem, trajectory or []))
    return problem_samples(document)


def max_useful_budget(problem: Problem) -> float:
    """The most a selection can spend usefully: every task is served by one network, so an optimal
    selection needs at most n networks — at most the n most expensive candidates' cost (affinity
    form: n times the dearest network size). Any larger budget has the same optimum."""
    n = len(problem.tasks)
    if isinstance(problem, AffinityProblem):
        costs = getattr(problem, "network_costs", None) or {"full": float(problem.network_cost)}
        return n * max(costs.values())
    return float(sum(sorted((float(net.cost) for net in problem.networks), reverse=True)[:n]))


def solve_timed(problem: Problem, budget: float, solver: str, time_limit: float | None) -> dict[str, Any]:
    """``solve(...).to_dict()`` with the solve time recorded in the ``solve_seconds`` metric.

    A budget above :func:`max_useful_budget` is solved at that cap (same optimum, and no solver
    arithmetic on budgets such as 1e308); the solution reports the ``budget`` asked for."""
    started = time.perf_counter()
    try:
        solution = solve(
            problem, min(budget, max_useful_budget(problem)), solver=solver, time_limit=time_limit
        ).to_dict()
        return {**solution, "budget": budget}
    finally:
        SOLVE_SECONDS.labels(solver=solver).observe(time.perf_counter() - started)


def with_trust(solution: dict[str, Any], problem: Problem, samples: Sequence[Problem]) -> dict[str, Any]:
    """``solution`` (a :func:`solve_timed` dict) with ``trust``: the report of
    :func:`grouping.selection.trust.selection_trust` over ``samples`` of ``problem``'s estimate, as a
    dict — unchanged when there are no samples or the budget was infeasible."""
    if not samples or solution.get("status") not in ("optimal", "feasible"):
        return solution
    solved = Solution.model_validate({k: v for k, v in solution.items() if k in Solution.model_fields})
    return {**solution, "trust": selection_trust(solved, problem, samples).model_dump(mode="json")}


def per_budget_limit(time_limit: float, n_budgets: int, request_seconds: float | None) -> float:
    """The time limit of each of ``n_budgets`` solves of one request: ``time_limit``, lowered so that
    the limits sum to at most ``request_seconds`` (the request's total solve time; ``None``: no total)."""
    if request_seconds is None:
        return time_limit
    return min(time_limit, request_seconds / max(n_budgets, 1))


def read_stored(
    session: Session, job_id: str, solver: str, singletons: str, budgets: list[float]
) -> tuple[Job | AffinityRunRecord | None, dict[tuple[str, float], dict[str, Any]]]:
    """The job — or the uploaded affinity run — of id ``job_id`` and its stored solutions at
    ``budgets`` (any method, keyed ``(method, budget)``: the affinity methods' under the
    ``singletons`` rule, the explicit warm_start table's under :data:`EXPLICIT_SINGLETONS`), in one
    query per kind of source: the fast path of ``GET /groupings``."""
    wanted = [budget_key(b) for b in budgets]
    for source, owner in ((Job, Grouping.job_id), (AffinityRunRecord, Grouping.run_id)):
        rows = session.execute(
            select(source, Grouping.method, Grouping.budget, Grouping.solution)
            .outerjoin(
                Grouping,
                and_(
                    owner == source.id,
                    Grouping.solver == solver,
                    Grouping.singletons.in_([singletons, EXPLICIT_SINGLETONS]),
                    Grouping.budget.in_(wanted),
                ),
            )
            .where(source.id == job_id)
        ).all()
        if rows:
            return rows[0][0], {(m, b): solution for _, m, b, solution in rows if m is not None}
    return None, {}


def job_groupings(
    session_factory: sessionmaker[Session],
    key: GroupingKey,
    budgets: list[float],
    *,
    time_limit: float | None = None,
    project: str = "default",
    skip_infeasible: bool = False,
    request_seconds: float | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[tuple[float, dict[str, Any], bool]]:
    """``(budget, solution, stored)`` per budget: read from the database, solving and storing the missing.

    Raises ``InfeasibleBudget`` (``min_budget`` in its details) for a budget below the cheapest
    covering, unless ``skip_infeasible``, where that budget's entry is an ``infeasible`` solution.

    With ``request_seconds``, the missing budgets' solves share that total (see
    :func:`per_budget_limit`); a solution cut short by a limit reduced below ``time_limit`` is
    returned but not stored (the stored grouping is always what a full solve gives). New solutions
    are stored in batches as they come (:data:`STORE_EVERY`); ``should_stop`` (the client went
    away) is asked before each solve and ends the work there, keeping what was stored — the
    result then lacks the unsolved budgets.

    Raises ``InputError`` naming ``method`` when the stored table holds numbers beyond what the
    solvers handle reliably (:func:`service.limits.check_problem_values`).

    Solutions solved here carry ``trust`` where the table has samples of its estimate
    (:func:`estimate_samples`: a warm_start table's draws, an affinity run's trajectory); stored ones
    carry what was stored with them.
    """
    wanted = [budget_key(b) for b in budgets]
    with session_factory() as session:
        rows = session.scalars(
            select(Grouping).where(
                key.owns(),
                Grouping.method == key.method,
                Grouping.solver == key.solver,
                Grouping.singletons == key.singletons,
                Grouping.budget.in_(wanted),
            )
        ).all()
        stored = {row.budget: row.solution for row in rows}
        missing = [b for b in wanted if b not in stored]
        table, trajectory = read_table(session, key) if missing else (None, None)
    if missing and table is None:
        raise InputError(
            "singletons",
            f"{'affinity run' if key.run else 'job'} {key.job_id} has no {key.singletons!r} table for "
            f"{key.method!r} (its affinity matrix does not admit that rule)",
        )
    fresh: dict[float, dict[str, Any]] = {}
    if missing:
        try:
            check_problem_values(table)
        except InputError as exc:
            raise InputError(
                "method",
                f"job {key.job_id}'s {key.method!r} table cannot be solved: {exc.field}: {exc.reason}",
            ) from None
        problem = parse_problem(table)
        try:
            samples = estimate_samples(problem, table, trajectory)
        except InputError as exc:  # a table stored by this service: report, and answer without trust
            log.warning("job %s: no trust report for %r: %s: %s", key.job_id, key.method, exc.field,
                        exc.reason)
            samples = []
        todo = list(dict.fromkeys(missing))
        full = time_limit
        limit = per_budget_limit(full, len(todo), request_seconds) if full is not None else None
        pending: dict[float, dict[str, Any]] = {}
        try:
            for budget in todo:
                if should_stop is not None and should_stop():
                    break
                try:
                    solution = json_safe(with_trust(solve_timed(problem, budget, key.solver, limit), problem,
                                                    samples))
                except InfeasibleBudget as exc:
                    if not skip_infeasible:
                        raise
                    solution = {
                        "status": "infeasible",
                        "objective": None,
                        "networks": [],
                        "per_task": {},
                        "min_budget": exc.details.get("min_budget"),
                    }
                fresh[budget] = solution
                if solution["status"] == "optimal" or (solution["status"] != "infeasible" and limit == full):
                    pending[budget] = solution
                if len(pending) >= STORE_EVERY:
                    _store(session_factory, key, project, pending)
                    pending = {}
        finally:
            _store(session_factory, key, project, pending)
    return [
        (b, stored[b], True) if b in stored else (b, fresh[b], False)
        for b in wanted
        if b in stored or b in fresh
    ]


def read_table(session: Session, key: GroupingKey) -> tuple[dict[str, Any] | None, list[Any] | None]:
    """``(table, trajectory)`` of ``key``'s source: the network table of its method and singleton
    rule (``None`` when there is none) and, for an affinity table, the method's per-epoch trajectory.
    A job's are stored rows; an uploaded run's are built from its matrices
    (:func:`service.affinity_runs.run_table`)."""
    if key.run:
        record = session.get(AffinityRunRecord, key.job_id)
        if record is None:
            return None, None
        return run_table(record, key.method, key.singletons), record.trajectories.get(key.method, [])
    table = session.scalar(
        select(NetworkTable.problem).where(
            NetworkTable.job_id == key.job_id,
            NetworkTable.method == key.method,
            NetworkTable.singletons == key.singletons,
        )
    )
    trajectory = None
    if table is not None and table.get("objective") == "max_affinity":
        trajectory = session.scalar(
            select(AffinityResult.trajectory).where(
                AffinityResult.job_id == key.job_id, AffinityResult.method == key.method
            )
        )
    return table, trajectory


def _store(
    session_factory: sessionmaker[Session],
    key: GroupingKey,
    project: str,
    solutions: dict[float, dict[str, Any]],
) -> None:
    """Insert ``solutions`` (skipping budgets stored meanwhile), :data:`INSERT_ROWS` rows per
    statement, in one transaction."""
    if not solutions:
        return
    with transaction(session_factory) as session:
        insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
        rows = [
            {
                "project": project,
                "job_id": None if key.run else key.job_id,
                "run_id": key.job_id if key.run else None,
                "method": key.method,
                "solver": key.solver,
                "singletons": key.singletons,
                "budget": budget,
                "status": str(solution["status"]),
                "objective": _finite(solution.get("objective")),
                "solve_seconds": float(solution.get("solve_seconds") or 0.0),
                "solution": json_safe(solution),
            }
            for budget, solution in solutions.items()
        ]
        for start in range(0, len(rows), INSERT_ROWS):
            session.execute(
                insert(Grouping).values(rows[start : start + INSERT_ROWS]).on_conflict_do_nothing()
            )


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def precompute(
    session_factory: sessionmaker[Session],
    job_id: str,
    *,
    solver: str = DEFAULT_SOLVER,
    singletons: str = "forbid",
    time_limit: float | None = None,
) -> int:
    """Solve and store every method's groupings of a succeeded job at its table's default budgets
    (:func:`table_budgets`): the affinity methods' tables of rule ``singletons``, the warm_start
    table; the count."""
    with session_factory() as session:
        job = session.get(Job, job_id)
        if job is None or job.status != "succeeded":
            return 0
        tables = session.execute(
            select(NetworkTable.method, NetworkTable.singletons, NetworkTable.problem)
            .where(
                NetworkTable.job_id == job_id,
                NetworkTable.singletons.in_([singletons, EXPLICIT_SINGLETONS]),
            )
            .order_by(NetworkTable.id)
        ).all()
        project = job.project
    count = 0
    for method, rule, problem in tables:
        key = GroupingKey(job_id, method, solver, rule)
        count += len(
            job_groupings(
                session_factory,
                key,
                table_budgets(problem),
                time_limit=time_limit,
                project=project,
                skip_infeasible=True,
            )
        )
    return count
