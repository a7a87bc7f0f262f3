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
        for cost in costs:
            frac = Fraction(cost).limit_denominator(10**6)
            scale = math.lcm(scale, frac.denominator)
        return cls(scale)

    def units(self, cost: float) -> int:
        """A network cost in integer units."""
        return round(cost * self.scale)

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


def cheapest_cover(table: CandidateTable, scale: CostScale) -> tuple[int, list[int]]:
    """Minimum-cost set of networks serving every task (weighted set cover, exact in integer units)."""
    solver = pywraplp.Solver.CreateSolver("SCIP")
    solver.SetNumThreads(1)
    x = [solver.BoolVar(f"x{n}") for n in range(len(table))]
    for t in range(len(table.tasks)):
        solver.Add(sum(x[n] for n in range(len(table)) if math.isfinite(table.loss[n, t])) >= 1)
    solver.Minimize(sum(scale.units(c) * x[n] for n, c in enumerate(table.costs)))
    if solver.Solve() != pywraplp.Solver.OPTIMAL:
        raise RuntimeError("the covering problem of a validated table must be solvable")
    chosen = [n for n in range(len(table)) if x[n].solution_value() > 0.5]
    return sum(scale.units(table.costs[n]) for n in chosen), chosen
