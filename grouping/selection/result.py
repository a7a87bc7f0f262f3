"""Solver-neutral selections and their conversion into :class:`grouping.problem.Solution`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from grouping.candidates import CandidateTable
from grouping.problem import ChosenNetwork, Solution


@dataclass(frozen=True)
class Selected:
    """A chosen network: member task indices, size, cost, and the ``{task index: value}`` it serves."""

    trains: tuple[int, ...]
    size: str
    cost: float
    serves: dict[int, float]


@dataclass(frozen=True)
class RawSolution:
    """A solver's answer in minimisation form; ``bound`` is a proven lower bound on the loss total and
    ``proved_by`` names the algorithm that produced the selection and its bound."""

    status: str
    networks: list[Selected]
    bound: float | None
    proved_by: str = ""


def selection_value(networks: Sequence[Selected]) -> float:
    """The loss total (minimisation form) of a selection: the sum of what its networks serve."""
    return float(sum(v for net in networks for v in net.serves.values()))


def settle_bound(raw: RawSolution, fallback: float) -> RawSolution:
    """``raw`` with a bound that is always present and on the right side of its objective.

    ``fallback`` must be a proven lower bound on the loss total that needs no search (e.g.
    :func:`grouping.selection.branch_and_bound.table_lower_bound`). The result's bound is the larger
    of ``fallback`` and the solver's own bound (when that is finite), capped at the returned
    selection's value: that selection is feasible, so the optimum lies between the two and the cap
    only removes floating-point overshoot. With no networks the raw solution is returned unchanged;
    should no bound be finite (only when the sums overflow a float) the bound is ``None``.
    """
    if not raw.networks:
        return raw
    value = selection_value(raw.networks)
    bound = fallback if raw.bound is None or not math.isfinite(raw.bound) else max(raw.bound, fallback)
    if not (math.isfinite(bound) and math.isfinite(value)):
        return RawSolution(raw.status, raw.networks, None, raw.proved_by)
    return RawSolution(raw.status, raw.networks, min(bound, value), raw.proved_by)


def serve_best(table: CandidateTable, chosen: Sequence[int]) -> list[Selected]:
    """Serve each task from the chosen network with its lowest loss (Standley's ``min_{n in S} L(n, t)``)."""
    serves: dict[int, dict[int, float]] = {n: {} for n in chosen}
    for t in range(len(table.tasks)):
        best = min(chosen, key=lambda n: table.loss[n, t])
        serves[best][t] = float(table.loss[best, t])
    return [Selected(table.trains[n], table.sizes[n], table.costs[n], serves[n]) for n in chosen]


def to_solution(raw: RawSolution, tasks: Sequence[str], sense: int, *, solver: str, budget: float,
                seconds: float) -> Solution:
    """Public form: original sign, networks serving nothing dropped,
    ``gap = |bound - objective| / max(|objective|, 1e-9)``."""
    used = [net for net in raw.networks if net.serves]
    per_task = {tasks[t]: sense * v for net in used for t, v in net.serves.items()}
    objective = sum(per_task[t] for t in tasks)
    bound = None if raw.bound is None or not math.isfinite(raw.bound) else sense * raw.bound
    if bound is not None and raw.status == "optimal":
        bound = objective if abs(bound - objective) <= 1e-9 * max(1.0, abs(objective)) else bound
    gap = None if bound is None else abs(bound - objective) / max(abs(objective), 1e-9)
    networks = [ChosenNetwork(trains=[tasks[t] for t in net.trains],
                              serves=[tasks[t] for t in sorted(net.serves)], size=net.size, cost=net.cost)
                for net in used]
    return Solution(status=raw.status, objective=objective, bound=bound, gap=gap, networks=networks,
                    per_task={t: per_task[t] for t in tasks}, solve_seconds=seconds, solver=solver,
                    budget=budget, proved_by=raw.proved_by or solver)
