"""A loaded, validated dataset: tensors per split, the tasks and their encodings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from grouping.data.spec import TaskSpec
from grouping.data.targets import EncodedTarget


@dataclass
class Split:
    """One split: inputs ``x`` (rows first) and each task's encoded targets ``y[name]``."""

    x: torch.Tensor
    y: dict[str, torch.Tensor]

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def to(self, device: torch.device | str) -> Split:
        """This split on ``device``."""
        return Split(self.x.to(device), {name: t.to(device) for name, t in self.y.items()})


@dataclass
class Dataset:
    """Everything training needs. ``input_kind`` is ``tabular`` (x: rows × features) or ``image``
    (x: rows × channels × height × width); ``info`` carries facts about the data such as the planted
    structure of ``synthetic`` (``clusters``, ``conflicting_pairs``)."""

    name: str
    tasks: list[TaskSpec]
    input_kind: Literal["tabular", "image"]
    train: Split
    val: Split
    test: Split
    encodings: dict[str, EncodedTarget]
    feature_names: list[str]
    info: dict[str, Any] = field(default_factory=dict)
    default_epochs: int | None = None

    @property
    def task_names(self) -> list[str]:
        """The task names, in order."""
        return [task.name for task in self.tasks]

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one example's input."""
        return tuple(self.train.x.shape[1:])

    @property
    def output_dims(self) -> dict[str, int]:
        """Each task's head output size (1 for binary and regression, the class count for multiclass)."""
        return {name: enc.output_dim for name, enc in self.encodings.items()}

    def task(self, name: str) -> TaskSpec:
        """The spec of task ``name``."""
        for task in self.tasks:
            if task.name == name:
                return task
        raise KeyError(name)

    def describe(self) -> dict[str, Any]:
        """A JSON-safe summary (sizes, tasks, kind) for run metadata."""
        return {
            "name": self.name,
            "input_kind": self.input_kind,
            "input_shape": list(self.input_shape),
            "rows": {"train": len(self.train), "val": len(self.val), "test": len(self.test)},
            "tasks": [task.model_dump() for task in self.tasks],
        }
