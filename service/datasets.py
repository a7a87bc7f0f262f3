"""Uploaded datasets: store the file, read it where a bomb cannot hurt the API, infer its schema.

The upload is streamed to ``TASKGROUPER_HOME/datasets/<id>/`` (never held whole in memory), then
read — with :func:`grouping.data.readers.read_table`, the reader a job uses — by
:class:`service.upload_parsing.UploadReader`: resource limits (rows, columns, decoded bytes) are
checked from the file's metadata before any data is decoded, and the read runs in a child process
with a memory cap and a timeout, so a decompression bomb costs the child, not the API (over a
limit: 413 naming the field and the limit). Every column is described (dtype, shape, missing and
distinct values, the task type it could serve) once, and the summary is stored with the row:
reading a dataset back never touches its file.

:func:`check_columns` then refuses, at job submission, a job the stored schema already rules out,
and :func:`delete_dataset` removes a dataset no queued or running job uses, with its stored file.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from grouping.data.features import MAX_CATEGORIES
from grouping.data.location import FORMATS
from grouping.data.targets import MAX_CLASSES, MAX_FLOAT_CLASSES
from grouping.errors import InputError
from service.db import transaction
from service.errors import ApiError
from service.locations import allowed_location
from service.models import Dataset, Job, new_id
from service.schemas import MAX_TEXT, text_problem
from service.upload_parsing import LimitExceeded, UploadReader, describe_column

__all__ = [
    "check_columns",
    "delete_dataset",
    "describe_column",
    "discard_upload",
    "register_location",
    "store_upload",
]

log = logging.getLogger(__name__)
_CHUNK = 1 << 20
#: job statuses that still need their dataset
ACTIVE_STATUSES = ("queued", "running")


def store_upload(
    stream: BinaryIO,
    filename: str,
    *,
    directory: Path,
    project: str,
    max_bytes: int,
    name: str | None = None,
    reader: UploadReader | None = None,
) -> Dataset:
    """Save ``stream`` and return the (unsaved) :class:`Dataset` row; ``InputError`` on ``file`` if bad
    (the file name or a column name is not acceptable text, the format is unknown or unreadable), a
    413 :class:`ApiError` on ``file`` over the upload size or a limit of ``reader`` (default limits
    without one; the body's ``resource`` names it — rows, columns, bytes, memory or seconds — and
    ``limit`` and ``found`` give the numbers).

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
        columns = _describe_file(path, fmt, filename, "file", reader)
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
        n_rows=_n_rows(columns),
        columns=columns,
    )


def discard_upload(row: Dataset) -> None:
    """Remove the folder :func:`store_upload` wrote for ``row`` (whose insert failed)."""
    shutil.rmtree(Path(row.path).parent, ignore_errors=True)


def register_location(
    location: str,
    *,
    roots: list[Path],
    project: str,
    name: str | None = None,
    reader: UploadReader | None = None,
) -> Dataset:
    """The (unsaved) :class:`Dataset` row of a file already on the server, inside one of ``roots``
    (see :func:`service.locations.allowed_location`); it is read in place, not copied, under the
    limits of ``reader`` (errors as :func:`store_upload`'s, on ``location``)."""
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
    columns = _describe_file(path, fmt, path.name, "location", reader)
    return Dataset(
        id=new_id(),
        project=project,
        name=name or path.name,
        format=fmt,
        path=str(path),
        size_bytes=path.stat().st_size,
        sha256=digest.hexdigest(),
        n_rows=_n_rows(columns),
        columns=columns,
    )


def _n_rows(columns: list[dict[str, Any]]) -> int:
    if not columns:
        raise InputError("dataset.source", "the table has no columns")
    return int(columns[0]["shape"][0])


def _describe_file(
    path: Path, fmt: str, shown: str, field: str, reader: UploadReader | None
) -> list[dict[str, Any]]:
    """Read the table in a limited child process and describe its columns; ``InputError`` on
    ``field``, or a 413 naming ``field`` over a limit (the reason naming the file as ``shown``,
    never its server path)."""
    try:
        columns = (reader or UploadReader()).describe(path, fmt)
    except InputError as exc:
        raise InputError(field, exc.reason.replace(str(path), shown)) from None
    except LimitExceeded as exc:
        reason = exc.reason.replace(str(path), shown)
        raise ApiError(413, f"{field}: {reason}", field=field, reason=reason, **exc.details()) from None
    if not columns:
        raise InputError(field, "the table has no columns")
    for i, col in enumerate(columns):
        reason = text_problem(col["name"]) or (
            f"is longer than {MAX_TEXT} characters" if len(col["name"]) > MAX_TEXT else None
        )
        if reason is not None:
            raise InputError(field, f"the name of column {i} {reason}")
    return columns


def _copy_limited(stream: BinaryIO, path: Path, max_bytes: int) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with path.open("wb") as out:
        while chunk := stream.read(_CHUNK):
            size += len(chunk)
            if size > max_bytes:
                raise ApiError(
                    413,
                    f"file: larger than the upload limit of {max_bytes} bytes",
                    field="file",
                    reason=f"larger than the upload limit of {max_bytes} bytes",
                    resource="upload_bytes",
                    limit=max_bytes,
                )
            digest.update(chunk)
            out.write(chunk)
    return size, digest.hexdigest()


def check_columns(
    dataset: Dataset, features: list[str] | None, tasks: list[Any] | None, split_column: str | None
) -> None:
    """Refuse, at submission, a job the uploaded ``dataset``'s schema (its described columns) already
    shows would fail in the worker: ``InputError`` naming the field (``tasks[i].column``,
    ``tasks[i].type``, ``features[i]``, ``features``, ``split.column``) and the reason.

    * every named column exists;
    * a target holds one value per row, has no missing values, and fits its type: ``binary`` at most
      2 distinct values, ``regression`` a numeric column, ``multiclass`` at most
      :data:`grouping.data.targets.MAX_CLASSES` distinct values and not a continuous float column
      (more than :data:`~grouping.data.targets.MAX_FLOAT_CLASSES` distinct values, not all whole
      numbers) — as the worker's target encoder decides (a constant target is left to the worker,
      whose error names it just as well);
    * a feature is not also a task's target, and is either numeric (boolean, integer or float)
      without missing values, or a text column the loader one-hot encodes: one value per row, with
      between 1 and :data:`grouping.data.features.MAX_CATEGORIES` distinct values (missing values —
      empty, ``None``, NaN — are allowed and set no indicator). Without ``features`` every column
      other than the targets and the split column is a feature, and is checked the same way.
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
    if task_type == "multiclass" and n_unique is not None:
        continuous = _kind(column) == "f" and column.get("whole_numbers") is False
        if continuous and n_unique > MAX_FLOAT_CLASSES:
            raise InputError(
                f"tasks[{i}].type",
                f"column {name!r} holds {n_unique} distinct non-integer numbers; it looks continuous, not "
                "like classes: declare it regression (or store class labels as integers or text)",
            )
        if n_unique > MAX_CLASSES:
            raise InputError(
                f"tasks[{i}].type",
                f"column {name!r} has {n_unique} distinct values; a multiclass task allows at most "
                f"{MAX_CLASSES} classes (declare a numeric column regression)",
            )


def _is_text(column: dict[str, Any]) -> bool:
    """Whether the job's loader one-hot encodes the described column (rows described before the
    ``categorical`` flag existed: a one-axis text or object column)."""
    if "categorical" in column:
        return bool(column["categorical"])
    return len(column["shape"]) == 1 and _kind(column) in "OUS"


def _check_feature(column: dict[str, Any], field: str, hint: str) -> None:
    name = column["name"]
    if _is_text(column):
        n_unique = column.get("n_unique")
        if n_unique == 0:
            raise InputError(
                field, f"text feature column {name!r} has no values (every row is missing){hint}"
            )
        if n_unique is not None and n_unique > MAX_CATEGORIES:
            raise InputError(
                field,
                f"text feature column {name!r} has {n_unique} distinct values; at most {MAX_CATEGORIES} "
                f"categories are one-hot encoded: leave the column out of the features or encode it as "
                f"numbers{hint}",
            )
        return
    if _kind(column) not in "biufO":  # an object column of numbers is converted by the loader
        raise InputError(
            field,
            f"column {name!r} ({column['dtype']}, shape {column['shape']}) is neither numeric nor a text "
            f"column that can be one-hot encoded{hint}",
        )
    if column.get("n_missing"):
        raise InputError(field, f"feature column {name!r} has {column['n_missing']} missing values{hint}")


def delete_dataset(
    session_factory: sessionmaker[Session], dataset_id: str, project: str, *, uploads: Path
) -> None:
    """Delete the project's dataset ``dataset_id`` and, for an upload (a file under ``uploads``), its
    stored folder; a file registered by location belongs to the server and is left in place.

    A 404 :class:`ApiError` (on ``dataset_id``) when the dataset does not exist or belongs to another
    project; a 409 naming the jobs when a queued or running job still uses it. Finished jobs
    (succeeded, failed, cancelled) keep their results and their spec, which names the dataset; their
    link to the row is cleared in the same transaction. The row is locked first (PostgreSQL), so a
    job submitted meanwhile either commits first (and the delete is refused) or finds the dataset
    gone; should a job still slip in, the database's foreign key refuses the delete with the same 409.
    The file is removed after the row's deletion commits."""
    try:
        with transaction(session_factory) as session:
            row = session.scalar(select(Dataset).where(Dataset.id == dataset_id).with_for_update())
            if row is None or row.project != project:
                raise ApiError(404, f"no dataset {dataset_id}", field="dataset_id")
            active = session.scalars(
                select(Job.id)
                .where(Job.dataset_id == dataset_id, Job.status.in_(ACTIVE_STATUSES))
                .order_by(Job.created_at)
                .limit(20)
            ).all()
            if active:
                raise _in_use(dataset_id, list(active))
            session.execute(update(Job).where(Job.dataset_id == dataset_id).values(dataset_id=None))
            path = Path(row.path)
            session.delete(row)
    except IntegrityError:
        raise _in_use(dataset_id, []) from None
    folder = path.parent
    try:
        inside = folder.resolve().parent == uploads.resolve()
    except OSError:
        inside = False
    if inside and folder.name == dataset_id:
        shutil.rmtree(folder, ignore_errors=True)
        if folder.exists():
            log.warning("dataset %s deleted, but its folder %s could not be removed", dataset_id, folder)


def _in_use(dataset_id: str, jobs: list[str]) -> ApiError:
    named = f": {', '.join(jobs)}" if jobs else ""
    return ApiError(
        409,
        f"dataset {dataset_id} is used by a queued or running job{named}; cancel it or wait for it to finish",
        field="dataset_id",
        jobs=jobs,
    )
