"""Explicit candidate networks with measured per-task values (Standley et al. 2020, §3 and §3.2).

A candidate network ``n`` trains on a set of tasks, has an inference cost ``c_n`` and, for every task it
can serve, a loss ``L(n, t)`` (objective ``min_loss``, lower is better) or a score (``max_score``, higher
is better). A network may train on tasks it does not serve: such tasks are simply absent from its
``loss``/``score`` map.

``normalize="stl"`` (``min_loss`` only) makes every loss relative to the task's single-task network:

    L~(n, t) = L(n, t) / L(s_t, t),   s_t = the full-size network whose ``tasks`` are exactly ``[t]``,

so a selection's total ``sum_t min_{n in S} L~(n, t)`` adds per-task relative losses (1.0 = as good as
training ``t`` alone; Standley's Table 1 reports the same ratio against single-task networks). Tasks
with heterogeneous losses (cross-entropy, BCE, squared error) then weigh equally, the reason Standley
et al. normalise every label to zero mean and unit variance (003_e1b8ce7dfcb85eaf.txt §4.1). The
division happens once, when the problem is validated: ``networks`` hold ``L~`` and everything that
reads them (the solvers, ``grouping.candidates.evaluate_selection``, the grouping-quality regret) sees
normalised values. It is idempotent (each ``L~(s_t, t)`` is exactly 1), so ``to_dict()`` writes ``L~``
with ``"normalize": "stl"`` and parses back to an equal problem.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

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
    """Tasks plus explicit candidate networks; objective ``min_loss`` (Standley) or ``max_score``;
    ``normalize`` ``"none"`` or ``"stl"`` (module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tasks: list[str] = Field(min_length=1)
    objective: Literal["min_loss", "max_score"] = "min_loss"
    normalize: Literal["none", "stl"] = "none"  # before ``networks``: their validator reads it
    networks: list[CandidateNetwork] = Field(min_length=1)

    @field_validator("networks")
    @classmethod
    def _relative_losses(cls, networks: list[CandidateNetwork], info: ValidationInfo
                         ) -> list[CandidateNetwork]:
        """``L~(n, t)`` under ``normalize="stl"``; a task without a positive single-task loss keeps its
        losses here and is reported by ``_cross_checks``."""
        if info.data.get("normalize") != "stl":
            return networks
        stl = {t: loss for t, loss in _single_task_losses(networks).items() if loss > 0}
        return [net if net.loss is None else
                net.model_copy(update={"loss": {t: v / stl.get(t, 1.0) for t, v in net.loss.items()}})
                for net in networks]

    @model_validator(mode="after")
    def _cross_checks(self) -> ExplicitProblem:
        if self.normalize == "stl" and self.objective != "min_loss":
            raise InputError("normalize", f"'stl' divides losses and needs objective 'min_loss', "
                             f"not {self.objective!r}")
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
        if self.normalize == "stl":
            self._check_relative_losses()
        return self

    def _check_relative_losses(self) -> None:
        """Every task has a positive full-size single-task loss (now 1.0) and every ``L~`` is finite."""
        stl = _single_task_losses(self.networks)
        for t in self.tasks:
            if t not in stl:
                raise InputError("normalize", f"'stl' divides by each task's full-size single-task loss, "
                                 f"but no full-size network trains only {t!r} with a loss for it")
            if not stl[t] > 0:
                raise InputError("normalize", f"'stl' divides by the full-size single-task loss of task "
                                 f"{t!r}, which must be > 0 (got {stl[t]:g})")
        for i, net in enumerate(self.networks):
            for t, v in (net.loss or {}).items():
                if not math.isfinite(v):
                    raise InputError("normalize", f"the relative loss of task {t!r} on networks[{i}] "
                                     "overflows (its single-task loss is too small)")

    def to_dict(self) -> dict:
        """The explicit JSON form (``parse_problem`` reads it back; under ``"stl"`` with the normalised
        losses ``L~``, which normalise to themselves)."""
        return self.model_dump(mode="json", exclude_none=True)


def _single_task_losses(networks: list[CandidateNetwork]) -> dict[str, float]:
    """``L(s_t, t)`` for every task ``t`` with a full-size network training only ``t`` and a loss for it."""
    return {net.tasks[0]: net.loss[net.tasks[0]] for net in networks
            if net.size == "full" and len(net.tasks) == 1 and net.loss and net.tasks[0] in net.loss}
