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
from service.schemas import MAX_TEXT, text_problem

#: at most this many distinct values make a column a candidate multiclass target
MAX_CLASSES = 100
_CHUNK = 1 << 20


def store_upload(
    stream: BinaryIO, filename: str, *, directory: Path, project: str, max_bytes: int, name: str | None = None
) -> Dataset:
    """Save ``stream`` and return the (unsaved) :class:`Dataset` row; ``InputError`` on ``file`` if bad
    (the file name or a column name is not acceptable text, the format is unknown or unreadable).

    Whatever fails, the file is removed before the error propagates; once the row is returned, the
    caller inserts it, or calls :func:`discard_upload` if it cannot."""
    reason = text_problem(filename or "")
    if reason is not None:
        raise InputError("file", f"the file name {reason}")
    if name is None and len(Path(filename or "").name) > MAX_TEXT:
        raise InputError("file", f"the file name is longer than {MAX_TEXT} characters; give a shorter name")
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


def discard_upload(row: Dataset) -> None:
    """Remove the folder :func:`store_upload` wrote for ``row`` (whose insert failed)."""
    shutil.rmtree(Path(row.path).parent, ignore_errors=True)


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
    for i, col in enumerate(table):
        reason = text_problem(str(col)) or (
            f"is longer than {MAX_TEXT} characters" if len(str(col)) > MAX_TEXT else None
        )
        if reason is not None:
            raise InputError(field, f"the name of column {i} {reason}")
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
    """Refuse, at submission, a job the uploaded ``dataset``'s schema (its described columns) already
    shows would fail in the worker: ``InputError`` naming the field (``tasks[i].column``,
    ``tasks[i].type``, ``features[i]``, ``features``, ``split.column``) and the reason.

    * every named column exists;
    * a target holds one value per row, has no missing values, and fits its type: ``binary`` at most
      2 distinct values, ``regression`` a numeric column (a constant target is left to the worker,
      whose error names it just as well);
    * a feature is not also a task's target, and is numeric (boolean, integer or float; a text
      column cannot be a feature) without missing values. Without ``features`` every column other
      than the targets and the split column is a feature, and is checked the same way.
    """
    if not tasks:
        raise InputError("tasks", "an uploaded dataset needs its tasks listed (name, column, type)")
    columns = {col["name"]: col for col in dataset.columns}
    for i, task in enumerate(tasks):
        if task.column not in columns:
            raise InputError(f"tasks[{i}].column", f"dataset {dataset.id} has no column {task.column!r}")
        _check_target(columns[task.column], task.type, i)
    if split_column is not None and split_column not in columns:
        raise InputError("split.column", f"dataset {dataset.id} has no column {split_column!r}")
    targets = {task.column: task.name for task in tasks}
    if features is not None:
        for i, feature in enumerate(features):
            if feature not in columns:
                raise InputError(f"features[{i}]", f"dataset {dataset.id} has no column {feature!r}")
            if feature in targets:
                raise InputError(
                    f"features[{i}]", f"column {feature!r} is the target of task {targets[feature]!r}"
                )
            _check_feature(columns[feature], f"features[{i}]", "")
        return
    implicit = [name for name in columns if name not in targets and name != split_column]
    if not implicit:
        raise InputError(
            "features", "no columns are left for features after the targets and the split column"
        )
    hint = " (without features, every column but the targets and the split column is one: list them)"
    for name in implicit:
        _check_feature(columns[name], "features", hint)


def _kind(column: dict[str, Any]) -> str:
    """The numpy kind of a described column (``"O"`` when its dtype is not a numpy one)."""
    try:
        return np.dtype(column["dtype"]).kind
    except TypeError:
        return "O"


def _check_target(column: dict[str, Any], task_type: str, i: int) -> None:
    name, n_unique = column["name"], column.get("n_unique")
    if len(column["shape"]) != 1:
        raise InputError(
            f"tasks[{i}].column",
            f"column {name!r} has shape {column['shape']}; a target needs one value per row",
        )
    if column.get("n_missing"):
        raise InputError(f"tasks[{i}].column", f"column {name!r} has {column['n_missing']} missing values")
    if task_type == "binary" and n_unique is not None and n_unique > 2:
        raise InputError(
            f"tasks[{i}].type",
            f"column {name!r} has {n_unique} distinct values; a binary task needs exactly 2 "
            "(declare it multiclass)",
        )
    if task_type == "regression" and _kind(column) not in "biuf":
        raise InputError(
            f"tasks[{i}].type", f"column {name!r} is not numeric ({column['dtype']}); it cannot be regressed"
        )


def _check_feature(column: dict[str, Any], field: str, hint: str) -> None:
    name = column["name"]
    if _kind(column) not in "biuf":
        raise InputError(
            field,
            f"column {name!r} is not numeric ({column['dtype']}); a text column cannot be a feature{hint}",
        )
    if column.get("n_missing"):
        raise InputError(field, f"feature column {name!r} has {column['n_missing']} missing values{hint}")
