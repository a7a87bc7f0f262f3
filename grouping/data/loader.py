"""``load_dataset``: resolve the source, validate columns and targets, split, standardise, tensorise."""

from __future__ import annotations

import numpy as np
import torch

from grouping.data.builtin import BUILTIN_DATASETS, RawData
from grouping.data.dataset import Dataset, Split
from grouping.data.features import encode_categorical, is_categorical
from grouping.data.location import resolve_local
from grouping.data.readers import read_table
from grouping.data.spec import DatasetSpec, TaskSpec
from grouping.data.splits import SPLIT_NAMES, split_rows
from grouping.data.targets import EncodedTarget, encode_target
from grouping.errors import InputError


def load_dataset(spec: DatasetSpec) -> Dataset:
    """Load and validate ``spec``. Text feature columns are one-hot encoded
    (:mod:`grouping.data.features`; ``Dataset.feature_names`` then lists one ``column=value`` per
    category). Inputs are standardised with training-split statistics (per feature for tabular data,
    one scalar for images). Raises ``InputError`` naming the field or column and the cause."""
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
    x, input_kind, feature_names = _features(table, _feature_names(spec, raw, tasks), raw.input_kind)
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


def _features(
    table: dict[str, np.ndarray], names: list[str], kind: str
) -> tuple[np.ndarray, str, list[str]]:
    """The input matrix, its kind and the feature names: a numeric column or array keeps its name, a
    text column is one-hot encoded (:mod:`grouping.data.features`) into one ``column=value`` per
    category; one array of rank ≥ 3 is an image stack."""
    arrays = [_column(table, name, "dataset.features") for name in names]
    if len(arrays) == 1 and arrays[0].ndim >= 3:
        x = arrays[0]
        if x.ndim == 3:
            x = x[:, None]
        if x.ndim != 4:
            raise InputError("dataset.features", f"image array {names[0]!r} must be rows×H×W or rows×C×H×W")
        return _finite(_numeric(x, names[0]), list(names), "image"), "image", list(names)
    if any(arr.ndim >= 3 for arr in arrays):
        raise InputError("dataset.features", "an image array must be the only feature")
    blocks, owners, out_names = [], [], []
    for name, arr in zip(names, arrays, strict=True):
        if is_categorical(arr):
            block, indicators = encode_categorical(name, arr)
            out_names.extend(indicators)
        else:
            block = _numeric(arr if arr.ndim == 2 else arr[:, None], name)
            out_names.append(name)
        blocks.append(block)
        owners.extend([name] * block.shape[1])
    x = np.concatenate(blocks, axis=1)
    return _finite(x, owners, "tabular"), "tabular", out_names


def _numeric(values: np.ndarray, name: str) -> np.ndarray:
    try:
        return values.astype(np.float32)
    except (TypeError, ValueError):
        raise InputError(
            "dataset.features",
            f"feature column {name!r} is not numeric and is not a text column that can be one-hot encoded "
            f"(dtype {values.dtype}, shape {values.shape})",
        ) from None


def _finite(x: np.ndarray, owners: list[str], kind: str) -> np.ndarray:
    """``x`` if every value is finite; ``owners[j]`` names the feature of column ``j`` (tabular)."""
    if not np.isfinite(x).all():
        where = np.argwhere(~np.isfinite(x.reshape(len(x), -1)))[0]
        col = owners[0] if kind == "image" else owners[where[1]]
        raise InputError(
            "dataset.features", f"feature {col!r} has NaN or infinite values (first at row {where[0]})"
        )
    return x


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
