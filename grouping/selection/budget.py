"""Exact budget arithmetic and the cheapest covering.

Costs such as 0.5 or 1/3 are turned into integers: each cost becomes a fraction with a denominator of at
most 10^6 (``Fraction.limit_denominator``), and all costs and budgets are multiplied by the least
common multiple of those denominators. A budget is rounded *down* to whole units only after adding
``BUDGET_SLACK`` units, so that a budget computed as 2.4999999999 still affords 2.5 worth of networks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction

import numpy as np
from ortools.linear_solver import pywraplp

from grouping.candidates import CandidateTable
from grouping.errors import InputError

#: tolerance, in scaled integer cost units, for budgets that arrive with floating-point noise
BUDGET_SLACK = 1e-6
#: most budgets one curve may ask for
MAX_CURVE_POINTS = 10_000


class InfeasibleBudget(InputError):
    """The budget is below the cheapest covering; ``details["min_budget"]`` is the smallest feasible one."""

    def __init__(self, budget: float, min_budget: float) -> None:
        super().__init__("budget", f"{budget:g} is below the cheapest selection that serves every task; "
                         f"the minimum feasible budget is {min_budget:g}", min_budget=min_budget)


@dataclass(frozen=True)
class CostScale:
    """Integer cost units: ``units(c) = c * scale`` exactly for every cost of the problem."""

    scale: int

    @classmethod
    def for_costs(cls, costs: tuple[float, ...] | list[float]) -> CostScale:
        scale = 1
        for cost in set(costs):  # tables repeat a few costs many times
            frac = Fraction(cost).limit_denominator(10**6)
            scale = math.lcm(scale, frac.denominator)
        return cls(scale)

    def units(self, cost: float) -> int:
        """A network cost in integer units."""
        return round(cost * self.scale)

    def all_units(self, costs: tuple[float, ...] | list[float]) -> np.ndarray:
        """:meth:`units` of every cost at once (``np.rint`` rounds half to even, as ``round`` does)."""
        return np.rint(np.asarray(costs, dtype=float) * self.scale).astype(np.int64)

    def budget_units(self, budget: float) -> int:
        """The most integer units a budget affords (rounded down after ``BUDGET_SLACK``)."""
        return math.floor(budget * self.scale + BUDGET_SLACK)

    def to_budget(self, units: int) -> float:
        return units / self.scale


def check_budget(budget: float) -> float:
    """Validate one budget value: a finite, non-negative number."""
    if isinstance(budget, bool) or not isinstance(budget, int | float) or not math.isfinite(budget) \
            or budget < 0:
        raise InputError("budget", f"must be a finite number >= 0, got {budget!r}")
    return float(budget)


def parse_budgets(spec: str) -> list[float]:
    """``"1:5:0.5"`` -> ``[1.0, 1.5, ..., 5.0]`` (inclusive, exact decimal steps).

    Also accepts one budget (``"2.5"``) or a comma-separated list (``"1,2,4"``).
    """
    text = str(spec).strip()

    def number(part: str) -> Decimal:
        try:
            value = Decimal(part.strip())
        except InvalidOperation:
            raise InputError("budgets", f"{part.strip()!r} is not a number (expected START:STOP:STEP, "
                             "e.g. 1:5:0.5, or a comma-separated list)") from None
        if not value.is_finite() or value < 0:
            raise InputError("budgets", f"budgets must be finite and >= 0, got {part.strip()!r}")
        return value

    if ":" in text:
        parts = text.split(":")
        if len(parts) != 3:
            raise InputError("budgets", f"expected START:STOP:STEP (e.g. 1:5:0.5), got {text!r}")
        start, stop, step = (number(p) for p in parts)
        if step <= 0:
            raise InputError("budgets", "STEP must be > 0")
        if stop < start:
            raise InputError("budgets", f"STOP ({stop}) is below START ({start})")
        count = int((stop - start) / step) + 1
        if count > MAX_CURVE_POINTS:
            raise InputError("budgets", f"{count} budgets requested; at most {MAX_CURVE_POINTS}")
        return [float(start + i * step) for i in range(count)]
    values = [number(p) for p in text.split(",") if p.strip()]
    if not values:
        raise InputError("budgets", "no budget given")
    return [float(v) for v in values]


#: most tasks for which :func:`cheapest_cover` drops dominated networks through a table over all 2^n task sets
_DOMINANCE_MAX_TASKS = 20


def _cover_candidates(table: CandidateTable, units: np.ndarray) -> np.ndarray:
    """Networks that can be in a minimum-cost covering: per set of served tasks the cheapest one, and
    (up to ``_DOMINANCE_MAX_TASKS`` tasks) none for which a network serving a strict superset costs no
    more. Strict-superset minima come from the superset-min transform over all task sets."""
    served = np.isfinite(table.loss)
    n = served.shape[1]
    if n > _DOMINANCE_MAX_TASKS:
        return np.arange(len(table))
    masks = served.astype(np.int64) @ (np.int64(1) << np.arange(n, dtype=np.int64))
    cheapest = np.full(1 << n, np.iinfo(np.int64).max)
    np.minimum.at(cheapest, masks, units)
    superset, strict = cheapest.copy(), np.full(1 << n, np.iinfo(np.int64).max)
    lacking = [np.flatnonzero((np.arange(1 << n) >> bit & 1) == 0) for bit in range(n)]
    for bit, without in enumerate(lacking):  # superset[M] = min over every M' containing M
        superset[without] = np.minimum(superset[without], superset[without | (1 << bit)])
    for bit, without in enumerate(lacking):  # strict[M] = min over every M' strictly containing M
        strict[without] = np.minimum(strict[without], superset[without | (1 << bit)])
    keep = (units == cheapest[masks]) & (units < strict[masks])
    _, first = np.unique(masks[keep], return_index=True)  # one network per served set
    return np.flatnonzero(keep)[first]


def cheapest_cover(table: CandidateTable, scale: CostScale) -> tuple[int, list[int]]:
    """Minimum-cost set of networks serving every task (weighted set cover, exact in integer units)."""
    units = scale.all_units(table.costs)
    candidates = _cover_candidates(table, units)
    solver = pywraplp.Solver.CreateSolver("SCIP")
    solver.SetNumThreads(1)
    x = [solver.BoolVar(f"x{n}") for n in candidates]
    served = np.isfinite(table.loss[candidates])
    for t in range(len(table.tasks)):
        row = solver.Constraint(1, solver.infinity())
        for i in np.flatnonzero(served[:, t]):
            row.SetCoefficient(x[i], 1)
    objective = solver.Objective()
    for i, n in enumerate(candidates):
        objective.SetCoefficient(x[i], float(units[n]))
    objective.SetMinimization()
    if solver.Solve() != pywraplp.Solver.OPTIMAL:
        raise RuntimeError("the covering problem of a validated table must be solvable")
    chosen = [int(n) for i, n in enumerate(candidates) if x[i].solution_value() > 0.5]
    return int(units[chosen].sum()), chosen
