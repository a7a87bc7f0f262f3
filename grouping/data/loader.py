"""``load_dataset``: resolve the source, validate columns and targets, split, standardise, tensorise."""

from __future__ import annotations

import numpy as np
import torch

from grouping.data.builtin import BUILTIN_DATASETS, RawData
from grouping.data.dataset import Dataset, Split
from grouping.data.location import resolve_local
from grouping.data.readers import read_table
from grouping.data.spec import DatasetSpec, TaskSpec
from grouping.data.splits import SPLIT_NAMES, split_rows
from grouping.data.targets import EncodedTarget, encode_target
from grouping.errors import InputError


def load_dataset(spec: DatasetSpec) -> Dataset:
    """Load and validate ``spec``. Inputs are standardised with training-split statistics (per
    feature for tabular data, one scalar for images). Raises ``InputError`` naming the field or column
    and the cause."""
    builtin = BUILTIN_DATASETS.get(spec.source)
    if builtin is not None:
        raw = builtin.build(spec.options)
        default_epochs: int | None = builtin.default_epochs
    else:
        if spec.options:
            raise InputError("dataset.options", "options apply to built-in datasets only")
        path, fmt = resolve_local(spec.source)
        raw = RawData(read_table(path, fmt), [], [], "tabular")
        default_epochs = None
    tasks = spec.tasks if spec.tasks is not None else raw.tasks
    if not tasks:
        raise InputError("dataset.tasks", "a file dataset needs its tasks listed (name, column, type)")
    table = raw.table
    n_rows = len(next(iter(table.values())))
    split_column = None
    if spec.split.column is not None:
        split_column = _column(table, spec.split.column, "dataset.split.column")
    rows = split_rows(spec.split, n_rows, split_column)
    encodings = {
        task.name: encode_target(
            task, _column(table, task.column, f"dataset.tasks.{task.name}.column"), rows["train"]
        )
        for task in tasks
    }
    feature_names = _feature_names(spec, raw, tasks)
    x, input_kind = _features(table, feature_names, raw.input_kind)
    x = _standardise(x, rows["train"], input_kind)
    splits = {name: _split(x, encodings, rows[name]) for name in SPLIT_NAMES}
    return Dataset(
        name=spec.source,
        tasks=list(tasks),
        input_kind=input_kind,
        encodings=encodings,
        feature_names=feature_names,
        info=dict(raw.info),
        default_epochs=default_epochs,
        **splits,
    )


def _column(table: dict[str, np.ndarray], name: str | None, field: str) -> np.ndarray:
    if name not in table:
        known = ", ".join(list(table)[:20]) + (" …" if len(table) > 20 else "")
        raise InputError(field, f"column {name!r} not found (columns: {known})")
    return table[name]


def _feature_names(spec: DatasetSpec, raw: RawData, tasks: list[TaskSpec]) -> list[str]:
    targets = {task.column for task in tasks}
    if spec.features is not None:
        names = spec.features
        if not names:
            raise InputError("dataset.features", "list at least one feature column")
        both = [name for name in names if name in targets]
        if both:
            raise InputError("dataset.features", f"column {both[0]!r} is both a feature and a task target")
        if len(set(names)) != len(names):
            raise InputError("dataset.features", "a feature column is listed twice")
        return list(names)
    if raw.features:
        return list(raw.features)
    names = [name for name in raw.table if name not in targets and name != spec.split.column]
    if not names:
        raise InputError("dataset.features", "no columns are left for features after the targets")
    return names


def _features(table: dict[str, np.ndarray], names: list[str], kind: str) -> tuple[np.ndarray, str]:
    arrays = [_column(table, name, "dataset.features") for name in names]
    if len(arrays) == 1 and arrays[0].ndim >= 3:
        x = arrays[0]
        if x.ndim == 3:
            x = x[:, None]
        if x.ndim != 4:
            raise InputError("dataset.features", f"image array {names[0]!r} must be rows×H×W or rows×C×H×W")
        kind = "image"
    elif any(arr.ndim >= 3 for arr in arrays):
        raise InputError("dataset.features", "an image array must be the only feature")
    else:
        kind = "tabular"
        x = np.column_stack([arr if arr.ndim == 2 else arr[:, None] for arr in arrays])
    try:
        x = x.astype(np.float32)
    except (TypeError, ValueError):
        bad = next(
            n
            for n, a in zip(names, arrays, strict=True)
            if not np.issubdtype(a.dtype, np.number) and a.dtype != bool
        )
        raise InputError("dataset.features", f"feature column {bad!r} is not numeric") from None
    if not np.isfinite(x).all():
        where = np.argwhere(~np.isfinite(x.reshape(len(x), -1)))[0]
        col = names[0] if kind == "image" or len(names) != x.shape[1] else names[where[1]]
        raise InputError(
            "dataset.features", f"feature {col!r} has NaN or infinite values (first at row {where[0]})"
        )
    return x, kind


def _standardise(x: np.ndarray, train: np.ndarray, kind: str) -> np.ndarray:
    if kind == "image":
        mean, std = x[train].mean(), x[train].std()
    else:
        mean, std = x[train].mean(axis=0), x[train].std(axis=0)
    return ((x - mean) / np.where(std > 0, std, 1.0)).astype(np.float32)


def _split(x: np.ndarray, encodings: dict[str, EncodedTarget], rows: np.ndarray) -> Split:
    return Split(
        torch.from_numpy(x[rows]),
        {name: torch.from_numpy(enc.values[rows]) for name, enc in encodings.items()},
    )
