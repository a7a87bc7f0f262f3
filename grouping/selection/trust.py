"""How far to trust a selection: its predicted values under resampled versions of the problem.

A solved selection is optimal for one *estimate* of the network values (a validation table, an
affinity matrix averaged over a run). Given samples of that estimate — bootstrap means over the
validation examples of a table, or over the measured epochs of an affinity run
(:func:`resampled_affinity`) — :func:`selection_trust` re-evaluates the *fixed* selection, with each
task served by the network that serves it in the solution, under every sample, and reports:

* each chosen network's predicted value (the sum over the tasks it serves) with its spread;
* the predicted objective with its spread;
* the same for one full-size network training every task (the plain multi-task baseline), and the
  predicted gain of the selection over it: ``all_task − objective`` for losses, ``objective −
  all_task`` for scores, so a positive gain means the selection is predicted to be better; and
* ``win_rate``, the share of samples in which the gain is positive.

Intervals are the central ``level`` percentile intervals of the samples; the point value is the
value under the estimate the solver saw. They describe the noise of the estimate only (which
validation examples, which steps were measured), not the bias of the method that produced it;
``bench/grouping_quality.py`` measures that.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from grouping.errors import InputError
from grouping.problem import AffinityProblem, ExplicitProblem, Solution, parse_problem

Problem = ExplicitProblem | AffinityProblem
#: samples drawn by default when resampling an estimate
DEFAULT_DRAWS = 200
#: most draws a problem document may carry in ``metadata.val_draws`` (bounds a trust report's work)
MAX_DOCUMENT_DRAWS = 1000


class Interval(BaseModel):
    """A predicted value (under the solver's estimate) and its central interval over the samples."""

    model_config = ConfigDict(frozen=True)

    value: float
    low: float
    high: float


class Trust(BaseModel):
    """The spread of a selection's predicted values (see the module docstring)."""

    model_config = ConfigDict(frozen=True)

    samples: int
    level: float
    networks: list[Interval]
    objective: Interval
    all_task: Interval | None
    gain: Interval | None
    win_rate: float | None


def selection_trust(solution: Solution, estimate: Problem, samples: Sequence[Problem], *,
                    level: float = 0.95) -> Trust:
    """The trust report of ``solution`` (solved on ``estimate``) over ``samples`` of the estimate."""
    if not samples:
        raise InputError("samples", "at least one sample of the estimate is needed")
    if not 0.0 < level < 1.0:
        raise InputError("level", f"must lie strictly between 0 and 1, got {level!r}")
    point = _network_values(solution, estimate)
    drawn = np.array([_network_values(solution, s) for s in samples])  # samples × networks
    tail = 100.0 * (1.0 - level) / 2.0

    def interval(value: float, values: np.ndarray) -> Interval:
        low, high = np.percentile(values, [tail, 100.0 - tail])
        return Interval(value=float(value), low=float(low), high=float(high))

    networks = [interval(point[k], drawn[:, k]) for k in range(len(point))]
    objective = interval(sum(point), drawn.sum(axis=1))
    baseline = _all_task_value(estimate)
    if baseline is None:
        return Trust(samples=len(samples), level=level, networks=networks, objective=objective,
                     all_task=None, gain=None, win_rate=None)
    baselines = np.array([_all_task_value(s) for s in samples], dtype=float)
    sign = -1.0 if _minimises(estimate) else 1.0
    gains = sign * (drawn.sum(axis=1) - baselines)
    return Trust(samples=len(samples), level=level, networks=networks, objective=objective,
                 all_task=interval(baseline, baselines),
                 gain=interval(sign * (sum(point) - baseline), gains),
                 win_rate=float(np.mean(gains > 0)))


def resampled_affinity(problem: AffinityProblem, trajectory: Sequence[Sequence[Sequence[float | None]]],
                       *, draws: int = DEFAULT_DRAWS, seed: int = 0) -> list[AffinityProblem]:
    """Bootstrap samples of an affinity run's mean matrix: each draws the run's per-epoch matrices
    (``trajectory``, onto row from column) with replacement and averages them, as TAG eq. 2 averages
    the measured steps. Epochs without a measurement (null entries) are skipped."""
    epochs = [np.array([[np.nan if v is None else v for v in row] for row in m], dtype=float)
              for m in trajectory]
    epochs = [m for m in epochs if np.isfinite(m).all()]
    if not epochs:
        raise InputError("trajectory", "no epoch of the run holds a complete affinity matrix")
    stack = np.stack(epochs)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(stack), size=(draws, len(stack)))
    data = problem.model_dump(mode="json")
    return [AffinityProblem.model_validate(
        {**data, "affinity": {"onto_row_from_column": stack[p].mean(axis=0).tolist()}}) for p in picks]


def problem_samples(data: Mapping[str, Any]) -> list[Problem]:
    """The samples of the estimate a problem document carries, ``[]`` when it carries none.

    An affinity document (``max_affinity``) that carries its run's per-epoch matrices
    (``metadata.trajectories[metadata.method]``, as ``taskgrouper affinity`` writes them) gives
    :func:`resampled_affinity` samples when at least two epochs hold a complete matrix.

    ``data["metadata"]["val_draws"]`` (as :meth:`grouping.tables.NetworkTable.problem_document` writes
    it) holds one map per entry of ``networks``, same order, from each task of the network's ``loss``
    to its draws of that loss; every list has the same length K (2 ≤ K ≤ :data:`MAX_DOCUMENT_DRAWS`).
    Sample k is the document with every loss replaced by its k-th draw (so ``normalize`` applies per
    sample). ``InputError`` naming the item (``metadata.val_draws[2].s[7]``) when the draws do not fit
    the networks or a draw is not a finite number."""
    metadata = data.get("metadata")
    if not isinstance(metadata, Mapping):
        return []
    if data.get("objective") == "max_affinity":
        return _trajectory_samples(data, metadata)
    if metadata.get("val_draws") is None:
        return []
    field = "metadata.val_draws"
    draws, networks = metadata["val_draws"], data.get("networks")
    if data.get("objective", "min_loss") != "min_loss" or not isinstance(networks, list):
        raise InputError(field, "draws belong to the networks of an explicit min_loss problem")
    if not isinstance(draws, list) or len(draws) != len(networks):
        raise InputError(field, f"must hold one map per network ({len(networks)})")
    count: int | None = None
    for i, (net, entry) in enumerate(zip(networks, draws, strict=True)):
        losses = net.get("loss") if isinstance(net, Mapping) else None
        if not isinstance(losses, Mapping) or not isinstance(entry, Mapping) or set(entry) != set(losses):
            raise InputError(f"{field}[{i}]", "must map the tasks of the network's loss to their draws")
        for task, values in entry.items():
            where = f"{field}[{i}].{task}"
            if not isinstance(values, list):
                raise InputError(where, "must be a list of draws")
            count = len(values) if count is None else count
            if len(values) != count:
                raise InputError(where, f"has {len(values)} draws; every list needs {count}, as the first")
            for k, value in enumerate(values):
                if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                    raise InputError(f"{where}[{k}]", "must be a finite number")
    if count is None or not 2 <= count <= MAX_DOCUMENT_DRAWS:
        raise InputError(field, f"needs 2 to {MAX_DOCUMENT_DRAWS} draws per loss, got {count or 0}")
    base = {key: value for key, value in data.items() if key != "metadata"}
    return [
        parse_problem({**base, "networks": [
            {**net, "loss": {t: entry[t][k] for t in net["loss"]}}
            for net, entry in zip(networks, draws, strict=True)
        ]})
        for k in range(count)
    ]


def _trajectory_samples(data: Mapping[str, Any], metadata: Mapping[str, Any]) -> list[Problem]:
    """Resampled epochs of an affinity document's own trajectory (``[]`` without two complete ones)."""
    trajectories, method = metadata.get("trajectories"), metadata.get("method")
    if not isinstance(trajectories, Mapping) or not isinstance(trajectories.get(method), list):
        return []
    trajectory = trajectories[method]
    complete = [m for m in trajectory
                if isinstance(m, list) and all(isinstance(r, list) and all(
                    isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in r)
                    for r in m)]
    if len(complete) < 2:
        return []
    problem = parse_problem({key: value for key, value in data.items() if key != "metadata"})
    return list(resampled_affinity(problem, complete))


def _minimises(problem: Problem) -> bool:
    return isinstance(problem, ExplicitProblem) and problem.objective == "min_loss"


def _network_values(solution: Solution, problem: Problem) -> list[float]:
    """Each chosen network's value under ``problem``: the sum over the tasks it serves."""
    if isinstance(problem, AffinityProblem):
        index = {t: k for k, t in enumerate(problem.tasks)}
        score = problem.score_matrix()
        values = []
        for net in solution.networks:
            members = [index[t] for t in net.trains]
            values.append(sum(_group_score(score, members, index[t]) for t in net.serves))
        return values
    table = {net.key: net.values for net in problem.networks}
    values = []
    for net in solution.networks:
        found = table.get((frozenset(net.trains), net.size))
        if found is None:
            raise InputError("samples", f"a sample has no {net.size} network training {sorted(net.trains)}")
        values.append(sum(found[t] for t in net.serves))
    return values


def _group_score(score: np.ndarray, members: list[int], onto: int) -> float:
    """s(G, i): the mean affinity onto ``onto`` from the other members (0 for a task served alone)."""
    others = [j for j in members if j != onto]
    return float(score[onto, others].mean()) if others else 0.0


def _all_task_value(problem: Problem) -> float | None:
    """The total of one full-size network training and serving every task (None if not a candidate)."""
    if isinstance(problem, AffinityProblem):
        everyone = list(range(len(problem.tasks)))
        score = problem.score_matrix()
        return sum(_group_score(score, everyone, i) for i in everyone)
    for net in problem.networks:
        if net.key == (frozenset(problem.tasks), "full") and set(net.values) == set(problem.tasks):
            return float(sum(net.values.values()))
    return None
