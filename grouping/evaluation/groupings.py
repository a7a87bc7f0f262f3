"""Task groupings: the control baselines "Random" and "Pessimal" of Standley et al. (``003_…``, §6).

A **grouping** of an explicit network table is a partition of the tasks into disjoint groups, each group
trained and served by one network of the table whose trained tasks are exactly that group (a singleton
group may use any single-task network of the table, e.g. the full- or the half-size one). Its cost is the
sum of the networks' costs and its total loss the sum over tasks of the loss of the task's network. A
grouping is *feasible at budget B* when its cost is at most B. Groupings are enumerated exactly (every set
partition, every network choice); there is no sampling, so the number of tasks is capped at
:data:`MAX_TASKS` (Bell(8) = 4140 partitions; exhaustive tables are built for n ≤ 6).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import product

from grouping.errors import InputError
from grouping.problem import ExplicitProblem

#: the most tasks whose groupings are enumerated
MAX_TASKS = 8
#: slack on budget comparisons, so that costs like 0.5 + 1 + 1 fit a budget of 2.5 exactly
COST_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Grouping:
    """One grouping: the indices of its networks in the table, its cost and its total loss."""

    networks: tuple[int, ...]
    cost: float
    total: float


def all_groupings(table: ExplicitProblem) -> list[Grouping]:
    """Every grouping of a ``min_loss`` table, of any cost.

    A network can serve a group only if it trains exactly the group's tasks and has a loss for each.
    """
    if len(table.tasks) > MAX_TASKS:
        raise InputError("tasks", f"grouping baselines enumerate every grouping: at most {MAX_TASKS} tasks")
    by_group: dict[frozenset[str], list[int]] = {}
    for index, net in enumerate(table.networks):
        if net.loss is not None and set(net.tasks) <= set(net.loss):
            by_group.setdefault(frozenset(net.tasks), []).append(index)
    result = []
    for partition in _set_partitions(list(table.tasks)):
        for choice in product(*(by_group.get(frozenset(group), []) for group in partition)):
            nets = [table.networks[i] for i in choice]
            cost = sum(float(n.cost) for n in nets)
            total = sum(n.loss[t] for n in nets for t in n.tasks)
            result.append(Grouping(choice, cost, total))
    return result


def feasible(groupings: Sequence[Grouping], budget: float) -> list[Grouping]:
    """The groupings whose cost is at most ``budget``."""
    return [g for g in groupings if g.cost <= budget + COST_TOLERANCE]


def _set_partitions(items: list[str]) -> Iterator[list[list[str]]]:
    """Every partition of ``items`` into non-empty blocks, each exactly once."""
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for partition in _set_partitions(rest):
        yield [[first], *partition]
        for k in range(len(partition)):
            yield [*partition[:k], [first, *partition[k]], *partition[k + 1 :]]

