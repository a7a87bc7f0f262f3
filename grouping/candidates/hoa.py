"""Standley's Higher-Order Approximation (003_e1b8ce7dfcb85eaf.txt, §3.3.2).

Keep the networks of one and two tasks; predict every full-size network of three or more tasks: its
value on task ``t`` is the mean of ``t``'s value in the full-size pair networks ``{t, u}`` it contains.
"""

from __future__ import annotations

from itertools import combinations

from grouping.errors import InputError
from grouping.problem import CandidateNetwork, ExplicitProblem

#: refuse to predict more networks than this (the count is 2^n - n(n+1)/2 - 1)
MAX_PREDICTED = 200_000


def higher_order_approximation(problem: ExplicitProblem) -> ExplicitProblem:
    """The problem with every 3+-task network replaced by its HOA prediction from the pair networks."""
    n = len(problem.tasks)
    if 2**n - n * (n + 1) // 2 - 1 > MAX_PREDICTED:
        raise InputError("hoa", f"{n} tasks would predict more than {MAX_PREDICTED} networks")
    value_key = "loss" if problem.objective == "min_loss" else "score"
    pair: dict[frozenset[str], dict[str, float]] = {
        frozenset(net.tasks): net.values
        for net in problem.networks if len(net.tasks) == 2 and net.size == "full"
    }
    kept = [net for net in problem.networks if len(net.tasks) <= 2]
    for size in range(3, n + 1):
        for group in combinations(problem.tasks, size):
            values = {}
            for t in group:
                seen = [pair[frozenset((t, u))][t] for u in group
                        if u != t and t in pair.get(frozenset((t, u)), {})]
                if len(seen) == size - 1:
                    values[t] = sum(seen) / len(seen)
            if len(values) == size:
                kept.append(CandidateNetwork(tasks=list(group), size="full", **{value_key: values}))
    return ExplicitProblem(tasks=problem.tasks, objective=problem.objective, networks=kept)
