"""The explicit selection problem of a study's measured networks.

Each measured network contributes its per-task values (losses for ``min_loss``, scores such as gains
for ``max_score``) at its size's cost. A ``fill`` predicts every full-size network of three or more
tasks that was not measured:

* ``"hoa"``: Standley's Higher-Order Approximation (:func:`grouping.candidates.higher_order_approximation`):
  task ``t``'s value in group ``G`` is the mean of its values in the measured pairs ``{t, u} ⊆ G``;
* ``"subset_best"``: task ``t``'s value in ``G`` is its best value (lowest loss, highest score) in any
  measured full-size network ``N`` with ``t ∈ N ⊆ G`` — the prediction of a model in which adding
  tasks to a group never hurts a member; more optimistic than HOA (a best is at least a mean).

Measured networks keep their measured values, and networks listed in ``unavailable`` (trials that
failed) are never predicted.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import combinations
from typing import Literal

from grouping.candidates import higher_order_approximation
from grouping.candidates.hoa import MAX_PREDICTED
from grouping.errors import InputError
from grouping.problem import CandidateNetwork, ExplicitProblem

ValueKind = Literal["loss", "score"]
Fill = Literal["hoa", "subset_best"]
#: a network's identity: its tasks (in the study's task order) and size (``full`` or ``half``)
NetworkKey = tuple[tuple[str, ...], str]


@dataclass(frozen=True)
class Measurement:
    """One measured network: its tasks and size and its per-task values on the selection split."""

    tasks: tuple[str, ...]
    size: str
    values: Mapping[str, float]

    @property
    def key(self) -> NetworkKey:
        return self.tasks, self.size


def study_problem(
    tasks: list[str],
    value_kind: ValueKind,
    costs: Mapping[str, float],
    measured: Iterable[Measurement],
    *,
    fill: Fill | None,
    unavailable: Collection[NetworkKey] = (),
) -> ExplicitProblem:
    """The explicit problem (``min_loss`` for losses, ``max_score`` for scores) on ``measured``,
    with the unmeasured 3+-task networks predicted by ``fill`` (none when ``None``, or when there
    would be more than :data:`MAX_PREDICTED` of them: a 40-task pairwise study is answered on its
    measured networks). ``InputError`` (field ``trials``) when some task is not served yet."""
    objective = "min_loss" if value_kind == "loss" else "max_score"
    value_key = "loss" if value_kind == "loss" else "score"
    measured = list(measured)
    served = {t for m in measured for t in m.values}
    missing = [t for t in tasks if t not in served]
    if missing:
        raise InputError("trials", f"no measured network serves task {missing[0]!r} yet "
                         f"({len(measured)} trials measured)")
    networks = [CandidateNetwork(tasks=list(m.tasks), size=m.size, cost=costs[m.size],
                                 **{value_key: dict(m.values)}) for m in measured]
    problem = ExplicitProblem(tasks=tasks, objective=objective, networks=networks)
    if not fills(fill, len(tasks)):
        return problem
    known = {m.key for m in measured} | set(unavailable)
    predict = _hoa if fill == "hoa" else _subset_best
    predicted = [CandidateNetwork(tasks=list(group), size="full", cost=costs["full"], **{value_key: values})
                 for group, values in predict(problem, measured) if (group, "full") not in known]
    return ExplicitProblem(tasks=tasks, objective=objective, networks=networks + predicted)


def fills(fill: Fill | None, n_tasks: int) -> bool:
    """Whether :func:`study_problem` predicts networks of ``fill`` for ``n_tasks`` tasks."""
    return fill is not None and 2**n_tasks <= MAX_PREDICTED


def _hoa(problem: ExplicitProblem, _measured: list[Measurement]) -> Iterator[tuple[tuple[str, ...], dict]]:
    order = {t: i for i, t in enumerate(problem.tasks)}
    for net in higher_order_approximation(problem).networks:
        if len(net.tasks) >= 3:
            yield tuple(sorted(net.tasks, key=order.__getitem__)), dict(net.values)


def _subset_best(problem: ExplicitProblem, measured: list[Measurement]
                 ) -> Iterator[tuple[tuple[str, ...], dict]]:
    n = len(problem.tasks)
    better = min if problem.objective == "min_loss" else max
    bit = {t: 1 << i for i, t in enumerate(problem.tasks)}
    full = [(sum(bit[t] for t in m.tasks), m.values) for m in measured if m.size == "full"]
    for size in range(3, n + 1):
        for group in combinations(problem.tasks, size):
            mask = sum(bit[t] for t in group)
            inside = [values for sub, values in full if sub & ~mask == 0]
            seen = {t: [v[t] for v in inside if t in v] for t in group}
            if all(seen.values()):
                yield group, {t: better(vals) for t, vals in seen.items()}
