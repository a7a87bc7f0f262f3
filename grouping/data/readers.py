"""Read a Parquet, CSV or NPZ file into a ``Table``: column (or array) name -> numpy array, one row
per example."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from grouping.errors import InputError

Table = dict[str, np.ndarray]


def read_table(path: Path, fmt: str) -> Table:
    """Read ``path`` (format ``parquet``, ``csv`` or ``npz``); every array has the same first dimension."""
    try:
        if fmt == "npz":
            return _read_npz(path)
        frame = pd.read_parquet(path) if fmt == "parquet" else pd.read_csv(path)
    except InputError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, pd.errors.ParserError) as exc:
        raise InputError("dataset.source", f"cannot read {fmt} file {str(path)!r}: {exc}") from None
    if len(frame) == 0:
        raise InputError("dataset.source", f"{str(path)!r} has no rows")
    return {str(name): frame[name].to_numpy() for name in frame.columns}


def _read_npz(path: Path) -> Table:
    with np.load(path, allow_pickle=False) as archive:
        table = {name: archive[name] for name in archive.files}
    if not table:
        raise InputError("dataset.source", f"{str(path)!r} holds no arrays")
    lengths = {name: (arr.shape[0] if arr.ndim else None) for name, arr in table.items()}
    scalar = [name for name, n in lengths.items() if n is None]
    if scalar:
        raise InputError(
            "dataset.source", f"array {scalar[0]!r} in {str(path)!r} is a scalar, not one value per row"
        )
    if len(set(lengths.values())) > 1:
        raise InputError(
            "dataset.source", f"arrays in {str(path)!r} disagree on the number of rows: {lengths}"
        )
    return table
