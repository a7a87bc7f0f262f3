"""Scores of pairwise-affinity groups, and the full group table for small task sets.

``s(G, i) = mean_{j in G, j != i} A[i][j]`` (TAG, 002_c72e544f74afbb80.txt appendix B; Table 7 uses
the un-normalised form); a singleton scores 0. ``A`` is ``AffinityProblem.score_matrix()``.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

from grouping.candidates.table import CandidateTable
from grouping.errors import InputError
from grouping.problem import AffinityProblem


def group_scores(a: np.ndarray, members: tuple[int, ...]) -> np.ndarray:
    """``s(G, i)`` for each ``i`` in ``members`` (in that order); zeros for a singleton."""
    idx = np.asarray(members)
    if len(idx) < 2:
        return np.zeros(len(idx))
    return a[np.ix_(idx, idx)].sum(axis=1) / (len(idx) - 1)


def all_groups_table(problem: AffinityProblem, *, max_tasks: int, solver: str) -> CandidateTable:
    """Every admissible group as an explicit candidate (``2^n`` of them): refused beyond ``max_tasks``."""
    n = len(problem.tasks)
    if n > max_tasks:
        raise InputError("solver", f"{solver!r} enumerates all 2^n candidate groups and accepts affinity "
                         f"problems of at most {max_tasks} tasks (got {n}); use solver 'bip'")
    a = problem.score_matrix()
    trains: list[tuple[int, ...]] = []
    rows: list[np.ndarray] = []
    for size in range(problem.min_group_size, n + 1):
        for members in combinations(range(n), size):
            row = np.full(n, np.inf)
            row[list(members)] = -group_scores(a, members)
            trains.append(members)
            rows.append(row)
    return CandidateTable(
        tasks=tuple(problem.tasks),
        trains=tuple(trains),
        sizes=("full",) * len(trains),
        costs=(float(problem.network_cost),) * len(trains),
        loss=np.array(rows),
        sense=-1,
    )
