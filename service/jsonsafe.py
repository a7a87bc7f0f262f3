"""The one conversion every JSON document goes through before the database stores it.

PostgreSQL's ``json``/``jsonb`` types accept only standard JSON, which has no ``NaN`` or
``Infinity``; Python's ``json`` module writes those tokens anyway, so one non-finite float anywhere
in a document made a whole write fail (and SQLite stored a document that the API could not send).
:func:`json_safe` is applied to results, trajectories, metadata and solutions before they are
written, so the same document is stored on every backend. :func:`dumps` is the database engines'
JSON serializer (``service.db.make_engine``), so every JSON column write goes through it as well,
whichever code path makes it.
"""

from __future__ import annotations

import json
import math
import re
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


#: what :func:`dumps` writes for a character PostgreSQL's json types cannot hold
REPLACEMENT = "\ufffd"
#: U+0000 and lone UTF-16 surrogates: valid in Python text, refused by PostgreSQL's ``json``/``jsonb``
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def dumps(value: Any) -> str:
    """The JSON text a database stores for ``value``: :func:`json_safe` (NaN and ±infinity become
    ``null``, numpy/torch values plain numbers and lists), serialised as standard JSON.

    A U+0000 character or a lone surrogate in a string or key — which no validated input carries, but
    an error message quoting foreign data might — is written as U+FFFD, since PostgreSQL refuses
    them in ``json``/``jsonb``; every other string is kept as is. Raises ``TypeError`` for values that
    are not JSON data (see :func:`json_safe`).
    """
    data = json_safe(value)
    text = json.dumps(data, allow_nan=False)
    if "\\u0000" in text or "\\ud" in text:  # only then walk the document again (rare)
        text = json.dumps(_storable(data), allow_nan=False)
    return text


def _storable(value: Any) -> Any:
    if isinstance(value, str):
        return _UNSTORABLE.sub(REPLACEMENT, value)
    if isinstance(value, dict):
        return {_storable(k): _storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_storable(v) for v in value]
    return value
