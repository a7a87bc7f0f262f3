"""Label injection (LI, ``000_e39fa9ea70ed03c5.txt`` eq. 2 / Table 12 eq. 10), in percent:

    LI(a|b) = (L_STL_a − L_STL_{a←b}) / L_STL_{a←b}

``STL_{a←b}`` is the single-task network for a whose input also carries b's label
(:func:`grouping.tables.inject_label`); both losses are test losses of fully trained networks.
Orientation ``M[i][j] = LI(tasks[i] | tasks[j])``; the diagonal is NaN. Cost: the n STL networks plus
n(n − 1) injected ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import permutations

import numpy as np

from grouping.data.spec import DatasetSpec
from grouping.tables.jobs import NetworkJob, TrainedNetwork
from grouping.tables.pool import OnDone, train_all
from grouping.training.config import ModelConfig, TrainingConfig


def label_injection_gain(tasks: list[str], stl_loss: Mapping[str, float],
                         injected_loss: Mapping[tuple[str, str], float]) -> np.ndarray:
    """Eq. 2 in percent from the STL losses and ``injected_loss[(a, b)]`` = loss of STL_{a←b} on a."""
    out = np.full((len(tasks), len(tasks)), np.nan)
    for i, a in enumerate(tasks):
        for j, b in enumerate(tasks):
            if i != j:
                injected = injected_loss[(a, b)]
                out[i, j] = 100.0 * (stl_loss[a] - injected) / injected
    return out


def label_injection_jobs(tasks: list[str]) -> list[NetworkJob]:
    """The n(n − 1) injected single-task networks STL_{a←b}."""
    return [NetworkJob((a,), inject=b) for a, b in permutations(tasks, 2)]


def label_injection(
    spec: DatasetSpec,
    tasks: list[str],
    model: ModelConfig,
    training: TrainingConfig,
    *,
    stl_loss: Mapping[str, float] | None = None,
    workers: int | None = None,
    on_done: OnDone | None = None,
) -> tuple[np.ndarray, list[TrainedNetwork]]:
    """Train the injected networks (and the STL ones unless their test losses are given, e.g. from an
    exhaustive table trained with the same configuration) and return eq. 2's matrix and the networks."""
    jobs = label_injection_jobs(tasks)
    if stl_loss is None:
        jobs += [NetworkJob((a,)) for a in tasks]
    trained = train_all(spec, jobs, model, training, workers=workers, on_done=on_done)
    injected = {(net.job.tasks[0], net.job.inject): net.test_loss[net.job.tasks[0]]
                for net in trained if net.job.inject is not None}
    if stl_loss is None:
        stl_loss = {net.job.tasks[0]: net.test_loss[net.job.tasks[0]]
                    for net in trained if net.job.inject is None}
    return label_injection_gain(tasks, stl_loss, injected), trained
