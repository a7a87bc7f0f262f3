"""The ``subset_dp`` solver: dynamic programming over task subsets and budget steps (explicit tables).

Standley's objective ``L(S) = sum_t min_{n in S} L(n, t)`` (003_e1b8ce7dfcb85eaf.txt §3) is the best
*partition* of the tasks into blocks, each block ``T`` served by one network ``n`` that has a loss for
every task of ``T``: a selection serves every task from its best chosen network, and the tasks a
network serves form one block. Two blocks may name the same network; serving both from it costs it
once, so dropping the repeat only lowers the cost and the optimum is unchanged (costs are ``>= 0``).

With costs in integer units divided by their greatest common divisor ``d`` (``b`` counts steps of
``d``) and cost classes ``c``,

    w_c(T)  = min over networks n of class c serving every task of T of  sum_{t in T} L(n, t)
    g(0, b) = 0,
    g(U, b) = min over classes c <= b and blocks T subset of U holding U's highest task h(U) of
              w_c(T) + g(U \\ T, b - c),

and ``g(all tasks, b)`` is the optimum at every budget step ``b`` of a curve at once. Fixing the
highest task of ``U`` in its block counts each partition once: the work is ``sum_U 2^(|U|-1)``
(about ``3^n / 2``) block choices per budget step, vectorised over the budget steps; the sets ``U``
are filled in order of their highest task, so ``g(U \\ T, .)`` is final when it is read (also for
zero-cost networks, whose block stays at the same budget step). The full set is the only set needed
with the last task highest, so that level costs ``2^(n-1)``. Building ``w`` costs
``sum_n 2^(tasks n serves)`` (``3^n`` for a table of every subset).

The selection is read back from ``g`` (at each step the block attaining the minimum) and every task
is then served by its best chosen network; the value of ``g`` is the proven optimum (the bound).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from grouping.candidates import CandidateTable
from grouping.errors import InputError
from grouping.selection.branch_and_bound import table_lower_bound
from grouping.selection.budget import CostScale, cheapest_cover
from grouping.selection.result import RawSolution, serve_best, settle_bound

#: most (block, remainder) pairs times budget steps evaluated in one vectorised chunk (memory bound)
_CHUNK_CELLS = 1 << 21
#: most bytes of the tables ``g`` and ``w`` (:attr:`DPSize.memory`): larger problems are refused
MAX_MEMORY = 1 << 30


@dataclass(frozen=True)
class DPSize:
    """What a subset DP on a table would cost: tasks, budget steps and cost classes."""

    tasks: int
    steps: int
    classes: int
    block_sums: int

    @property
    def work(self) -> float:
        """Cell updates: ``sum_{j < n-1} 3^j`` block choices (about ``3^(n-1) / 2``) per budget step
        and cost class, plus the block sums."""
        pairs = (3 ** max(self.tasks - 1, 0) - 1) / 2 + 2 ** max(self.tasks - 1, 0)
        return pairs * self.steps * (1 + self.classes) + self.block_sums

    @property
    def memory(self) -> int:
        """Bytes of the tables ``g`` and ``w`` (8-byte floats)."""
        return 8 * (2 ** max(self.tasks - 1, 0) * self.steps + self.classes * 2 ** self.tasks)


def _step(units: np.ndarray) -> int:
    """The greatest common divisor of the positive costs (one budget step), 1 if there are none."""
    positive = units[units > 0]
    return int(np.gcd.reduce(positive)) if len(positive) else 1


def dp_size(table: CandidateTable, scale: CostScale, budget_units: int) -> DPSize:
    """The size of :class:`SubsetDP` on ``table`` up to ``budget_units``, without building it."""
    units = scale.all_units(table.costs)
    affordable = units <= budget_units
    step = _step(units[affordable])
    served = np.isfinite(table.loss[affordable]).sum(axis=1)
    return DPSize(tasks=len(table.tasks), steps=budget_units // step + 1,
                  classes=len(set((units[affordable] // step).tolist())),
                  block_sums=int(np.sum(2.0 ** served)))


def _submask_pairs(m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair ``(T, V)`` with ``T`` a subset of ``V < 2^m``, ordered by ``V``: the arrays ``T`` and
    ``V ^ T`` and the offsets ``starts`` (``V``'s pairs are ``starts[V]:starts[V + 1]``).

    Built bit by bit: the pairs of ``V | 2^j`` are those of ``V`` followed by the same with ``2^j``
    added to ``T``."""
    block = np.zeros(1, dtype=np.int64)
    rest = np.zeros(1, dtype=np.int64)
    starts = np.array([0, 1], dtype=np.int64)
    for j in range(m):
        lengths = np.diff(starts)
        segment = np.repeat(np.arange(len(lengths)), lengths)
        first = starts[:-1][segment] + np.arange(len(block))  # 2 * start + offset within the segment
        second = first + lengths[segment]
        new_block, new_rest = np.empty(2 * len(block), np.int64), np.empty(2 * len(block), np.int64)
        new_block[first], new_rest[first] = block, rest | (1 << j)
        new_block[second], new_rest[second] = block | (1 << j), rest
        block, rest = np.concatenate([block, new_block]), np.concatenate([rest, new_rest])
        starts = np.concatenate([starts, starts[-1] + 2 * starts[1:]])
    return block, rest, starts


class DeadlinePassed(Exception):
    """The dynamic program ran past its deadline."""


class SubsetDP:
    """``g(U, b)`` of the module docstring for every budget step up to ``budget_units``."""

    def __init__(self, table: CandidateTable, scale: CostScale, budget_units: int,
                 deadline: float | None = None) -> None:
        self.table = table
        self.n = n = len(table.tasks)
        units = scale.all_units(table.costs)
        self.affordable = np.flatnonzero(units <= budget_units)
        self.step = _step(units[self.affordable])
        self.steps = budget_units // self.step + 1
        self.cls = np.full(len(table), -1, dtype=np.int64)
        self.cls[self.affordable] = units[self.affordable] // self.step
        self.deadline = deadline
        self.w = self._block_values()
        self.block, self.rest, self.starts = _submask_pairs(max(n - 2, 0))
        self.g = np.full((1 << max(n - 1, 0), self.steps), np.inf)
        self.g[0] = 0.0
        for j in range(n - 1):
            self._level(j)
        self.top_block = np.arange(1 << (n - 1), dtype=np.int64)
        self.top_rest = ((1 << (n - 1)) - 1) ^ self.top_block
        self.best = self._combine(1 << (n - 1), self.top_block, self.top_rest).min(axis=0)

    def _check_deadline(self) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise DeadlinePassed

    def _block_values(self) -> dict[int, np.ndarray]:
        """``w_c`` for every cost class: each network's loss sum over every subset of the tasks it serves
        (built by doubling over its tasks), minimised per subset (networks grouped by class and number
        of served tasks, one pass each)."""
        served = np.isfinite(self.table.loss)
        count = served.sum(axis=1)
        w: dict[int, np.ndarray] = {}
        for c in sorted(set(self.cls[self.affordable].tolist())):
            w[c] = values = np.full(1 << self.n, np.inf)
            for k in range(1, self.n + 1):
                nets = self.affordable[(self.cls[self.affordable] == c) & (count[self.affordable] == k)]
                if len(nets) == 0:
                    continue
                self._check_deadline()
                tasks = np.nonzero(served[nets])[1].reshape(len(nets), k)
                losses = np.take_along_axis(self.table.loss[nets], tasks, axis=1)
                masks, sums = np.zeros((len(nets), 1 << k), np.int64), np.zeros((len(nets), 1 << k))
                for i in range(k):  # subsets 2^i .. 2^(i+1) - 1: those below, with task i added
                    masks[:, 1 << i:2 << i] = masks[:, :1 << i] | (np.int64(1) << tasks[:, i:i + 1])
                    sums[:, 1 << i:2 << i] = sums[:, :1 << i] + losses[:, i:i + 1]
                masks, sums = masks.ravel(), sums.ravel()
                np.minimum.at(values, masks, sums)
        return w

    def _combine(self, high: int, block: np.ndarray, rest: np.ndarray) -> np.ndarray:
        """``min_c w_c(high | block) + g(rest, b - c)`` per pair (rows) and budget step (columns)."""
        below = self.g[rest]
        out = np.full(below.shape, np.inf)
        for c, w in self.w.items():
            if c >= self.steps:
                continue
            weight = w[high | block]
            rows = np.flatnonzero(np.isfinite(weight))
            if len(rows) == 0:
                continue
            if 4 * len(rows) < len(weight):  # e.g. a class of single-task networks
                out[rows, c:] = np.minimum(out[rows, c:], weight[rows, None] + below[rows, :self.steps - c])
            else:
                np.minimum(out[:, c:], weight[:, None] + below[:, :self.steps - c], out=out[:, c:])
        return out

    def _level(self, j: int) -> None:
        """``g(2^j | V, .)`` for every ``V < 2^j``, in chunks of whole segments of pairs."""
        high, count = 1 << j, 1 << j
        rows_per_chunk = max(1, _CHUNK_CELLS // self.steps)
        v = 0
        while v < count:
            self._check_deadline()
            end = int(np.searchsorted(self.starts, self.starts[v] + rows_per_chunk, side="right")) - 1
            end = min(count, max(end, v + 1))
            lo, hi = self.starts[v], self.starts[end]
            out = self._combine(high, self.block[lo:hi], self.rest[lo:hi])
            self.g[high + v:high + end] = np.minimum.reduceat(out, self.starts[v:end] - lo, axis=0)
            v = end

    def optimum(self, budget_units: int) -> float:
        """``g(all tasks, b)`` at the budget step of ``budget_units`` (``inf`` if none serves every task)."""
        return float(self.best[min(budget_units // self.step, self.steps - 1)])

    def selection(self, budget_units: int) -> list[int]:
        """Networks of an optimal selection within ``budget_units`` (empty when none exists)."""
        b = min(budget_units // self.step, self.steps - 1)
        if not math.isfinite(self.best[b]):
            return []
        chosen: set[int] = set()
        remaining = (1 << self.n) - 1
        while remaining:
            j = remaining.bit_length() - 1
            high = 1 << j
            if j == self.n - 1:
                block, rest = self.top_block, self.top_rest
            else:
                v = remaining ^ high
                block, rest = (self.block[self.starts[v]:self.starts[v + 1]],
                               self.rest[self.starts[v]:self.starts[v + 1]])
            best, pick = math.inf, (-1, 0)
            for c, w in self.w.items():
                if c > b:
                    continue
                values = w[high | block] + self.g[rest, b - c]
                i = int(np.argmin(values))
                if values[i] < best:
                    best, pick = float(values[i]), (c, int(high | block[i]))
            c, members = pick
            chosen.add(self._network(c, members))
            remaining ^= members
            b -= c
        return sorted(chosen)

    def _network(self, c: int, members: int) -> int:
        """The network of class ``c`` with the lowest loss sum over the tasks ``members`` it serves."""
        tasks = [t for t in range(self.n) if members >> t & 1]
        nets = self.affordable[self.cls[self.affordable] == c]
        sums = self.table.loss[np.ix_(nets, tasks)].sum(axis=1)
        return int(nets[int(np.argmin(sums))])


def greedy_fill(table: CandidateTable, scale: CostScale, budget_units: int, chosen: list[int]) -> list[int]:
    """``chosen`` plus networks added one at a time while the budget allows, each time the one whose
    loss reduction ``sum_t max(0, L(S, t) - L(n, t))`` per cost unit is largest (zero-cost first)."""
    units = scale.all_units(table.costs)
    loss = table.loss  # +inf where a network does not serve a task: no gain there
    chosen = list(chosen)
    current = loss[chosen].min(axis=0)
    left = budget_units - int(units[chosen].sum())
    while True:
        gain = np.maximum(0.0, current - loss).sum(axis=1)
        useful = (units <= left) & (gain > 0)
        if not useful.any():
            return chosen
        ratio = np.where(useful, gain / np.maximum(units, 1e-9), -np.inf)
        n = int(np.argmax(ratio))
        chosen.append(n)
        current, left = np.minimum(current, loss[n]), left - int(units[n])


def subset_dp_solutions(table: CandidateTable, scale: CostScale, budget_units: list[int],
                        time_limit: float | None) -> list[RawSolution]:
    """One optimal selection per budget (integer units) from a single dynamic program up to the largest.

    At the time limit (checked between chunks of at most ``_CHUNK_CELLS`` cells, a few hundredths of
    a second) every budget gets the cheapest covering (within each budget by the caller's check)
    extended by :func:`greedy_fill`, with the search-free :func:`table_lower_bound`, status
    ``feasible``."""
    size = dp_size(table, scale, max(budget_units))
    if size.memory > MAX_MEMORY:
        raise InputError("solver", f"subset_dp would need {size.memory / 2**30:.1f} GiB of tables for "
                         f"{size.tasks} tasks and {size.steps} budget steps (at most "
                         f"{MAX_MEMORY / 2**30:g} GiB); use solver 'auto' or 'bip'")
    deadline = None if time_limit is None else time.monotonic() + time_limit
    try:
        dp = SubsetDP(table, scale, max(budget_units), deadline)
    except DeadlinePassed:
        cover = cheapest_cover(table, scale)[1]
        filled = [serve_best(table, greedy_fill(table, scale, units, cover)) for units in budget_units]
        return [settle_bound(RawSolution("feasible", networks, None, "subset_dp"),
                             table_lower_bound(table, scale, units))
                for networks, units in zip(filled, budget_units, strict=True)]
    out = []
    for units in budget_units:
        raw = RawSolution("optimal", serve_best(table, dp.selection(units)), dp.optimum(units), "subset_dp")
        out.append(settle_bound(raw, dp.optimum(units)))
    return out


def solve_table_subset_dp(table: CandidateTable, scale: CostScale, budget_units: int,
                          time_limit: float | None) -> RawSolution:
    """The optimal selection within ``budget_units`` by the subset dynamic program."""
    return subset_dp_solutions(table, scale, [budget_units], time_limit)[0]
