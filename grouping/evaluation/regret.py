"""Grouping quality of a method's network selection, measured on a ground-truth explicit network table.

The table is the exhaustive one (every candidate network trained to convergence, Standley §3.1), in the
explicit problem form ``{"tasks", "objective": "min_loss", "networks": [{"tasks", "cost", "loss": {...}}]}``.
At a budget B, for a method that selected the networks S (cost ≤ B):

* ``method``   — the selection's true total loss: Σ_t min_{n ∈ S, t ∈ n} loss_n(t), Standley's reporting
  rule (each task served by the chosen network that is truly best for it; ``003_…`` §6, Table 4);
* ``optimal``  — the minimum total loss of any selection of cost ≤ B (networks may train tasks they do
  not serve), from the exact solver :func:`grouping.selection.solve`;
* ``random``   — the expected total loss of a uniformly random *grouping* feasible at B: the exact mean
  over all partitions of the tasks into groups, each served by a table network training exactly that
  group, of cost ≤ B (see :mod:`grouping.evaluation.groupings`; enumerated, not sampled). This is
  Standley's "Random" baseline ("valid random task groupings that solve our five tasks") on the table;
* ``pessimal`` — the worst total loss over those same groupings (Standley's "Pessimal");
* ``regret``   — the normalised regret (method − optimal) / (random − optimal): 0 for an optimal
  selection, 1 for one no better than a random grouping on average, > 1 for worse.

Standley's own baselines spend the whole budget by scaling the encoder size of each group's network;
an exhaustive table has fixed sizes (full, and half for single tasks), so here a grouping may cost less
than B and Random/Pessimal range over more groupings as B grows. Since groupings are selections,
optimal ≤ random ≤ pessimal; a method's selection with overlapping networks can be worse than Pessimal.

``random``, ``pessimal`` and ``regret`` are ``None`` where no grouping fits the budget; ``regret`` is
also ``None`` where random = optimal (every grouping at that budget is optimal: the ratio is undefined).

A table with ``"normalize": "stl"`` is parsed into relative losses ``loss_n(t) / loss_{s_t}(t)`` (``s_t``
the full-size network training only ``t``; :class:`grouping.problem.ExplicitProblem`), so all four
totals then add per-task relative losses and tasks on different loss scales weigh equally.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from grouping.candidates import evaluate_selection
from grouping.errors import InputError
from grouping.evaluation.groupings import COST_TOLERANCE, Grouping, all_groupings, feasible
from grouping.problem import ChosenNetwork, ExplicitProblem, Solution, parse_problem
from grouping.problem.parse import validate_model
from grouping.selection import solve

#: totals closer than this (relative) count as equal when deciding whether regret is defined
REGRET_TOLERANCE = 1e-12

#: a method's selection: its :class:`Solution`, or the solution's networks (objects or their JSON dicts)
Selection = Solution | Sequence[ChosenNetwork | Mapping[str, Any]]


@dataclass(frozen=True)
class GroupingQuality:
    """How good one selection is at one budget (definitions in the module docstring)."""

    budget: float
    method: float
    optimal: float
    random: float | None
    pessimal: float | None
    regret: float | None

    def to_dict(self) -> dict[str, float | None]:
        return asdict(self)


def ground_truth(table: Mapping[str, Any] | ExplicitProblem) -> ExplicitProblem:
    """The validated ``min_loss`` table (``parse_problem`` of the explicit JSON form; relative losses
    under ``"normalize": "stl"``)."""
    problem = table if isinstance(table, ExplicitProblem) else parse_problem(table)
    if not isinstance(problem, ExplicitProblem) or problem.objective != "min_loss":
        raise InputError("objective", "grouping quality needs an explicit 'min_loss' network table")
    return problem


def selection_total(table: ExplicitProblem, selection: Selection) -> float:
    """The true total loss of ``selection``: Σ_t of the lowest loss of t among the selected networks.

    Networks are matched in the table by their trained tasks and size
    (:func:`grouping.candidates.evaluate_selection`); an unknown network or a task that no selected
    network computes is an :class:`InputError` on ``selection``.
    """
    try:
        return sum(evaluate_selection(_networks(selection), table).values())
    except InputError as exc:
        raise InputError("selection", exc.reason, **exc.details) from None


def grouping_quality(table: Mapping[str, Any] | ExplicitProblem, selection: Selection, budget: float
                     ) -> GroupingQuality:
    """Quality of one selection at one ``budget`` (see :func:`quality_curve` for several budgets)."""
    return quality_curve(table, {budget: selection})[0]


def quality_curve(table: Mapping[str, Any] | ExplicitProblem, selections: Mapping[float, Selection]
                  ) -> list[GroupingQuality]:
    """Quality of each budget's selection, in the order given; the groupings are enumerated once."""
    problem = ground_truth(table)
    groupings = all_groupings(problem)
    result = []
    for budget, selection in selections.items():
        optimal = float(solve(problem, budget).objective)
        cost = sum(net.cost for net in _networks(selection))
        if cost > budget + COST_TOLERANCE:
            raise InputError("selection", f"costs {cost:g}, more than the budget {budget:g}")
        method = selection_total(problem, selection)
        result.append(_quality(budget, method, optimal, feasible(groupings, budget)))
    return result


def _networks(selection: Selection) -> list[ChosenNetwork]:
    nets = selection.networks if isinstance(selection, Solution) else selection
    return [n if isinstance(n, ChosenNetwork) else validate_model(ChosenNetwork, n, ("selection", k))
            for k, n in enumerate(nets)]


def _quality(budget: float, method: float, optimal: float, groupings: Sequence[Grouping]) -> GroupingQuality:
    if not groupings:
        return GroupingQuality(budget, method, optimal, None, None, None)
    random = sum(g.total for g in groupings) / len(groupings)
    pessimal = max(g.total for g in groupings)
    spread = random - optimal
    regret = (method - optimal) / spread if spread > REGRET_TOLERANCE * max(1.0, abs(optimal)) else None
    return GroupingQuality(budget, method, optimal, random, pessimal, regret)
