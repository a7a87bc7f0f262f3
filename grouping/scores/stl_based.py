"""The STL-based scores RSA and IAS from one trained full-size single-task network per task.

Both compare the STL networks on the same probe examples: the first ``probe_rows`` rows of the test
split (the paper uses 2,048 test images).
"""

from __future__ import annotations

import numpy as np

from grouping.data.spec import DatasetSpec
from grouping.errors import InputError
from grouping.scores.attribution import attribution_matrix
from grouping.scores.rsa import rsa_matrix
from grouping.tables.jobs import NetworkJob
from grouping.tables.pool import OnDone, train_all
from grouping.training.config import ModelConfig, TrainingConfig


def stl_scores(
    spec: DatasetSpec,
    tasks: list[str],
    model: ModelConfig,
    training: TrainingConfig,
    *,
    probe_rows: int = 512,
    workers: int | None = None,
    on_done: OnDone | None = None,
) -> dict[str, np.ndarray]:
    """Train the n STL networks and return ``{"rsa": …, "input_attribution": …}`` (NaN diagonals)."""
    if probe_rows < 3:
        raise InputError("probe_rows", f"RSA needs at least 3 probe examples, got {probe_rows}")
    jobs = [NetworkJob((task,), probe_rows=probe_rows) for task in tasks]
    trained = train_all(spec, jobs, model, training, workers=workers, on_done=on_done)
    return {
        "rsa": rsa_matrix([net.representations for net in trained]),
        "input_attribution": attribution_matrix([net.attributions for net in trained]),
    }
