"""Task-pair matrices of the "It's a Match" evaluation: true MTL gains and affinity scores.

Both come as JSON in the project's orientation convention (the same as TAG's affinities)::

    {"tasks": [...], "gain": {"onto_row_from_column": M}}                 # true MTL gain, percent
    {"tasks": [...], "scores": {NAME: {"onto_row_from_column": M}, ...}}  # one matrix per affinity score

``M[i][j]`` is the value **onto target task i from partner task j**: for gains G(i|j) of
``000_e39fa9ea70ed03c5`` eq. 5. Note that the paper prints its tables 1 and 6-11 the other way round
(partners as rows, targets as columns). Diagonals are ignored (they may be ``null``); every
off-diagonal entry must be a finite number. Unknown top-level keys (e.g. ``"source"``) are ignored.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from grouping.errors import InputError

ORIENTATION_KEY = "onto_row_from_column"


@dataclass(frozen=True)
class PairMatrix:
    """``values[i, j]``: the quantity onto target ``tasks[i]`` from partner ``tasks[j]``; NaN diagonal."""

    tasks: tuple[str, ...]
    values: np.ndarray

    def partners(self, target: int) -> tuple[list[str], np.ndarray]:
        """The partner names of ``tasks[target]`` and its row without the diagonal, in task order."""
        keep = [j for j in range(len(self.tasks)) if j != target]
        return [self.tasks[j] for j in keep], self.values[target, keep]

    def off_diagonal(self) -> np.ndarray:
        """All ordered (target, partner) pairs, row by row."""
        return self.values[~np.eye(len(self.tasks), dtype=bool)]


def parse_gains(data: Any, *, source: str = "gains") -> PairMatrix:
    """Validate the true-gain document; ``source`` prefixes the field names in errors."""
    doc = _mapping(data, source)
    tasks = parse_tasks(doc.get("tasks"), f"{source}.tasks")
    return PairMatrix(tasks, _matrix(doc.get("gain"), tasks, f"{source}.gain"))


def parse_scores(data: Any, tasks: Sequence[str], *, source: str = "scores") -> dict[str, PairMatrix]:
    """Validate the scores document against the gains' ``tasks``, reordering its matrices to that order.

    The scores may list the tasks in another order; they must name exactly the same set.
    """
    doc = _mapping(data, source)
    own = parse_tasks(doc.get("tasks"), f"{source}.tasks")
    if set(own) != set(tasks):
        missing = [t for t in tasks if t not in own]
        extra = [t for t in own if t not in tasks]
        raise InputError(
            f"{source}.tasks",
            f"must name the same tasks as the gains; missing {missing}, unknown {extra}",
            missing=missing,
            unknown=extra,
        )
    scores = doc.get("scores")
    if not isinstance(scores, Mapping) or not scores:
        reason = f'must be a non-empty object {{NAME: {{"{ORIENTATION_KEY}": M}}}}'
        raise InputError(f"{source}.scores", reason)
    order = [own.index(t) for t in tasks]
    result = {}
    for name, entry in scores.items():
        values = _matrix(entry, own, f"{source}.scores.{name}")
        result[str(name)] = PairMatrix(tuple(tasks), values[np.ix_(order, order)])
    return result


def parse_tasks(value: Any, field: str) -> tuple[str, ...]:
    """A list of at least two distinct, non-empty task names."""
    if not isinstance(value, list) or not all(isinstance(t, str) and t for t in value):
        raise InputError(field, "must be a list of non-empty task names")
    if len(set(value)) != len(value):
        duplicates = sorted({t for t in value if value.count(t) > 1})
        raise InputError(field, f"duplicate task names {duplicates}")
    if len(value) < 2:
        raise InputError(field, "needs at least two tasks")
    return tuple(value)


def _mapping(data: Any, field: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise InputError(field, "must be a JSON object")
    return data


def _matrix(entry: Any, tasks: Sequence[str], field: str) -> np.ndarray:
    """The n×n ``onto_row_from_column`` matrix of ``entry`` as floats with a NaN diagonal."""
    if not isinstance(entry, Mapping) or ORIENTATION_KEY not in entry:
        raise InputError(field, f'must be an object with the key "{ORIENTATION_KEY}"')
    field = f"{field}.{ORIENTATION_KEY}"
    rows = entry[ORIENTATION_KEY]
    n = len(tasks)
    square = isinstance(rows, list) and len(rows) == n
    if not square or any(not isinstance(r, list) or len(r) != n for r in rows):
        raise InputError(field, f"must be a square {n}x{n} matrix (one row and one column per task)")
    values = np.full((n, n), np.nan)
    for i, row in enumerate(rows):
        for j, x in enumerate(row):
            if i == j:
                continue
            if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
                reason = f"must be a finite number (onto {tasks[i]} from {tasks[j]}), got {x!r}"
                raise InputError(f"{field}[{i}][{j}]", reason)
            values[i, j] = float(x)
    return values
