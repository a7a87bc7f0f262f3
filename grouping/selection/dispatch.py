"""``solve`` / ``solve_curve``: validate the request, check the budget, run the chosen solver, time it."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import numpy as np

from grouping.candidates import CandidateTable, all_groups_table, explicit_table
from grouping.errors import InputError
from grouping.problem import AffinityProblem, ExplicitProblem, Problem, Solution
from grouping.selection.bip import solve_table_bip
from grouping.selection.branch_and_bound import solve_table_branch_and_bound
from grouping.selection.brute_force import solve_table_brute_force
from grouping.selection.budget import CostScale, InfeasibleBudget, cheapest_cover, check_budget
from grouping.selection.column_generation import solve_affinity
from grouping.selection.result import RawSolution, to_solution
from grouping.selection.solvers import SOLVERS

#: largest affinity problem each enumerating solver accepts (it builds all 2^n groups)
ENUMERATION_LIMITS: dict[str, int] = {"branch_and_bound": 8, "brute_force": 7}

_TABLE_SOLVERS = {
    "bip": solve_table_bip,
    "branch_and_bound": solve_table_branch_and_bound,
    "brute_force": solve_table_brute_force,
}


def _check_options(problem: Problem, solver: str, time_limit: float | None) -> None:
    if not isinstance(problem, ExplicitProblem | AffinityProblem):
        raise InputError("problem", "expected a problem from parse_problem")
    if solver not in SOLVERS:
        raise InputError("solver", f"must be one of {', '.join(SOLVERS)}, got {solver!r}")
    if time_limit is not None and (isinstance(time_limit, bool) or not isinstance(time_limit, int | float)
                                   or not math.isfinite(time_limit) or time_limit <= 0):
        raise InputError("time_limit", f"must be a number of seconds > 0, got {time_limit!r}")


def _scale(problem: Problem) -> CostScale:
    if isinstance(problem, AffinityProblem):
        return CostScale.for_costs(list(problem.network_costs.values()))
    return CostScale.for_costs([net.cost for net in problem.networks])


def _min_units(problem: Problem, scale: CostScale) -> int:
    if isinstance(problem, ExplicitProblem):
        return cheapest_cover(explicit_table(problem), scale)[0]
    # a covering with a full-size group costs at least one group, which the group of all tasks achieves;
    # without one, every task is alone on a half-size network
    n, costs = len(problem.tasks), problem.network_costs
    options = [scale.units(costs["full"])] if n >= problem.min_group_size else []
    if "half" in costs:
        options.append(n * scale.units(costs["half"]))
    return min(options)


def min_feasible_budget(problem: Problem) -> float:
    """The cost of the cheapest selection that serves every task. For affinity problems that is
    ``min(c, n c / 2)`` with half-size singletons (the group of all tasks, or every task alone; the
    latter is cheaper only for one task), else ``c``."""
    scale = _scale(problem)
    return scale.to_budget(_min_units(problem, scale))


def _table(problem: Problem, solver: str) -> CandidateTable:
    """The candidate table; for an affinity problem with half-size singletons, every group plus one
    half-size single-task network per task, scoring 0 onto it."""
    if isinstance(problem, ExplicitProblem):
        return explicit_table(problem)
    groups = all_groups_table(problem, max_tasks=ENUMERATION_LIMITS[solver], solver=solver)
    if not problem.half_singletons:
        return groups
    n = len(problem.tasks)  # one task has no full-size group: reshape the empty loss array to (0, n)
    alone = np.full((n, n), np.inf)
    np.fill_diagonal(alone, 0.0)
    return CandidateTable(tasks=groups.tasks, trains=groups.trains + tuple((i,) for i in range(n)),
                          sizes=groups.sizes + ("half",) * n,
                          costs=groups.costs + (problem.network_costs["half"],) * n,
                          loss=np.vstack([groups.loss.reshape(-1, n), alone]), sense=groups.sense)


def _run(problem: Problem, budget: float, solver: str, time_limit: float | None, scale: CostScale,
         units: int) -> Solution:
    started = time.perf_counter()
    if isinstance(problem, AffinityProblem) and solver == "bip":
        raw: RawSolution = solve_affinity(problem, scale, units, time_limit)
        sense = -1
    else:
        table = _table(problem, solver)
        raw = _TABLE_SOLVERS[solver](table, scale, units, time_limit)
        sense = table.sense
    return to_solution(raw, problem.tasks, sense, solver=solver, budget=budget,
                       seconds=time.perf_counter() - started)


def solve(problem: Problem, budget: float, *, solver: str = "bip",
          time_limit: float | None = None) -> Solution:
    """The optimal selection within ``budget``.

    Raises :class:`InfeasibleBudget` below the cheapest covering and ``InputError`` naming ``solver``,
    ``budget`` or ``time_limit`` for bad options. With ``time_limit`` (seconds) the best selection
    found is returned with ``status="feasible"`` and its proven bound.
    """
    _check_options(problem, solver, time_limit)
    budget = check_budget(budget)
    scale = _scale(problem)
    units, min_units = scale.budget_units(budget), _min_units(problem, scale)
    if units < min_units:
        raise InfeasibleBudget(budget, scale.to_budget(min_units))
    return _run(problem, budget, solver, time_limit, scale, units)


def solve_curve(problem: Problem, budgets: Sequence[float], *, solver: str = "bip",
                time_limit: float | None = None) -> list[Solution]:
    """One solution per budget (``time_limit`` applies to each); budgets below the cheapest covering
    give ``status="infeasible"`` entries instead of raising."""
    _check_options(problem, solver, time_limit)
    budgets = [check_budget(b) for b in budgets]
    scale = _scale(problem)
    min_units = _min_units(problem, scale)
    out = []
    for budget in budgets:
        units = scale.budget_units(budget)
        if units < min_units:
            out.append(Solution(status="infeasible", objective=None, bound=None, gap=None, networks=[],
                                per_task={}, solve_seconds=0.0, solver=solver, budget=budget))
        else:
            out.append(_run(problem, budget, solver, time_limit, scale, units))
    return out
