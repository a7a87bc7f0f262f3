"""Check and encode one task's target column.

binary -> float 0/1 (the two values in sorted order); multiclass -> int64 class index (classes sorted;
a continuous float column, or more than ``MAX_CLASSES`` classes, is refused);
regression -> float32 standardised with the training rows' mean and standard deviation, so tasks on
different scales train at comparable step sizes (TAG's ratio in eq. 1 is scale-free anyway).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from grouping.data.spec import TaskSpec
from grouping.errors import InputError

#: most classes a multiclass target may have
MAX_CLASSES = 1000
#: most distinct values a float multiclass target with non-integer values may have (more: continuous)
MAX_FLOAT_CLASSES = 100


@dataclass(frozen=True)
class EncodedTarget:
    """A task's encoded target values, its head's output size and how to decode them."""

    values: np.ndarray
    output_dim: int
    classes: list | None = None
    mean: float = 0.0
    std: float = 1.0


def encode_target(task: TaskSpec, values: np.ndarray, train_rows: np.ndarray) -> EncodedTarget:
    """Validate ``values`` (the whole column) for ``task`` and encode it; ``train_rows`` index the
    training split."""
    field = f"dataset.tasks.{task.name}"
    if values.ndim != 1:
        raise InputError(
            field, f"target {task.column!r} must hold one value per row (shape is {values.shape})"
        )
    missing = pd.isna(values)
    if values.dtype.kind in "fc":
        missing |= ~np.isfinite(values)
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        raise InputError(
            field,
            f"target column {task.column!r} has {int(missing.sum())} NaN, infinite or missing values "
            f"(first at row {row})",
        )
    if task.type == "regression":
        return _regression(task, values, train_rows, field)
    try:
        codes, uniques = pd.factorize(values, sort=True)
    except TypeError:  # mixed value types do not sort; order them by their text
        codes, uniques = pd.factorize(values.astype(str), sort=True)
    classes = uniques.tolist()
    if task.type == "multiclass":
        _check_class_count(task, values, len(classes), field)
    if len(classes) < 2:
        kind = "constant" if task.type == "binary" else "a multiclass column with one class"
        raise InputError(field, f"target column {task.column!r} is {kind} ({classes[0]!r}); nothing to learn")
    if task.type == "binary" and len(classes) != 2:
        raise InputError(
            field,
            f"target column {task.column!r} has {len(classes)} distinct values; a binary task needs "
            "exactly 2 (declare it multiclass)",
        )
    if task.type == "binary":
        return EncodedTarget(codes.astype(np.float32), 1, classes)
    return EncodedTarget(codes.astype(np.int64), len(classes), classes)


def _check_class_count(task: TaskSpec, values: np.ndarray, n_classes: int, field: str) -> None:
    """Refuse a multiclass target that is not a set of classes: a float column with more than
    :data:`MAX_FLOAT_CLASSES` distinct values, not all whole numbers (a continuous measurement), or any
    column with more than :data:`MAX_CLASSES` distinct values."""
    if values.dtype.kind == "f" and n_classes > MAX_FLOAT_CLASSES and not np.all(values == np.round(values)):
        raise InputError(
            field,
            f"target column {task.column!r} holds {n_classes} distinct non-integer numbers; it looks "
            "continuous, not like classes: declare it regression (or store class labels as integers "
            "or text)",
        )
    if n_classes > MAX_CLASSES:
        raise InputError(
            field,
            f"target column {task.column!r} has {n_classes} distinct values; a multiclass task allows at "
            f"most {MAX_CLASSES} classes (declare a numeric column regression)",
        )


def _regression(task: TaskSpec, values: np.ndarray, train_rows: np.ndarray, field: str) -> EncodedTarget:
    try:
        numeric = values.astype(np.float64)
    except (TypeError, ValueError):
        raise InputError(field, f"regression target {task.column!r} is not numeric") from None
    if not np.isfinite(numeric).all():
        raise InputError(field, f"target column {task.column!r} has NaN or infinite values")
    train = numeric[train_rows]
    std = float(train.std())
    if std == 0.0 or numeric.max() == numeric.min():
        raise InputError(
            field, f"target column {task.column!r} is constant on the training rows; nothing to learn"
        )
    mean = float(train.mean())
    return EncodedTarget(((numeric - mean) / std).astype(np.float32), 1, None, mean, std)
