"""The ``brute_force`` reference: every set of networks within the budget, no bounding, no heuristics.

Evaluates ``L(S) = sum_t min_{n in S} L(n, t)`` (003_e1b8ce7dfcb85eaf.txt §3) for every subset ``S`` of
the candidates with ``cost(S) <= b``; exponential, for tests on small instances.
"""

from __future__ import annotations

import math
import time

from grouping.candidates import CandidateTable
from grouping.errors import InputError
from grouping.selection.budget import CostScale
from grouping.selection.result import RawSolution, serve_best


def solve_table_brute_force(table: CandidateTable, scale: CostScale, budget_units: int,
                            time_limit: float | None) -> RawSolution:
    """The optimum by exhaustive enumeration; raises ``InputError("time_limit")`` if it cannot finish."""
    units = [scale.units(c) for c in table.costs]
    rows = [tuple(float(v) for v in row) for row in table.loss]
    deadline = None if time_limit is None else time.monotonic() + time_limit
    best_value, best = math.inf, []
    stack: list[tuple[int, tuple[float, ...], int, tuple[int, ...]]] = [
        (0, (math.inf,) * len(table.tasks), budget_units, ())]
    visited = 0
    while stack:
        start, current, remaining, chosen = stack.pop()
        visited += 1
        if deadline is not None and visited % 4096 == 0 and time.monotonic() > deadline:
            raise InputError("time_limit", "brute_force did not finish enumerating within the time limit; "
                             "use solver 'bip'")
        value = sum(current)
        if value < best_value:
            best_value, best = value, list(chosen)
        for n in range(start, len(rows)):
            if units[n] <= remaining:
                child = tuple(map(min, current, rows[n]))
                stack.append((n + 1, child, remaining - units[n], (*chosen, n)))
    return RawSolution("optimal", serve_best(table, best), best_value)
