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
    """A solver's answer in minimisation form; ``bound`` is a proven lower bound on the loss total."""

    status: str
    networks: list[Selected]
    bound: float | None


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
                    budget=budget)
