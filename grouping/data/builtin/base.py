"""What a built-in dataset provides: its table, default features and tasks, and known facts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from grouping.data.spec import TaskSpec


@dataclass(frozen=True)
class RawData:
    """An unvalidated table with its defaults; image data stores one array of shape rows × C × H × W."""

    table: dict[str, np.ndarray]
    features: list[str]
    tasks: list[TaskSpec]
    input_kind: Literal["tabular", "image"]
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BuiltinDataset:
    """A dataset generated or bundled locally (no download). ``build(options)`` validates its options
    and returns the data; ``default_epochs`` is a training length that suits it."""

    name: str
    description: str
    build: Callable[[dict[str, Any]], RawData]
    default_epochs: int
