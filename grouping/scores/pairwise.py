"""The symmetric score matrix every pairwise task score fills the same way."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np

T = TypeVar("T")


def symmetric_matrix(items: Sequence[T], score: Callable[[T, T], float]) -> np.ndarray:
    """M[i][j] = M[j][i] = score(items[i], items[j]) for i < j; NaN diagonal."""
    n = len(items)
    out = np.full((n, n), np.nan)
    for i in range(n):
        for j in range(i + 1, n):
            out[i, j] = out[j, i] = score(items[i], items[j])
    return out
