"""Standley et al.'s Algorithm 1, *Get Best Networks* (003_e1b8ce7dfcb85eaf.txt §3.2), with bounding.

``GETBESTNETWORKS(C_r, S_r, b_r)``: FILTER drops candidates that cost more than the remaining budget
or cannot improve ``S_r`` on any task; SORT puts the most promising first (largest improvement of
``S_r``'s per-task losses, the paper's heuristic); each candidate ``n`` in turn is removed from ``C_r``
and the search recurses on ``S_r + {n}`` with the candidates after it. A branch is cut when a lower
bound on every completion is not below the incumbent (or a task is left uncoverable). The bound is
the larger of

* ``sum_t min(L(S_r, t), min_{n in C_r} L(n, t))`` (each task at its best still reachable), and
* ``sum_t u_t - K``: with ``u_t = L(S_r, t)`` (or ``max_{n in C_r} L(n, t)`` for a task not yet
  served) and ``g_n = sum_t max(0, u_t - L(n, t))``, networks added within the remaining budget
  improve the total by at most the sum of their ``g_n``, hence by at most ``K``, the optimum of the
  fractional knapsack ``max sum g_n z_n, sum c_n z_n <= b_r, 0 <= z <= 1`` (greedy by ``g_n / c_n``).
"""

from __future__ import annotations

import time

import numpy as np

from grouping.candidates import CandidateTable
from grouping.selection.budget import CostScale, cheapest_cover
from grouping.selection.result import RawSolution, serve_best, settle_bound

#: relative tolerance when comparing a bound with the incumbent
_EPS = 1e-12


def _better(value: float, incumbent: float) -> bool:
    """``value`` beats ``incumbent`` by more than the tolerance (anything finite beats ``inf``)."""
    if not np.isfinite(incumbent):
        return bool(np.isfinite(value))
    return bool(value < incumbent - _EPS * max(1.0, abs(incumbent)))


class _Search:
    def __init__(self, table: CandidateTable, units: np.ndarray, deadline: float | None) -> None:
        self.loss = table.loss
        self.units = units
        self.deadline = deadline
        self.best_value = np.inf
        self.best: list[int] = []
        self.timed_out = False

    def run(self, candidates: np.ndarray, chosen: list[int], current: np.ndarray, remaining: int) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            self.timed_out = True
        if self.timed_out:
            return
        value = current.sum()
        if _better(value, self.best_value):
            self.best_value, self.best = value, list(chosen)
        # FILTER: affordable and improving S_r on at least one task
        rows = self.loss[candidates]
        gain = np.where(rows < current, np.minimum(current, 1e300) - rows, 0.0).sum(axis=1)
        keep = (self.units[candidates] <= remaining) & (gain > 0)
        candidates, gain, rows = candidates[keep], gain[keep], rows[keep]
        if len(candidates) == 0:
            return
        if not _better(self.bound(current, rows, self.units[candidates], remaining), self.best_value):
            return
        order = np.argsort(-gain, kind="stable")  # SORT: most promising first
        candidates = candidates[order]
        for i, n in enumerate(candidates):
            if self.timed_out:  # unwind at once: each sibling's bound costs a pass over the candidates
                return
            rest = candidates[i + 1:]
            child = np.minimum(current, self.loss[n])
            left = remaining - int(self.units[n])
            if _better(self.bound(child, self.loss[rest], self.units[rest], left), self.best_value):
                chosen.append(int(n))
                self.run(rest, chosen, child, left)
                chosen.pop()

    @staticmethod
    def bound(current: np.ndarray, rows: np.ndarray, units: np.ndarray, remaining: int) -> float:
        """Lower bound on the loss total of any completion (module docstring); ``inf`` if none covers."""
        affordable = units <= remaining
        rows, units = rows[affordable], units[affordable]
        if len(rows) == 0:
            return float(current.sum())
        reachable = np.minimum(current, rows.min(axis=0))
        if not np.isfinite(reachable).all():
            return np.inf
        worst_cover = np.where(np.isfinite(rows), rows, -np.inf).max(axis=0)
        upper = np.where(np.isfinite(current), current, worst_cover)
        gains = np.maximum(0.0, upper - rows).sum(axis=1)
        order = np.argsort(-gains / np.maximum(units, 1e-300))
        spent = np.cumsum(units[order])
        full = spent <= remaining
        knapsack = gains[order][full].sum()
        if not full.all():
            nxt = int(np.argmin(full))
            before = spent[nxt] - units[order][nxt]
            knapsack += gains[order][nxt] * (remaining - before) / max(units[order][nxt], 1)
        return float(max(reachable.sum(), upper.sum() - knapsack))


def table_lower_bound(table: CandidateTable, scale: CostScale, budget_units: int) -> float:
    """A proven lower bound on the loss total of every selection within ``budget_units``, without
    search: the root bound of the module docstring (each task at its best affordable loss, tightened by
    the fractional-knapsack bound on what the budget can buy). ``inf`` if no affordable selection
    serves every task. Costs O(networks x tasks), so it is available even when a solver's time limit
    ends before its own bound exists."""
    units = np.array([scale.units(c) for c in table.costs], dtype=np.int64)
    start = np.full(len(table.tasks), np.inf)
    return _Search.bound(start, np.asarray(table.loss, dtype=float), units, budget_units)


def solve_table_branch_and_bound(table: CandidateTable, scale: CostScale, budget_units: int,
                                 time_limit: float | None) -> RawSolution:
    """Optimal selection by Algorithm 1; at the time limit, the incumbent (or, before there is one,
    the cheapest covering) with the search-free :func:`table_lower_bound`."""
    units = np.array([scale.units(c) for c in table.costs])
    deadline = None if time_limit is None else time.monotonic() + time_limit
    search = _Search(table, units, deadline)
    start = np.full(len(table.tasks), np.inf)
    search.run(np.arange(len(table)), [], start, budget_units)
    status = "feasible" if search.timed_out else "optimal"
    bound = table_lower_bound(table, scale, budget_units) if search.timed_out else float(search.best_value)
    # the time limit may strike before the search completes any covering (a busy machine): then the
    # cheapest covering, which the caller checked to be within the budget
    chosen = search.best if np.isfinite(search.best_value) else cheapest_cover(table, scale)[1]
    return settle_bound(RawSolution(status, serve_best(table, chosen), bound), bound)
