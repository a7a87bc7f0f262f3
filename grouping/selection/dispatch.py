"""``solve`` / ``solve_curve``: validate the request, check the budget, run the chosen solver, time it.

Solver ``auto`` picks the method: an explicit table goes to the subset dynamic program
(:mod:`grouping.selection.subset_dp`) when its size (:class:`~grouping.selection.subset_dp.DPSize`)
is within :data:`SUBSET_DP_MAX_WORK` (and its tables within ``subset_dp.MAX_MEMORY``), otherwise to
the facility-location BIP; an affinity problem goes to ``bip`` (column generation). A curve answered
by the subset DP comes from one program up to its largest budget. The solution's ``proved_by`` names
the method that ran.

Time limits: the subset DP checks its deadline between chunks of at most ``2^21`` cells (hundredths
of a second) and the BIP counts its model building against the limit; after either stops, the
fallback selection and the search-free bound cost ``O(networks x tasks)``. Reading the table and the
cheapest covering before the solve are not counted."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import replace

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
from grouping.selection.solvers import DEFAULT_SOLVER, SOLVERS
from grouping.selection.subset_dp import MAX_MEMORY, dp_size, solve_table_subset_dp, subset_dp_solutions

#: largest affinity problem each enumerating solver accepts (it builds all 2^n groups)
ENUMERATION_LIMITS: dict[str, int] = {"subset_dp": 12, "branch_and_bound": 8, "brute_force": 7}
#: ``auto`` runs the subset DP on an explicit table up to this ``DPSize.work`` (cell updates). Measured in
#: bench/results/selection_explicit.md ("Cutoff"): the DP costs about 7-15 ns of CPU per unit of work
#: (n = 16, every subset, budget 8: 4.1e8 units, about 3 s), whatever the table's density, while the BIP
#: ranges from 0.07 s (sparse tables) to minutes (dense ones); past this the BIP is the better bet.
SUBSET_DP_MAX_WORK = 6e8

_TABLE_SOLVERS = {
    "bip": solve_table_bip,
    "subset_dp": solve_table_subset_dp,
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


def _min_units(problem: Problem, scale: CostScale, table: CandidateTable | None) -> int:
    if table is not None:
        return cheapest_cover(table, scale)[0]
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
    return scale.to_budget(_min_units(problem, scale, _explicit(problem)))


def _explicit(problem: Problem) -> CandidateTable | None:
    return explicit_table(problem) if isinstance(problem, ExplicitProblem) else None


def explicit_method(table: CandidateTable, scale: CostScale, budget_units: int) -> str:
    """The exact method ``auto`` runs on an explicit table: ``subset_dp`` within the size limits, else
    ``bip``."""
    size = dp_size(table, scale, budget_units)
    fits = size.work <= SUBSET_DP_MAX_WORK and size.memory <= MAX_MEMORY
    return "subset_dp" if fits else "bip"


def _method(problem: Problem, solver: str, explicit: CandidateTable | None, scale: CostScale,
            units: int) -> str:
    """The concrete method behind ``solver`` (``auto`` resolved) for a budget of ``units``."""
    if solver != "auto":
        return solver
    return "bip" if explicit is None else explicit_method(explicit, scale, units)


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
         units: int, explicit: CandidateTable | None) -> Solution:
    started = time.perf_counter()
    method = _method(problem, solver, explicit, scale, units)
    if isinstance(problem, AffinityProblem) and method == "bip":
        raw: RawSolution = solve_affinity(problem, scale, units, time_limit)
        sense = -1
    else:
        table = explicit if explicit is not None else _table(problem, method)
        raw = _TABLE_SOLVERS[method](table, scale, units, time_limit)
        sense = table.sense
    raw = replace(raw, proved_by=raw.proved_by or method)
    return to_solution(raw, problem.tasks, sense, solver=solver, budget=budget,
                       seconds=time.perf_counter() - started)


def solve(problem: Problem, budget: float, *, solver: str = DEFAULT_SOLVER,
          time_limit: float | None = None) -> Solution:
    """The optimal selection within ``budget``.

    Raises :class:`InfeasibleBudget` below the cheapest covering and ``InputError`` naming ``solver``,
    ``budget`` or ``time_limit`` for bad options. With ``time_limit`` (seconds) the best selection
    found is returned with ``status="feasible"`` and its proven bound (never ``None``). An affinity
    problem's solve returns within ``time_limit * (1 + TIME_MARGIN_SHARE) + TIME_MARGIN_SECONDS``
    (5 % + 2 s; :mod:`grouping.selection.column_generation`).
    """
    _check_options(problem, solver, time_limit)
    budget = check_budget(budget)
    scale, explicit = _scale(problem), _explicit(problem)
    units, min_units = scale.budget_units(budget), _min_units(problem, scale, explicit)
    if units < min_units:
        raise InfeasibleBudget(budget, scale.to_budget(min_units))
    return _run(problem, budget, solver, time_limit, scale, units, explicit)


def _dp_curve(problem: Problem, budgets: list[float], solver: str, time_limit: float | None,
              scale: CostScale, explicit: CandidateTable | None) -> list[Solution]:
    """Every budget of a curve from one subset DP up to the largest (each reports that DP's time)."""
    started = time.perf_counter()
    table = explicit if explicit is not None else _table(problem, "subset_dp")
    raws = subset_dp_solutions(table, scale, [scale.budget_units(b) for b in budgets], time_limit)
    seconds = time.perf_counter() - started
    return [to_solution(raw, problem.tasks, table.sense, solver=solver, budget=budget, seconds=seconds)
            for raw, budget in zip(raws, budgets, strict=True)]


def solve_curve(problem: Problem, budgets: Sequence[float], *, solver: str = DEFAULT_SOLVER,
                time_limit: float | None = None) -> list[Solution]:
    """One solution per budget (``time_limit`` applies to each, or to the one subset DP that answers
    them all); budgets below the cheapest covering give ``status="infeasible"`` entries instead of
    raising."""
    _check_options(problem, solver, time_limit)
    budgets = [check_budget(b) for b in budgets]
    scale, explicit = _scale(problem), _explicit(problem)
    min_units = _min_units(problem, scale, explicit)
    feasible = [b for b in budgets if scale.budget_units(b) >= min_units]
    solved: dict[float, Solution] = {}
    if feasible:
        top = max(scale.budget_units(b) for b in feasible)
        if _method(problem, solver, explicit, scale, top) == "subset_dp":
            solved = dict(zip(feasible, _dp_curve(problem, feasible, solver, time_limit, scale, explicit),
                              strict=True))
    out = []
    for budget in budgets:
        units = scale.budget_units(budget)
        if units < min_units:
            out.append(Solution(status="infeasible", objective=None, bound=None, gap=None, networks=[],
                                per_task={}, solve_seconds=0.0, solver=solver, budget=budget))
        elif budget in solved:
            out.append(solved[budget])
        else:
            out.append(_run(problem, budget, solver, time_limit, scale, units, explicit))
    return out
