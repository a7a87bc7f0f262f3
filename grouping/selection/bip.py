"""The ``bip`` solver for explicit candidates: a facility-location binary integer program (SCIP).

    min  sum_{n,t} L(n,t) y_{n,t}
    s.t. sum_n y_{n,t} = 1            for every task t   (served exactly once)
         y_{n,t} <= x_n                                  (only by a chosen network that serves t)
         sum_n c_n x_n <= B                              (costs and budget in exact integer units)
         x, y binary

This is Standley's selection problem (003_e1b8ce7dfcb85eaf.txt §3.2) written as the BIP the paper
mentions; the disaggregated linking constraints ``y <= x`` give it a tight LP relaxation.
"""

from __future__ import annotations

import time

import numpy as np

from grouping.candidates import CandidateTable
from grouping.selection.branch_and_bound import table_lower_bound
from grouping.selection.budget import CostScale, cheapest_cover
from grouping.selection.mip import has_solution, new_scip, solve_exact
from grouping.selection.result import RawSolution, serve_best, settle_bound


def solve_table_bip(table: CandidateTable, scale: CostScale, budget_units: int,
                    time_limit: float | None) -> RawSolution:
    """Optimal (or, at the time limit, best found) selection from an explicit candidate table.

    Every answer carries a finite proven lower bound no greater than its loss total: SCIP's dual
    bound, or at the time limit at least the search-free :func:`table_lower_bound`."""
    started = time.monotonic()
    solver = new_scip(time_limit)
    affordable = [n for n in range(len(table)) if scale.units(table.costs[n]) <= budget_units]
    served = np.isfinite(table.loss)
    x = {n: solver.BoolVar(f"x{n}") for n in affordable}
    y = {(n, t): solver.BoolVar(f"y{n}_{t}") for n in affordable for t in np.flatnonzero(served[n])}
    # rows through the low-level API: the expression API costs seconds on tables of thousands of networks
    once = {t: solver.Constraint(1, 1) for t in range(len(table.tasks))}
    within = solver.Constraint(-solver.infinity(), budget_units)
    objective = solver.Objective()
    for n in affordable:
        within.SetCoefficient(x[n], scale.units(table.costs[n]))
    for (n, t), var in y.items():
        once[t].SetCoefficient(var, 1)
        link = solver.Constraint(-solver.infinity(), 0)
        link.SetCoefficient(var, 1)
        link.SetCoefficient(x[n], -1)
        objective.SetCoefficient(var, float(table.loss[n, t]))
    objective.SetMinimization()
    if time_limit is not None:  # building the model counts against the limit
        solver.SetTimeLimit(max(1, int(1000 * (time_limit - (time.monotonic() - started)))))
    status = solve_exact(solver)
    bound = solver.Objective().BestBound() if has_solution(status) else None
    chosen = [n for n in affordable if x[n].solution_value() > 0.5] if has_solution(status) else []
    if not served[chosen].any(axis=0).all():
        # time limit before any incumbent: the cheapest covering is within budget by the caller's check
        chosen = cheapest_cover(table, scale)[1]
    optimal = status == solver.OPTIMAL
    raw = RawSolution("optimal" if optimal else "feasible", serve_best(table, chosen), bound)
    # stopped by the time limit, SCIP may have no finite dual bound yet (e.g. still in presolve)
    return settle_bound(raw, table_lower_bound(table, scale, budget_units))
