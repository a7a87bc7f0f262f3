"""What the user asks for: the dataset location, its feature columns, its tasks and the split (pydantic)."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

TaskType = Literal["binary", "multiclass", "regression"]

#: the losses each task type accepts; the first one is the default
LOSSES_BY_TYPE: dict[str, tuple[str, ...]] = {
    "binary": ("bce",),
    "multiclass": ("cross_entropy",),
    "regression": ("mse", "l1"),
}


class TaskSpec(BaseModel):
    """One prediction task: a target column, its type, its loss and its weight in the total loss.

    ``column`` defaults to ``name``; ``loss`` defaults per type (``bce`` for binary,
    ``cross_entropy`` for multiclass, ``mse`` for regression; ``l1`` is the other regression loss).
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    column: str | None = None
    type: TaskType
    loss: str | None = None
    weight: float = Field(default=1.0, gt=0.0)

    @model_validator(mode="after")
    def _fill_defaults(self) -> TaskSpec:
        if self.column is None:
            self.column = self.name
        allowed = LOSSES_BY_TYPE[self.type]
        if self.loss is None:
            self.loss = allowed[0]
        elif self.loss not in allowed:
            raise ValueError(
                f"loss {self.loss!r} does not fit a {self.type} task (use one of {list(allowed)})"
            )
        if not math.isfinite(self.weight):
            raise ValueError("weight must be finite")
        return self


class SplitSpec(BaseModel):
    """Train/validation/test split: by a column holding ``train``/``val``/``test`` (``validation`` is
    accepted for ``val``), or else at random by ``fractions`` with ``seed``."""

    model_config = ConfigDict(extra="forbid")

    column: str | None = None
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    seed: int = 0

    @field_validator("fractions")
    @classmethod
    def _fractions_sum_to_one(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(not (0.0 < f < 1.0) for f in value):
            raise ValueError("each of the train, val and test fractions must lie strictly between 0 and 1")
        if abs(sum(value) - 1.0) > 1e-6:
            raise ValueError(f"the train, val and test fractions must sum to 1 (they sum to {sum(value):g})")
        return value


class DatasetSpec(BaseModel):
    """A dataset: ``source`` is a built-in name (see ``BUILTIN_DATASETS``) or the location of a
    Parquet, CSV or NPZ file (a local path or ``file://`` URI; other URI schemes are refused for now).

    ``features`` lists the input columns (NPZ: array names; one array of rank ≥ 3 is an image stack);
    ``None`` takes every column that is not a target or the split column. ``tasks`` ``None`` means the
    built-in dataset's default tasks (a file needs them listed). ``options`` parameterise built-ins
    (e.g. ``{"n_samples": 2000}`` for ``synthetic``).
    """

    model_config = ConfigDict(extra="forbid")

    source: str = Field(min_length=1)
    features: list[str] | None = None
    tasks: list[TaskSpec] | None = None
    split: SplitSpec = SplitSpec()
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("tasks")
    @classmethod
    def _tasks_unique(cls, value: list[TaskSpec] | None) -> list[TaskSpec] | None:
        if value is None:
            return value
        if not value:
            raise ValueError("list at least one task")
        seen: set[str] = set()
        for task in value:
            if task.name in seen:
                raise ValueError(f"task {task.name!r} is listed twice")
            seen.add(task.name)
        return value


def validated(model: type[BaseModel], data: Any, field: str) -> Any:
    """Validate ``data`` as ``model``, turning the first pydantic error into an ``InputError`` that
    names the offending field (prefixed by ``field``) and the reason."""
    from pydantic import ValidationError

    from grouping.errors import InputError

    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join([field, *(str(part) for part in first["loc"])])
        reason = first["msg"].removeprefix("Value error, ")
        value = first.get("input")
        if isinstance(value, float) and not math.isfinite(value):
            # pydantic compares NaN with the bounds ("should be <= 10"): say what is wrong
            reason = f"must be {_finite_number(model, first['loc'])}, got {value}"
        raise InputError(where, reason) from None


def _finite_number(model: type[BaseModel], loc: tuple[Any, ...]) -> str:
    """``"a finite positive number <= 10"``: the bounds of the top-level field ``loc[0]`` of ``model``
    (just ``"a finite number"`` for a nested or unbounded field)."""
    info = model.model_fields.get(str(loc[0])) if len(loc) == 1 else None
    bounds: dict[str, float] = {}
    for item in info.metadata if info is not None else []:
        for name in ("gt", "ge", "lt", "le"):
            if getattr(item, name, None) is not None:
                bounds[name] = getattr(item, name)
    words = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}
    adjective = ""
    if bounds.get("gt") == 0:
        adjective, bounds = "positive ", {k: v for k, v in bounds.items() if k != "gt"}
    elif bounds.get("ge") == 0:
        adjective, bounds = "non-negative ", {k: v for k, v in bounds.items() if k != "ge"}
    limits = " and ".join(f"{words[k]} {v:g}" for k, v in bounds.items())
    return f"a finite {adjective}number" + (f" {limits}" if limits else "")
