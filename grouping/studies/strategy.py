"""Which networks (trials) a study's strategy trains, given the results so far.

* ``exhaustive`` (Standley §3.1): every non-empty task set as a full-size network;
* ``esa`` (§3.3.1): the same networks, each trained for a fraction of the epochs;
* ``pairwise`` (§3.3.2): single-task networks and every pair; answers fill the 3+-task networks by
  the Higher-Order Approximation (:mod:`grouping.studies.problem`);
* ``adaptive``: starts as ``pairwise``, then in rounds: solve the problem of the measured networks
  plus the ``subset_best`` predictions of the unmeasured ones (a member does as well as in its best
  measured sub-group) at each of the study's budgets, ties going to predictions, and train every
  *predicted* network those selections choose. It stops at the fixed point where every budget's
  selection consists of measured networks only: the selection then rests on no prediction, and a
  further round would train nothing. A network predicted worse than the optimum is never trained —
  the approximation the strategy makes. On ETTm1 (MTG-Net's 127 measured networks,
  ``tests/test_studies_ettm1.py``) it trains 57 networks and its selections at budgets 1-7 lose at
  most 0.035 of the exhaustive optimum's summed validation gain (1.126). Measured alternatives: HOA's
  mean as the prediction stopped after 34 networks with selections up to 0.79 worse (pair gains
  there understate what larger groups gain); without the tie rule 41 networks, up to 0.32 worse; a
  task's best value anywhere as a (safe) bound trained 126.

Every strategy adds a half-size single-task network per task when the study allows half-size
singletons. Networks are keyed by their tasks in the study's task order and their size.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from itertools import combinations

from grouping.problem import ExplicitProblem
from grouping.studies.problem import Fill, Measurement, NetworkKey, ValueKind, study_problem

ADAPTIVE = "adaptive"
STRATEGIES: tuple[str, ...] = ("exhaustive", "pairwise", "esa", ADAPTIVE)
#: the most tasks each strategy accepts (exhaustive/esa train 2^n - 1 networks; HOA fill and the
#: adaptive rounds solve over all 2^n - 1 candidates)
MAX_TASKS: dict[str, int] = {"exhaustive": 10, "esa": 10, "pairwise": 40, ADAPTIVE: 10}
#: how each strategy's problem predicts its unmeasured 3+-task networks (:mod:`grouping.studies.problem`)
FILLS: dict[str, Fill | None] = {"exhaustive": None, "esa": None, "pairwise": "hoa", ADAPTIVE: "subset_best"}
#: seconds each budget's solve of an adaptive round may take
ROUND_SOLVE_SECONDS = 10.0
#: how much a predicted network is favoured over a measured one of equal value (relative to the
#: largest magnitude of the problem's values)
TIE_MARGIN = 1e-6


@dataclass(frozen=True)
class StudyPlan:
    """What a study measures: its tasks, strategy, value kind, network costs per size, whether
    half-size single-task networks are candidates, and the budgets its selections are asked at."""

    tasks: list[str]
    strategy: str
    value_kind: ValueKind
    costs: Mapping[str, float] = field(default_factory=lambda: {"full": 1.0, "half": 0.5})
    half_singletons: bool = False
    budgets: list[float] = field(default_factory=list)

    @property
    def fill(self) -> Fill | None:
        """How answers predict unmeasured 3+-task networks (``None``: they do not)."""
        return FILLS[self.strategy]

    def problem(self, measured: Iterable[Measurement], unavailable: Collection[NetworkKey] = ()
                ) -> ExplicitProblem:
        """:func:`study_problem` of ``measured`` under this plan."""
        return study_problem(self.tasks, self.value_kind, self.costs, measured, fill=self.fill,
                             unavailable=unavailable)


def initial_networks(plan: StudyPlan) -> list[NetworkKey]:
    """The networks a study starts with: all task sets (``exhaustive``, ``esa``) or those of at most
    two tasks (``pairwise``, ``adaptive``), by size then task order; then the half-size singletons."""
    largest = 2 if plan.fill else len(plan.tasks)
    keys: list[NetworkKey] = [(group, "full") for size in range(1, largest + 1)
                              for group in combinations(plan.tasks, size)]
    if plan.half_singletons:
        keys += [((task,), "half") for task in plan.tasks]
    return keys


def next_networks(plan: StudyPlan, measured: Iterable[Measurement], existing: Collection[NetworkKey],
                  unavailable: Collection[NetworkKey] = ()) -> list[NetworkKey]:
    """The networks to train next, once every trial so far has ended (``existing``: every network
    with a trial, ``unavailable``: those whose trial failed). Empty for the fixed strategies, and for
    ``adaptive`` at its fixed point (module docstring). Where a predicted network ties a measured one
    the prediction wins (it is favoured by :data:`TIE_MARGIN` of the values' scale): ties are
    resolved by measuring."""
    if plan.strategy != ADAPTIVE:
        return []
    from grouping.selection import solve_curve

    measured = list(measured)
    order = {t: i for i, t in enumerate(plan.tasks)}
    problem = plan.problem(measured, unavailable)
    known = {m.key for m in measured}
    scale = max((abs(v) for net in problem.networks for v in net.values.values()), default=1.0)
    margin = TIE_MARGIN * max(scale, 1.0) * (1 if plan.value_kind == "score" else -1)
    value_key = "loss" if plan.value_kind == "loss" else "score"
    favoured = problem.model_copy(update={"networks": [
        net if (tuple(net.tasks), net.size) in known
        else net.model_copy(update={value_key: {t: v + margin for t, v in net.values.items()}})
        for net in problem.networks]})
    wanted: list[NetworkKey] = []
    for solution in solve_curve(favoured, plan.budgets, time_limit=ROUND_SOLVE_SECONDS):
        for net in solution.networks:
            key = (tuple(sorted(net.trains, key=order.__getitem__)), net.size)
            if key not in existing and key not in wanted:
                wanted.append(key)
    return wanted
