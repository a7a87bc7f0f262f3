"""``multidigits``: MultiMNIST-style pairs of overlapping 8×8 digits from scikit-learn's bundled set.

The left digit sits at the top-left of a 12×12 canvas, the right digit at the bottom-right (offset 4
pixels both ways); overlapping ink takes the maximum. Two 10-class tasks: ``left`` and ``right``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from grouping.data.builtin.base import RawData
from grouping.data.spec import TaskSpec, validated

CANVAS = 12
OFFSET = 4


class MultiDigitsOptions(BaseModel):
    """``n_samples`` pairs drawn with ``seed``."""

    model_config = ConfigDict(extra="forbid")

    n_samples: int = Field(default=3000, ge=100, le=200_000)
    seed: int = 0


def build_multidigits(options: dict[str, Any]) -> RawData:
    """Images (rows × 1 × 12 × 12) of two overlapped digits and the ``left``/``right`` class tasks."""
    opts: MultiDigitsOptions = validated(MultiDigitsOptions, options, "dataset.options")
    from sklearn.datasets import load_digits  # here: listing the built-ins must not load scikit-learn

    bunch = load_digits()
    rng = np.random.default_rng(opts.seed)
    left = rng.integers(0, len(bunch.target), opts.n_samples)
    right = rng.integers(0, len(bunch.target), opts.n_samples)
    canvas = np.zeros((opts.n_samples, 1, CANVAS, CANVAS), dtype=np.float32)
    canvas[:, 0, :8, :8] = bunch.images[left]
    canvas[:, 0, OFFSET:, OFFSET:] = np.maximum(canvas[:, 0, OFFSET:, OFFSET:], bunch.images[right])
    table = {"image": canvas, "left": bunch.target[left], "right": bunch.target[right]}
    tasks = [TaskSpec(name="left", type="multiclass"), TaskSpec(name="right", type="multiclass")]
    return RawData(table, ["image"], tasks, "image")
