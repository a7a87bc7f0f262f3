"""``digits-attributes``: scikit-learn's bundled 8×8 handwritten digits (1,797 images, no download),
turned into CelebA-style attribute tasks that share visual evidence to different degrees."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from grouping.data.builtin.base import RawData
from grouping.data.spec import TaskSpec, validated

#: binary attributes: the digit classes for which the attribute holds
ATTRIBUTES: dict[str, frozenset[int]] = {
    "even": frozenset({0, 2, 4, 6, 8}),
    "greater_than_4": frozenset({5, 6, 7, 8, 9}),
    "prime": frozenset({2, 3, 5, 7}),
    "closed_loop": frozenset({0, 6, 8, 9}),
    "straight_strokes": frozenset({1, 4, 7}),
    "symmetric": frozenset({0, 1, 3, 8}),
}


class DigitsOptions(BaseModel):
    """No options yet; unknown keys are refused."""

    model_config = ConfigDict(extra="forbid")


def build_digits_attributes(options: dict[str, Any]) -> RawData:
    """Images (rows × 1 × 8 × 8, ink 0–16) and 8 tasks: ``digit`` (10 classes), six binary attributes
    of the class, and ``ink`` (regression: total ink of the image)."""
    validated(DigitsOptions, options, "dataset.options")
    from sklearn.datasets import load_digits  # here: listing the built-ins must not load scikit-learn

    bunch = load_digits()
    digit = bunch.target.astype(np.int64)
    images = bunch.images.astype(np.float32)[:, None, :, :]
    table: dict[str, np.ndarray] = {"image": images, "digit": digit, "ink": images.sum(axis=(1, 2, 3))}
    for name, members in ATTRIBUTES.items():
        table[name] = np.isin(digit, sorted(members)).astype(np.int64)
    tasks = [TaskSpec(name="digit", type="multiclass")]
    tasks += [TaskSpec(name=name, type="binary") for name in ATTRIBUTES]
    tasks.append(TaskSpec(name="ink", type="regression"))
    return RawData(
        table, ["image"], tasks, "image", {"attributes": {k: sorted(v) for k, v in ATTRIBUTES.items()}}
    )
