"""Explicit candidate networks with measured per-task values (Standley et al. 2020, §3 and §3.2).

A candidate network ``n`` trains on a set of tasks, has an inference cost ``c_n`` and, for every task it
can serve, a loss ``L(n, t)`` (objective ``min_loss``, lower is better) or a score (``max_score``, higher
is better). A network may train on tasks it does not serve: such tasks are simply absent from its
``loss``/``score`` map.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from grouping.errors import InputError

#: a JSON number (no booleans, no strings), finite
Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
#: default inference cost of each network size, in units of one full-size network (Standley §3.1)
SIZE_COSTS: dict[str, float] = {"full": 1.0, "half": 0.5}


class CandidateNetwork(BaseModel):
    """One explicit candidate network; ``cost`` and ``size`` default from each other (full 1.0, half 0.5)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tasks: list[str] = Field(min_length=1)
    cost: Number = Field(ge=0)
    size: Literal["full", "half"]
    loss: dict[str, Number] | None = None
    score: dict[str, Number] | None = None
    name: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _size_and_cost_defaults(cls, data: Any) -> Any:
        """A missing cost comes from the size; a missing size is ``half`` for costs below 1."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if data.get("cost") is None:  # an unknown size is reported by the size field itself
            size = data.get("size")
            data["cost"] = SIZE_COSTS.get(size if isinstance(size, str) else "full", SIZE_COSTS["full"])
        cost = data.get("cost")
        if data.get("size") is None and isinstance(cost, int | float) and not isinstance(cost, bool):
            data["size"] = "half" if cost < SIZE_COSTS["full"] else "full"
        return data

    @model_validator(mode="after")
    def _consistency(self) -> CandidateNetwork:
        if len(set(self.tasks)) != len(self.tasks):
            raise InputError("tasks", "a task is listed twice")
        if self.loss is not None and self.score is not None:
            raise InputError("loss", "give either 'loss' or 'score', not both")
        values = self.values
        if not values:
            raise InputError("loss", "every network needs a non-empty 'loss' (or 'score') map")
        stray = [t for t in values if t not in self.tasks]
        if stray:
            raise InputError("loss", f"task {stray[0]!r} has a value but is not in this network's 'tasks'")
        return self

    @property
    def values(self) -> dict[str, float]:
        """The per-task loss or score map, whichever was given."""
        return self.loss if self.loss is not None else (self.score or {})

    @property
    def key(self) -> tuple[frozenset[str], str]:
        """Identity of a network: the set of tasks it trains on and its size."""
        return frozenset(self.tasks), str(self.size)


class ExplicitProblem(BaseModel):
    """Tasks plus explicit candidate networks; objective ``min_loss`` (Standley) or ``max_score``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tasks: list[str] = Field(min_length=1)
    objective: Literal["min_loss", "max_score"] = "min_loss"
    networks: list[CandidateNetwork] = Field(min_length=1)

    @model_validator(mode="after")
    def _cross_checks(self) -> ExplicitProblem:
        if len(set(self.tasks)) != len(self.tasks):
            raise InputError("tasks", "a task is listed twice")
        if any(not t for t in self.tasks):
            raise InputError("tasks", "task names must be non-empty")
        known = set(self.tasks)
        value_key = "loss" if self.objective == "min_loss" else "score"
        seen: dict[tuple[frozenset[str], str], int] = {}
        for i, net in enumerate(self.networks):
            unknown = [t for t in net.tasks if t not in known]
            if unknown:
                raise InputError(f"networks[{i}].tasks", f"unknown task {unknown[0]!r}")
            if getattr(net, value_key) is None:
                raise InputError(f"networks[{i}].{value_key}",
                                 f"objective {self.objective!r} needs a {value_key!r} map on every network")
            if net.key in seen:
                raise InputError(f"networks[{i}]", f"duplicate of networks[{seen[net.key]}] "
                                 f"(same tasks {sorted(net.tasks)} and size {net.size!r})")
            seen[net.key] = i
        served = {t for net in self.networks for t in net.values}
        missing = [t for t in self.tasks if t not in served]
        if missing:
            raise InputError("networks", f"task {missing[0]!r} is not served by any network")
        return self

    def to_dict(self) -> dict:
        """The explicit JSON form (``parse_problem`` reads it back)."""
        return self.model_dump(mode="json", exclude_none=True)
