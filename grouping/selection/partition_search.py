"""Starting columns for column generation: good partitions of the tasks into groups, by local search.

Column generation proves optimality, but with few networks for many tasks (40 tasks, 4 networks) its
pricing must reach groups of ten and more, and until it does the integer master only holds small
groups that cannot cover every task with ``k`` of them. A partition is always a feasible selection, so
its groups give the master a good incumbent from the start (and better duals to the pricing).

The value of a partition is its selection's objective, each task served by its own group:

    v(G) = S(G) / (|G| - 1)  for |G| >= 2 (0 for a singleton),   S(G) = sum_{i, j in G} A[i][j],

the sum over ``i in G`` of ``s(G, i)`` (``grouping.candidates.affinity_groups``; ``A`` has a zero
diagonal). With ``R[g, i] = sum_{j in g} A[i][j]`` and ``C[g, i] = sum_{j in g} A[j][i]``:

* moving ``i`` from ``g`` to ``h`` gives ``S(g) - R[g,i] - C[g,i]`` and ``S(h) + R[h,i] + C[h,i]``;
* swapping ``i in g`` with ``j in h`` gives ``S(g) - R[g,i] - C[g,i] + R[g,j] + C[g,j] - A[i][j] -
  A[j][i]`` (and symmetrically for ``h``),

so every move and swap is scored at once from ``R`` and ``C``; the search takes the best improving one
until none is left (a local optimum), from a greedy agglomerative start (:func:`merged_partition`:
from singletons, merge the two groups whose union raises ``sum_G v(G)`` most, until ``k`` are left)
and several seeded random balanced starts. Iterated local
search (:func:`iterated_local_search`) then kicks the best partition (moves ``KICK`` random tasks to
random groups) and descends again, keeping the result when it is at least as good, until its deadline.
"""

from __future__ import annotations

import time

import numpy as np

from grouping.candidates import group_scores

#: random starts per search
RESTARTS = 8
#: share of the tasks (at least two) one kick of iterated local search moves
KICK = 0.1


def _values(sums: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """``v`` for arrays of group sums ``S`` and sizes (0 where the size is below 2)."""
    return np.where(sizes >= 2, sums / np.maximum(sizes - 1, 1), 0.0)


def local_optimum(a: np.ndarray, label: np.ndarray, k: int, min_size: int, tol: float = 0.0,
                  deadline: float | None = None) -> np.ndarray:
    """Improve the partition ``label`` (task -> group in ``0..k-1``, groups of at least ``min_size``) in
    place by the best improving move or swap (gain above ``tol``) until none is left, or until
    ``deadline`` (``time.monotonic()``); returns it."""
    n = len(a)
    tasks = np.arange(n)
    for _ in range(4 * n * n):  # each step strictly improves; the cap only guards against cycling
        if deadline is not None and time.monotonic() > deadline:
            return label
        onehot = np.zeros((k, n))
        onehot[label, tasks] = 1.0
        r, c = onehot @ a.T, onehot @ a  # R[g, i], C[g, i]
        size = onehot.sum(axis=1)
        total = (onehot * r).sum(axis=1)  # S(g)
        value = _values(total, size)
        own = r[label, tasks] + c[label, tasks]  # R[g_i, i] + C[g_i, i]
        # moves: i from g_i to h (rows i, columns h)
        leave = _values(total[label] - own, size[label] - 1) - value[label]
        join = _values(total[None, :] + (r + c).T, size[None, :] + 1) - value[None, :]
        moves = leave[:, None] + join
        moves[tasks, label] = -np.inf
        moves[size[label] - 1 < min_size, :] = -np.inf
        moves[:, size + 1 < min_size] = -np.inf  # an empty group takes no single task below min_size
        # swaps: i (in g_i) with j (in g_j), rows i, columns j
        pair = a + a.T
        cross = r[label][:, tasks] + c[label][:, tasks]  # [i, j] = R[g_i, j] + C[g_i, j]
        new_gi = total[label][:, None] - own[:, None] + cross - pair
        swaps = _values(new_gi, size[label][:, None]) - value[label][:, None]
        swaps = swaps + swaps.T
        swaps[label[:, None] == label[None, :]] = -np.inf
        best_move, best_swap = np.unravel_index(moves.argmax(), moves.shape), np.unravel_index(
            swaps.argmax(), swaps.shape
        )
        if max(moves[best_move], swaps[best_swap]) <= tol:
            return label
        if moves[best_move] >= swaps[best_swap]:
            label[best_move[0]] = best_move[1]
        else:
            i, j = best_swap
            label[i], label[j] = label[j], label[i]
    return label


def partition_value(a: np.ndarray, groups: list[tuple[int, ...]]) -> float:
    """The selection value of a partition: ``sum_G v(G)``, ``v(G)`` the sum of ``s(G, i)`` over ``G``."""
    return float(sum(group_scores(a, g).sum() for g in groups))


def _groups(label: np.ndarray, k: int) -> list[tuple[int, ...]]:
    members = [tuple(int(t) for t in np.flatnonzero(label == g)) for g in range(k)]
    return [group for group in members if group]  # a group may empty when min_size is 1


def merged_partition(a: np.ndarray, k: int, min_size: int, deadline: float | None = None) -> np.ndarray:
    """Greedy agglomeration (module docstring): labels of at most ``k`` groups of at least ``min_size``
    tasks. With ``W[g, h] = sum_{i in g, j in h} (A[i][j] + A[j][i])``, merging ``g`` and ``h`` changes
    the value by ``v(S_g + S_h + W[g, h], |g| + |h|) - v(g) - v(h)``. Groups below ``min_size`` at the
    end join the group that gains most from them; past ``deadline`` merging continues by the first
    pair of groups instead of the best."""
    n = len(a)
    label = np.arange(n)
    w = a + a.T
    inner, size = np.zeros(n), np.ones(n)
    alive = np.ones(n, dtype=bool)
    while alive.sum() > k or (alive & (size < min_size)).any():
        groups = np.flatnonzero(alive)
        if len(groups) == 1:
            break
        pair_inner = inner[groups][:, None] + inner[groups][None, :] + w[np.ix_(groups, groups)]
        gain = _values(pair_inner, size[groups][:, None] + size[groups][None, :]) - (
            _values(inner[groups], size[groups])[:, None] + _values(inner[groups], size[groups])[None, :])
        np.fill_diagonal(gain, -np.inf)
        if alive.sum() <= k:  # only groups below min_size still merge
            gain[size[groups] >= min_size, :] = -np.inf
        if deadline is not None and time.monotonic() > deadline:
            gain = np.where(np.isfinite(gain), 0.0, gain)
        g, h = (groups[x] for x in np.unravel_index(gain.argmax(), gain.shape))
        inner[g] += inner[h] + w[g, h]
        size[g] += size[h]
        w[g, :] += w[h, :]
        w[:, g] += w[:, h]
        alive[h] = False
        label[label == h] = g
    return np.unique(label, return_inverse=True)[1]


def good_partitions(a: np.ndarray, k: int, min_size: int, seed: int = 0,
                    deadline: float | None = None) -> list[list[tuple[int, ...]]]:
    """Locally optimal partitions of the ``n`` tasks into at most ``min(k, n // min_size)`` groups of at
    least ``min_size`` tasks: one from :func:`merged_partition`, then one per seeded random balanced
    start (``RESTARTS``; past ``deadline`` no further start, the current descent stopped where it
    is), best value first."""
    a = np.asarray(a, dtype=float)
    n = len(a)
    groups = min(k, n // min_size)
    if groups < 1:
        return []
    tol = 1e-12 * max(1.0, float(np.abs(a).max()))
    rng = np.random.default_rng(seed)
    partitions = []
    for start in range(RESTARTS + 1):
        if start == 0:
            label = merged_partition(a, groups, min_size, deadline)
        else:
            label = np.empty(n, dtype=int)
            label[rng.permutation(n)] = np.arange(n) % groups
        label = local_optimum(a, label, groups, min_size, tol, deadline)
        partitions.append(_groups(label, groups))
        if deadline is not None and time.monotonic() > deadline:
            break
    return sorted(partitions, key=lambda p: -partition_value(a, p))


def iterated_local_search(a: np.ndarray, start: list[tuple[int, ...]], min_size: int, deadline: float,
                          seed: int = 0) -> list[tuple[int, ...]]:
    """The best partition found by kicking ``start`` (a partition into groups of at least ``min_size``)
    and descending again (module docstring) until ``deadline`` (``time.monotonic()``); never worse than
    ``start``. Kicks leave every group with at least ``min_size`` tasks."""
    a = np.asarray(a, dtype=float)
    n, k = len(a), len(start)
    tol = 1e-12 * max(1.0, float(np.abs(a).max()))
    rng = np.random.default_rng(seed)
    best = np.empty(n, dtype=int)
    for g, group in enumerate(start):
        best[list(group)] = g
    best_value = partition_value(a, start)
    kick = max(2, round(KICK * n))
    while k > 1 and time.monotonic() < deadline:
        label = best.copy()
        sizes = np.bincount(label, minlength=k)
        for i in rng.choice(n, size=min(kick, n), replace=False):
            target = int(rng.integers(k))
            if target != label[i] and sizes[label[i]] > min_size and sizes[target] + 1 >= min_size:
                sizes[label[i]] -= 1
                sizes[target] += 1
                label[i] = target
        label = local_optimum(a, label, k, min_size, tol, deadline)
        value = partition_value(a, _groups(label, k))
        if value >= best_value - tol:
            best, best_value = label, value
    return _groups(best, k)
