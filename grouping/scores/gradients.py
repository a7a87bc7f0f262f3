"""The MTL-based scores of ``000_e39fa9ea70ed03c5.txt``, measured by the affinity engine in one
training run of the all-task network:

* gradient similarity (GS, eq. 3/11) — ``grad_cosine``: cosine of the per-task backbone gradients;
* gradient transference (GT, eq. 4/12) — ``tag``: 1 − L_a(θ_{B|b}) / L_a(θ_B), TAG's lookahead affinity.

The paper averages one measurement per epoch; the engine averages every ``training.every``-th step
(see :mod:`grouping.affinity`). Orientation as TAG's: ``M[i][j]`` onto task i from task j.
"""

from __future__ import annotations

import numpy as np

from grouping.affinity import compute_affinity
from grouping.data.dataset import Dataset
from grouping.training.config import ModelConfig, TrainingConfig

#: score name -> affinity-engine method
ENGINE_METHODS: dict[str, str] = {"gradient_similarity": "grad_cosine", "gradient_transference": "tag"}


def gradient_scores(dataset: Dataset, model: ModelConfig, training: TrainingConfig) -> dict[str, np.ndarray]:
    """``{"gradient_similarity": GS, "gradient_transference": GT}`` with NaN diagonals."""
    run = compute_affinity(dataset, list(ENGINE_METHODS.values()), model, training)
    out = {}
    for name, method in ENGINE_METHODS.items():
        matrix = np.array(run.matrices[method], dtype=float)
        np.fill_diagonal(matrix, np.nan)
        out[name] = matrix
    return out
