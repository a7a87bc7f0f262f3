"""Scoring a selection on another table (Standley's reporting rule, 003_e1b8ce7dfcb85eaf.txt §3).

A selection made on one table (validation losses, ESA, HOA) is reported on another (test losses):
each task gets ``L(S, t) = min_{n in S} L(n, t)`` over the chosen networks that compute ``t`` in that
table (the highest value for ``max_score`` tables). Networks are matched by their task set and size.
"""

from __future__ import annotations

from collections.abc import Iterable

from grouping.errors import InputError
from grouping.problem import ChosenNetwork, ExplicitProblem


def evaluate_selection(networks: Iterable[ChosenNetwork], table: ExplicitProblem) -> dict[str, float]:
    """Per-task value of the chosen ``networks`` on ``table`` (sum the values for Standley's total)."""
    by_key = {net.key: net for net in table.networks}
    best = max if table.objective == "max_score" else min
    out: dict[str, float] = {}
    for chosen in networks:
        key = (frozenset(chosen.trains), chosen.size)
        if key not in by_key:
            raise InputError("networks", f"{chosen.size} network training {sorted(chosen.trains)} "
                             "is not in the evaluation table")
        for task, value in by_key[key].values.items():
            out[task] = best(out[task], value) if task in out else value
    missing = [t for t in table.tasks if t not in out]
    if missing:
        raise InputError("networks", f"the selection computes no value for task {missing[0]!r}")
    return {t: out[t] for t in table.tasks}
