"""Starting partitions for column generation: local search reaches a local optimum of moves and swaps,
and a time-limited ``bip`` on a large affinity problem returns at least the best of them."""

import itertools

import numpy as np
import pytest

from grouping.problem import parse_problem
from grouping.selection import solve
from grouping.selection.partition_search import good_partitions, local_optimum, partition_value


def random_affinity(n, seed):
    a = np.random.default_rng(seed).normal(0.0, 1.0, (n, n))
    np.fill_diagonal(a, 0.0)
    return a


def groups_of(label):
    return [tuple(np.flatnonzero(label == g)) for g in np.unique(label)]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("min_size", [1, 2])
def test_local_optimum_admits_no_improving_move_or_swap(seed, min_size):
    n, k = 9, 3
    a = random_affinity(n, seed)
    label = np.arange(n) % k
    label = local_optimum(a, label, k, min_size)
    value = partition_value(a, groups_of(label))
    assert np.bincount(label, minlength=k)[np.bincount(label, minlength=k) > 0].min() >= min_size
    for i, g in itertools.product(range(n), range(k)):  # every single move
        moved = label.copy()
        moved[i] = g
        if np.bincount(moved, minlength=k)[label[i]] >= min_size or moved[i] == label[i]:
            assert partition_value(a, groups_of(moved)) <= value + 1e-9
    for i, j in itertools.combinations(range(n), 2):  # every swap
        swapped = label.copy()
        swapped[i], swapped[j] = label[j], label[i]
        assert partition_value(a, groups_of(swapped)) <= value + 1e-9


def test_good_partitions_cover_every_task_once_best_first():
    a = random_affinity(12, 0)
    partitions = good_partitions(a, 4, 2)
    values = [partition_value(a, p) for p in partitions]
    assert values == sorted(values, reverse=True)
    for partition in partitions:
        assert len(partition) == 4 and min(map(len, partition)) >= 2
        assert sorted(t for group in partition for t in group) == list(range(12))


def planted_problem(n_clusters=10, size=4, seed=0):
    rng = np.random.default_rng(seed)
    n = n_clusters * size
    cluster = np.arange(n) // size
    a = np.where(cluster[:, None] == cluster[None, :], 1.0, -0.1) + rng.normal(0.0, 0.05, (n, n))
    np.fill_diagonal(a, 0.0)
    return parse_problem({"tasks": [f"t{i}" for i in range(n)], "objective": "max_affinity",
                          "affinity": {"onto_row_from_column": a.tolist()}, "singletons": "forbid"}), a


def test_time_limited_bip_on_forty_tasks_returns_at_least_the_best_partition():
    problem, a = planted_problem()
    for k in (4, 10):
        sol = solve(problem, k, time_limit=3)
        assert len(sol.networks) <= k
        assert sorted(t for n in sol.networks for t in n.serves) == sorted(problem.tasks)
        assert sol.objective >= partition_value(a, good_partitions(a, k, 2)[0]) - 1e-9
    planted = {frozenset(f"t{4 * c + m}" for m in range(4)) for c in range(10)}
    assert {frozenset(n.trains) for n in sol.networks} == planted  # k = 10: the planted clusters


def test_no_start_leaves_a_group_below_the_minimum_size():
    """Agglomeration may leave fewer groups than allowed; the descent must not then fill an empty group
    with a single task (a full-size singleton is no candidate under ``forbid``)."""
    a = np.array([[0, 1, 0, 0, -1], [1, 0, 0, 0, -1], [0, 0, 0, 1, -1], [0, 0, 1, 0, -1],
                  [-1, -1, -1, -1, 0]], dtype=float)
    for partition in good_partitions(a, 2, 2):
        assert min(map(len, partition)) >= 2
    label = local_optimum(a, np.zeros(5, dtype=int), 2, 2)
    assert np.bincount(label, minlength=2)[np.bincount(label, minlength=2) > 0].min() >= 2
