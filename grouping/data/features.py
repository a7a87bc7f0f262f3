"""Turn feature columns into numbers: numeric columns as they are, text (categorical) columns one-hot.

A one-dimensional column whose values are text (numpy ``U``/``S``, or an ``object`` column as pandas
reads text from CSV and Parquet) is *categorical*: it becomes one indicator column per distinct value,
named ``column=value``. Categories are the distinct values over all rows, compared as text and sorted
(so the encoding depends only on the data, never on row order, split or seed); a missing value
(``None``, NaN, an empty CSV cell) sets none of the indicators. A column with more than
:data:`MAX_CATEGORIES` distinct values is refused with an ``InputError`` naming it (an identifier or
free text column would otherwise add thousands of inputs).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from grouping.errors import InputError

#: most distinct values a text feature column may have to be one-hot encoded
MAX_CATEGORIES = 64


def is_categorical(values: np.ndarray) -> bool:
    """Whether ``values`` (one column, one value per row) is a text column to one-hot encode:
    one-dimensional with a text dtype, or ``object`` dtype holding anything other than numbers and
    booleans (missing values aside)."""
    if values.ndim != 1:
        return False
    if values.dtype.kind in "US":
        return True
    if values.dtype.kind != "O":
        return False
    present = values[~pd.isna(values)]
    return any(not isinstance(v, int | float | bool | np.number | np.bool_) for v in present)


def encode_categorical(
    name: str, values: np.ndarray, field: str = "dataset.features"
) -> tuple[np.ndarray, list[str]]:
    """One-hot encode the categorical column ``name``: a ``rows × k`` float32 matrix of indicators (one
    per category, sorted as text; a missing value is a row of zeros) and the ``k`` column names
    ``name=category``. Raises ``InputError`` on ``field`` when the column has more than
    :data:`MAX_CATEGORIES` categories, or none."""
    missing = _missing(values)
    text = _text(values)
    cats = sorted(set(text[~missing].tolist()))
    if not cats:
        raise InputError(field, f"text feature column {name!r} has no values (every row is missing)")
    if len(cats) > MAX_CATEGORIES:
        examples = ", ".join(repr(c) for c in cats[:3])
        raise InputError(
            field,
            f"text feature column {name!r} has {len(cats)} distinct values (e.g. {examples}); at most "
            f"{MAX_CATEGORIES} categories are one-hot encoded: leave the column out of the features or "
            "encode it as numbers",
        )
    index = {c: k for k, c in enumerate(cats)}
    codes = np.array([index[t] for t in text[~missing]], dtype=np.int64)
    out = np.zeros((len(values), len(cats)), dtype=np.float32)
    out[np.flatnonzero(~missing), codes] = 1.0
    return out, [f"{name}={c}" for c in cats]


def _missing(values: np.ndarray) -> np.ndarray:
    missing = np.asarray(pd.isna(values), dtype=bool)
    if values.dtype.kind in "US":
        missing = missing | (np.char.str_len(values.astype(str)) == 0)
    elif values.dtype.kind == "O":
        missing = missing | np.array([isinstance(v, str | bytes) and not v for v in values], dtype=bool)
    return missing


def _text(values: np.ndarray) -> np.ndarray:
    """Every value as a Python ``str`` (bytes decoded as UTF-8, undecodable bytes escaped)."""
    def one(v: object) -> str:
        if isinstance(v, bytes | np.bytes_):
            return bytes(v).decode("utf-8", errors="backslashreplace")
        return str(v)

    return np.array([one(v) for v in values.tolist()], dtype=object)
