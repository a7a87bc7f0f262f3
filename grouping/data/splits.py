"""Assign rows to train / val / test: by a split column or at random by fractions."""

from __future__ import annotations

import numpy as np

from grouping.data.spec import SplitSpec
from grouping.errors import InputError

SPLIT_NAMES = ("train", "val", "test")
_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
}


def split_rows(spec: SplitSpec, n_rows: int, column: np.ndarray | None) -> dict[str, np.ndarray]:
    """Row indices of each split (sorted); ``column`` holds the split column's values when
    ``spec.column`` is set."""
    if spec.column is not None:
        assert column is not None
        labels = np.asarray([_ALIASES.get(str(v).strip().lower(), "?") for v in column])
        bad = labels == "?"
        if bad.any():
            raise InputError(
                "dataset.split.column",
                f"column {spec.column!r} holds {column[np.flatnonzero(bad)[0]]!r}; use train, val or test",
            )
        rows = {name: np.flatnonzero(labels == name) for name in SPLIT_NAMES}
    else:
        order = np.random.default_rng(spec.seed).permutation(n_rows)
        n_train = int(round(spec.fractions[0] * n_rows))
        n_val = int(round(spec.fractions[1] * n_rows))
        rows = {
            "train": np.sort(order[:n_train]),
            "val": np.sort(order[n_train : n_train + n_val]),
            "test": np.sort(order[n_train + n_val :]),
        }
    for name, idx in rows.items():
        if len(idx) == 0:
            raise InputError("dataset.split", f"the {name} split is empty ({n_rows} rows in all)")
    return rows
