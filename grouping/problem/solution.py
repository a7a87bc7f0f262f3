"""The answer to a selection problem, in the CLI/API JSON shape of issue 2."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class ChosenNetwork(BaseModel):
    """A network to train: the tasks it ``trains`` on, those it ``serves`` at inference, its size and cost."""

    model_config = ConfigDict(frozen=True)

    trains: list[str]
    serves: list[str]
    size: Literal["full", "half"]
    cost: float


class Solution(BaseModel):
    """A selection at one budget.

    ``objective`` is the total of ``per_task`` (sum of served losses for ``min_loss``, sum of served
    scores for ``max_score``/``max_affinity``; TAG's reported figure is that sum divided by the number
    of tasks). ``bound`` is the solver's proven best bound in the same sense and
    ``gap = |bound - objective| / max(|objective|, 1e-9)``. ``status`` is ``optimal`` when the
    solver proved optimality, ``feasible`` when it stopped (time limit) with a valid selection, and
    ``infeasible`` when the budget is below the cheapest covering (only ``solve_curve`` returns such
    entries; ``solve`` raises ``InfeasibleBudget``).
    """

    model_config = ConfigDict(frozen=True)

    status: Literal["optimal", "feasible", "infeasible"]
    objective: float | None
    bound: float | None
    gap: float | None
    networks: list[ChosenNetwork]
    per_task: dict[str, float]
    solve_seconds: float
    solver: str
    budget: float
    #: the algorithm that produced the selection and its bound (the requested ``solver`` or the method
    #: the dispatcher chose for it)
    proved_by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON object printed by ``taskgrouper solve`` (keys in the documented order)."""
        return self.model_dump(mode="json")
