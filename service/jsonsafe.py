"""The one conversion every JSON document goes through before the database stores it.

PostgreSQL's ``json``/``jsonb`` types accept only standard JSON, which has no ``NaN`` or
``Infinity``; Python's ``json`` module writes those tokens anyway, so one non-finite float anywhere
in a document made a whole write fail (and SQLite stored a document that the API could not send).
:func:`json_safe` is applied to results, trajectories, metadata and solutions before they are
written, so the same document is stored on every backend.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def json_safe(value: Any) -> Any:
    """``value`` as plain, standard JSON data, recursively.

    * numpy arrays, numpy scalars and tensors (anything with ``tolist()``) become lists / numbers;
    * mappings become dicts with ``str`` keys; lists, tuples and sets become lists;
    * floats that are NaN or ±infinity become ``None`` (JSON ``null``); other numbers, strings,
      booleans and ``None`` are kept;
    * anything else is a ``TypeError`` (it would not be valid JSON either).

    The result never contains ``NaN``/``Infinity`` and serialises with ``json.dumps(...,
    allow_nan=False)``.
    """
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if hasattr(value, "tolist"):  # numpy arrays and scalars, torch tensors
        return json_safe(value.tolist())
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v) for v in value]
    raise TypeError(f"{type(value).__name__} is not JSON data")
