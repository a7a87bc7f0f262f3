"""The affinity form's contract: the column-generation solver equals brute force on small instances, its
search-free bounds hold, a time-limited solve's bound is never below the brute-force optimum, exact
pricing finds every group above its threshold, and a time-limited solve returns within its limit plus
the documented margin (``grouping.selection.column_generation.TIME_MARGIN_SECONDS`` +
``TIME_MARGIN_SHARE`` of the limit) with a bound on the right side of the objective, also while other
processes keep every core busy."""

import math
import os
import subprocess
import sys
import time
from itertools import combinations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grouping.candidates import group_scores
from grouping.problem import parse_problem
from grouping.selection import solve
from grouping.selection.column_generation import METHOD, TIME_MARGIN_SECONDS, TIME_MARGIN_SHARE
from grouping.selection.pricing import GroupPricer, lagrangian_bound
from grouping.selection.size_bound import size_bound


def planted_problem(n, seed, clusters, half_singletons=False):
    """Unequal planted clusters, asymmetric rows, negative affinities between clusters."""
    rng = np.random.default_rng(seed)
    label = rng.integers(clusters, size=n)
    same = label[:, None] == label[None, :]
    m = np.where(same, rng.uniform(0.3, 1.0, (n, n)), rng.normal(-0.1, 0.2, (n, n)))
    m *= rng.uniform(0.5, 1.5, n)[:, None]
    np.fill_diagonal(m, 1.0 + rng.uniform(0, 1, n))
    return parse_problem({"tasks": [f"t{i}" for i in range(n)], "objective": "max_affinity",
                          "affinity": {"onto_row_from_column": m.tolist()}, "singletons": "forbid",
                          "half_singletons": half_singletons})


@st.composite
def small_problems(draw):
    n = draw(st.integers(2, 6))
    values = st.floats(-1, 2, allow_nan=False).map(lambda v: round(v, 3))
    m = draw(st.lists(st.lists(values, min_size=n, max_size=n), min_size=n, max_size=n))
    for i in range(n):
        m[i][i] = draw(st.floats(0.1, 2).map(lambda v: round(v, 3)))
    problem = parse_problem({"tasks": [f"t{i}" for i in range(n)], "objective": "max_affinity",
                             "affinity": {"onto_row_from_column": m},
                             "singletons": draw(st.sampled_from(["forbid", "normalized"])),
                             "half_singletons": draw(st.booleans())})
    return problem, draw(st.sampled_from([1.0, 1.5, 2.0, 2.5, 3.0, 4.0]))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_problems())
def test_column_generation_equals_brute_force_and_its_bounds_hold(case):
    problem, budget = case
    if problem.half_singletons is False and problem.singletons == "forbid" and budget < 1:
        return
    reference = solve(problem, budget, solver="brute_force")
    sol = solve(problem, budget)
    assert sol.status == "optimal" and sol.proved_by == METHOD
    assert sol.objective == pytest.approx(reference.objective, abs=1e-7)
    assert sol.bound == pytest.approx(sol.objective, abs=1e-6)
    alone = 0.5 if problem.half_singletons else 1.0 if problem.serves_alone else None
    assert size_bound(problem.score_matrix(), budget, alone) >= reference.objective - 1e-7


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_problems(), st.integers(0, 2**32 - 1))
def test_the_lagrangian_bound_is_never_below_the_brute_force_optimum(case, seed):
    """At any task duals and budget price (``z`` their dual objective), every point the subgradient
    steps evaluate bounds the optimum: negative and asymmetric scores, tasks served alone or not."""
    problem, budget = case
    if problem.half_singletons is False and problem.singletons == "forbid" and budget < 1:
        return
    reference = solve(problem, budget, solver="brute_force")
    rng = np.random.default_rng(seed)
    a, k = problem.score_matrix(), int(budget)
    pi, mu = rng.uniform(-0.5, 1.5, len(a)), float(rng.uniform(0.0, 0.5))
    bound = lagrangian_bound(a, float(pi.sum()) + k * mu, pi, mu, k, reference.objective - 0.5,
                             alone=problem.serves_alone, deadline=None)
    assert bound >= reference.objective - 1e-7


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_problems(), st.sampled_from([1e-4, 1e-3, 0.02]))
def test_a_time_limited_bound_is_never_below_the_brute_force_optimum(case, limit):
    """Whatever phase the limit stops (the starting partitions, column generation, the integer master),
    the returned bound is an upper bound on the optimum (maximisation) and the selection is feasible."""
    problem, budget = case
    if problem.half_singletons is False and problem.singletons == "forbid" and budget < 1:
        return
    reference = solve(problem, budget, solver="brute_force")
    sol = solve(problem, budget, time_limit=limit)
    assert sol.status in ("optimal", "feasible") and sol.proved_by == METHOD
    assert sol.bound >= reference.objective - 1e-7
    assert sol.objective <= reference.objective + 1e-7
    assert sorted(t for net in sol.networks for t in net.serves) == sorted(problem.tasks)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(2, 7), st.integers(0, 2**32 - 1), st.floats(0.0, 1.0))
def test_exact_pricing_finds_every_group_above_its_threshold(n, seed, quantile):
    """The pricer's pruning bound never cuts a group whose reduced cost
    ``d(G) = sum_{i in G} max(0, s(G, i) - pi_i) - mu`` reaches the threshold (full enumeration)."""
    rng = np.random.default_rng(seed)
    a = rng.normal(0.2, 0.6, (n, n))
    np.fill_diagonal(a, 0.0)
    pi, mu = rng.normal(0.3, 0.5, n), float(rng.uniform(0, 1))
    every = {g: float(np.maximum(0.0, group_scores(a, g) - pi[list(g)]).sum() - mu)
             for m in range(2, n + 1) for g in combinations(range(n), m)}
    # just below a group's value: the pricer sums in its own order, so one exactly at it may round off
    threshold = float(np.quantile(list(every.values()), quantile)) - 1e-9
    found = GroupPricer(a).groups_above(pi, mu, threshold)
    assert {g for _, g in found} == {g for g, d in every.items() if d >= threshold}
    assert all(d == pytest.approx(every[g]) for d, g in found)


@pytest.mark.parametrize(("n", "k", "seed"), [(12, 2, 0), (20, 4, 1), (30, 3, 2)])
def test_time_limited_solves_keep_a_valid_bound(n, k, seed):
    problem = planted_problem(n, seed, clusters=max(2, n // 5), half_singletons=seed == 1)
    sol = solve(problem, k, time_limit=1.0)
    assert sol.status in ("optimal", "feasible") and sol.proved_by == METHOD
    assert sol.bound is not None and math.isfinite(sol.bound)
    assert sol.bound >= sol.objective - 1e-9 * max(1.0, abs(sol.objective))
    assert sorted(t for net in sol.networks for t in net.serves) == sorted(problem.tasks)
    assert sum(net.cost for net in sol.networks) <= k + 1e-9


def test_limit_is_kept_while_every_core_is_busy():
    """A 40-task planted instance with three networks is not proven within 3 s: the solve must stop at
    its limit (plus the documented margin) with a valid bound while busy loops hold every core."""
    problem = planted_problem(40, 7, clusters=6)
    limit = 3.0
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 2)]
    try:
        started = time.monotonic()
        sol = solve(problem, 3, time_limit=limit)
        elapsed = time.monotonic() - started
    finally:
        for proc in busy:
            proc.kill()
            proc.wait()
    assert elapsed <= limit + TIME_MARGIN_SECONDS + TIME_MARGIN_SHARE * limit, elapsed
    assert sol.bound is not None and math.isfinite(sol.bound)
    assert sol.bound >= sol.objective - 1e-9 * max(1.0, abs(sol.objective))
    assert sol.status in ("optimal", "feasible") and sol.proved_by == METHOD
