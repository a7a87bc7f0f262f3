"""A numeric candidate table shared by the explicit solvers (BIP, branch and bound, brute force).

Values are stored in *minimisation* form: ``loss[n, t]`` is the loss of network ``n`` on task ``t``
(``+inf`` where ``n`` cannot serve ``t``); for score objectives it is the negated score and
``sense = -1`` converts back. With this convention every objective is Standley's
``L(S) = sum_t min_{n in S} L(n, t)`` (003_e1b8ce7dfcb85eaf.txt, §3).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from grouping.problem import ExplicitProblem


@dataclass(frozen=True)
class CandidateTable:
    """Candidate networks as arrays; ``trains[n]`` holds task indices into ``tasks``."""

    tasks: tuple[str, ...]
    trains: tuple[tuple[int, ...], ...]
    sizes: tuple[str, ...]
    costs: tuple[float, ...]
    loss: np.ndarray
    sense: int

    def __len__(self) -> int:
        return len(self.trains)


def explicit_table(problem: ExplicitProblem) -> CandidateTable:
    """The table of an explicit problem (``sense = -1`` for ``max_score``)."""
    index = {t: i for i, t in enumerate(problem.tasks)}
    sense = 1 if problem.objective == "min_loss" else -1
    loss = np.full((len(problem.networks), len(problem.tasks)), np.inf)
    for n, net in enumerate(problem.networks):
        for task, value in net.values.items():
            loss[n, index[task]] = sense * value
    return CandidateTable(
        tasks=tuple(problem.tasks),
        trains=tuple(tuple(sorted(index[t] for t in net.tasks)) for net in problem.networks),
        sizes=tuple(str(net.size) for net in problem.networks),
        costs=tuple(float(net.cost) for net in problem.networks),
        loss=loss,
        sense=sense,
    )
