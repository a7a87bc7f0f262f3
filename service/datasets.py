"""Uploaded datasets: store the file, read it with the library's reader, infer its schema.

The upload is streamed to ``TASKGROUPER_HOME/datasets/<id>/`` (never held whole in memory),
read with :func:`grouping.data.readers.read_table` — the same reader a job uses — and described
column by column: dtype, shape, missing values, distinct values and the task type it could serve.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa
from pyarrow import csv as pyarrow_csv

from grouping.data.location import FORMATS
from grouping.data.readers import read_table
from grouping.errors import InputError
from service.errors import ApiError
from service.locations import allowed_location
from service.models import Dataset, new_id

#: at most this many distinct values make a column a candidate multiclass target
MAX_CLASSES = 100
_CHUNK = 1 << 20


def store_upload(
    stream: BinaryIO, filename: str, *, directory: Path, project: str, max_bytes: int, name: str | None = None
) -> Dataset:
    """Save ``stream`` and return the (unsaved) :class:`Dataset` row; ``InputError`` on ``file`` if bad."""
    suffix = Path(filename or "").suffix.lower()
    fmt = FORMATS.get(suffix)
    if fmt is None:
        raise InputError("file", f"{filename!r} is not a .parquet, .csv or .npz file")
    dataset_id = new_id()
    folder = directory / dataset_id
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"data{suffix}"
    try:
        size, digest = _copy_limited(stream, path, max_bytes)
        if size == 0:
            raise InputError("file", "the upload is empty")
        columns = _describe_file(path, fmt, filename, "file")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return Dataset(
        id=dataset_id,
        project=project,
        name=name or Path(filename).name,
        format=fmt,
        path=str(path),
        size_bytes=size,
        sha256=digest,
        n_rows=int(columns[0]["shape"][0]),
        columns=columns,
    )


def register_location(location: str, *, roots: list[Path], project: str, name: str | None = None) -> Dataset:
    """The (unsaved) :class:`Dataset` row of a file already on the server, inside one of ``roots``
    (see :func:`service.locations.allowed_location`); it is read in place, not copied."""
    path = allowed_location(location, roots)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError("location", f"{path.name!r} is not a .parquet, .csv or .npz file")
    if not path.is_file():
        raise InputError("location", "no such file")
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    columns = _describe_file(path, fmt, path.name, "location")
    return Dataset(
        id=new_id(),
        project=project,
        name=name or path.name,
        format=fmt,
        path=str(path),
        size_bytes=path.stat().st_size,
        sha256=digest.hexdigest(),
        n_rows=int(columns[0]["shape"][0]),
        columns=columns,
    )


def _describe_file(path: Path, fmt: str, shown: str, field: str) -> list[dict[str, Any]]:
    """Read the table with the job's reader and describe its columns; ``InputError`` on ``field``
    (the reason naming the file as ``shown``, never its server path)."""
    try:
        if fmt == "csv":
            _check_rectangular(path)
        table = read_table(path, fmt)
    except InputError as exc:
        raise InputError(field, exc.reason.replace(str(path), shown)) from None
    return [describe_column(col, values) for col, values in table.items()]


def _check_rectangular(path: Path) -> None:
    """Refuse a CSV whose rows disagree with its header on the number of fields (pandas would guess)."""
    try:
        pyarrow_csv.read_csv(path)
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise InputError("dataset.source", f"not a valid CSV table: {exc}") from None


def _copy_limited(stream: BinaryIO, path: Path, max_bytes: int) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with path.open("wb") as out:
        while chunk := stream.read(_CHUNK):
            size += len(chunk)
            if size > max_bytes:
                raise ApiError(413, f"file: larger than the upload limit of {max_bytes} bytes", field="file")
            digest.update(chunk)
            out.write(chunk)
    return size, digest.hexdigest()


def describe_column(name: str, values: np.ndarray) -> dict[str, Any]:
    """Schema of one column: dtype, shape, missing and distinct counts, and a suggested task type.

    Suggestion: 2 distinct values → ``binary``; an integer, boolean or text column with at most
    :data:`MAX_CLASSES` distinct values → ``multiclass``; other numeric columns → ``regression``;
    multi-axis arrays (features, images) → none.
    """
    info: dict[str, Any] = {
        "name": name,
        "dtype": str(values.dtype),
        "shape": list(values.shape),
        "n_missing": 0,
        "n_unique": None,
        "suggested_type": None,
    }
    if values.ndim != 1:
        return info
    kind = values.dtype.kind
    if kind == "f":
        missing = ~np.isfinite(values)
        info["n_missing"] = int(missing.sum())
        present = values[~missing]
    elif kind == "O":
        missing = np.array([v is None or (isinstance(v, float) and v != v) for v in values], dtype=bool)
        info["n_missing"] = int(missing.sum())
        present = values[~missing].astype(str)
    else:
        present = values
    if kind not in "biufOUS":
        return info
    n_unique = int(len(np.unique(present)))
    info["n_unique"] = n_unique
    if n_unique == 2:
        info["suggested_type"] = "binary"
    elif kind in "buiOUS" and 2 < n_unique <= MAX_CLASSES:
        info["suggested_type"] = "multiclass"
    elif kind in "iuf" and n_unique > 2:
        info["suggested_type"] = "regression"
    return info


def check_columns(
    dataset: Dataset, features: list[str] | None, tasks: list[Any] | None, split_column: str | None
) -> None:
    """Refuse a job naming a column the uploaded ``dataset`` does not have (``InputError`` naming it)."""
    if not tasks:
        raise InputError("tasks", "an uploaded dataset needs its tasks listed (name, column, type)")
    names = {col["name"] for col in dataset.columns}
    for i, task in enumerate(tasks):
        if task.column not in names:
            raise InputError(f"tasks[{i}].column", f"dataset {dataset.id} has no column {task.column!r}")
    for i, feature in enumerate(features or []):
        if feature not in names:
            raise InputError(f"features[{i}]", f"dataset {dataset.id} has no column {feature!r}")
    if split_column is not None and split_column not in names:
        raise InputError("split.column", f"dataset {dataset.id} has no column {split_column!r}")
