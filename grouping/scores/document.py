"""Score matrices as the JSON documents ``taskgrouper evaluate-scores`` and ``solve`` read.

NaN (the ignored diagonal) becomes ``null`` in the scores document; the affinity problem form needs
numbers everywhere, so there the diagonal is 0 (it is not used under TAG's ``singletons="forbid"``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def _rows(matrix: np.ndarray, diagonal: float | None) -> list[list[float | None]]:
    values = np.asarray(matrix, dtype=float)
    return [[diagonal if i == j else (None if not math.isfinite(v) else float(v)) for j, v in enumerate(row)]
            for i, row in enumerate(values)]


def scores_document(tasks: Sequence[str], scores: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """``{"tasks", "scores": {NAME: {"onto_row_from_column": M}}}`` (diagonals ``null``)."""
    return {"tasks": list(tasks), "scores": {name: {"onto_row_from_column": _rows(m, None)}
                                             for name, m in scores.items()}}


def gains_document(tasks: Sequence[str], gain: np.ndarray) -> dict[str, Any]:
    """``{"tasks", "gain": {"onto_row_from_column": G}}`` (percent, diagonal ``null``)."""
    return {"tasks": list(tasks), "gain": {"onto_row_from_column": _rows(gain, None)}}


def affinity_problem(tasks: Sequence[str], score: np.ndarray) -> dict[str, Any]:
    """The ``max_affinity`` problem form of one score matrix (TAG's rule: no singleton groups)."""
    return {"tasks": list(tasks), "objective": "max_affinity",
            "affinity": {"onto_row_from_column": _rows(score, 0.0)},
            "singletons": "forbid", "network_cost": 1.0}
