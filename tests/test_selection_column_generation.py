"""Column generation for affinity problems: exact pricing, and agreement with full enumeration."""

from itertools import combinations

import numpy as np
import pytest

from grouping.candidates import group_scores
from grouping.problem import parse_problem
from grouping.selection import pricing, solve
from grouping.selection.pricing import (
    GroupPricer,
    PricingTimeout,
    TooManyGroups,
    greedy_groups,
    improved_groups,
)


def random_problem(n, seed, singletons="forbid"):
    rng = np.random.default_rng(seed)
    m = rng.uniform(-0.3, 1.0, (n, n))
    np.fill_diagonal(m, rng.uniform(0.5, 2.0, n))
    return parse_problem({"tasks": [f"t{i}" for i in range(n)], "objective": "max_affinity",
                          "affinity": {"onto_row_from_column": m.tolist()}, "singletons": singletons})


def reduced_costs(a, pi, mu):
    out = {}
    for size in range(2, len(a) + 1):
        for g in combinations(range(len(a)), size):
            out[g] = float(np.maximum(0.0, group_scores(a, g) - pi[list(g)]).sum() - mu)
    return out


@pytest.mark.parametrize("seed", range(4))
def test_pricing_is_exact(seed):
    rng = np.random.default_rng(seed)
    a = random_problem(8, seed).score_matrix()
    pi, mu = rng.uniform(-0.2, 0.8, 8), float(rng.uniform(0, 0.5))
    every = reduced_costs(a, pi, mu)
    pricer = GroupPricer(a)
    threshold = sorted(every.values())[-40]
    complete = pricer.groups_above(pi, mu, threshold)
    assert {g for _, g in complete} == {g for g, d in every.items() if d >= threshold}
    best = pricer.groups_above(pi, mu, -np.inf, adaptive=0.5, limit=5)
    assert best[0][0] == pytest.approx(max(every.values()))
    with pytest.raises(TooManyGroups):
        pricer.groups_above(pi, mu, -np.inf, limit=10)
    for d, g in greedy_groups(a, pi, mu, 0.0, 20):
        assert d == pytest.approx(every[g]) and d > 0


@pytest.mark.parametrize("seed", range(3))
def test_pricing_resumes_across_small_calls(seed, monkeypatch):
    """The compiled search stops every few nodes and whenever its buffer fills; resuming from its state
    finds the same groups as one uninterrupted pass."""
    rng = np.random.default_rng(10 + seed)
    a = random_problem(9, seed).score_matrix()
    pi, mu = rng.uniform(-0.2, 0.8, 9), float(rng.uniform(0, 0.5))
    every = reduced_costs(a, pi, mu)
    threshold = float(np.mean(sorted(every.values())[-61:-59]))  # between two values: no ties
    monkeypatch.setattr(pricing, "SEARCH_WORK", 7 * 9 ** 2)  # 7 nodes a call
    monkeypatch.setattr(pricing, "SEARCH_BUFFER", 3)
    complete = GroupPricer(a).groups_above(pi, mu, threshold)
    assert {g for _, g in complete} == {g for g, d in every.items() if d >= threshold}
    assert [d for d, _ in complete] == pytest.approx(sorted((every[g] for _, g in complete), reverse=True))
    best = GroupPricer(a).groups_above(pi, mu, -np.inf, adaptive=0.5, limit=4)
    assert best[0][0] == pytest.approx(max(every.values()))


def test_pricing_reads_its_deadline():
    a = random_problem(9, 0).score_matrix()
    with pytest.raises(PricingTimeout):
        GroupPricer(a).groups_above(np.zeros(9), 0.0, -np.inf, deadline=0.0)


@pytest.mark.parametrize("seed", range(4))
def test_local_search_pricing_ends_in_local_optima(seed):
    """Every group it returns has its true reduced cost above the threshold, and no single add, drop (down
    to two members) or swap raises it."""
    rng = np.random.default_rng(20 + seed)
    a = random_problem(8, seed).score_matrix()
    pi, mu = rng.uniform(-0.2, 0.8, 8), float(rng.uniform(0, 0.5))
    every = reduced_costs(a, pi, mu)
    seeds = [g for g in every if len(g) == 2][:10]
    found = improved_groups(a, pi, mu, seeds, -np.inf, 100)
    assert found and [d for d, _ in found] == sorted((d for d, _ in found), reverse=True)
    for d, g in found:
        assert d == pytest.approx(every[g])
        inside, outside = set(g), set(range(8)) - set(g)
        neighbours = [inside | {c} for c in outside] + [inside - {r} for r in inside if len(inside) > 2]
        neighbours += [(inside - {r}) | {c} for r in inside for c in outside]
        assert all(every[tuple(sorted(h))] <= d + 1e-9 for h in neighbours)
    assert max(d for d, _ in found) >= max(every[g] for g in seeds) - 1e-12


@pytest.mark.parametrize(("n", "seed", "singletons", "most_groups"),
                         [(8, 0, "forbid", 3), (8, 1, "normalized", 3), (7, 2, "forbid", 4)])
def test_column_generation_matches_enumeration(n, seed, singletons, most_groups):
    problem = random_problem(n, seed, singletons)
    for groups in range(2, most_groups + 1):
        cg = solve(problem, groups)
        bb = solve(problem, groups, solver="branch_and_bound")
        assert cg.status == bb.status == "optimal"
        assert cg.objective == pytest.approx(bb.objective, abs=1e-9)
        assert cg.gap == pytest.approx(0.0, abs=1e-9)


def test_larger_instance_is_proven_optimal():
    sol = solve(random_problem(16, 7), 5)
    assert sol.status == "optimal" and sol.gap == pytest.approx(0.0, abs=1e-9)
    assert sorted(t for n in sol.networks for t in n.serves) == sorted(f"t{i}" for i in range(16))


def test_time_limit_gives_a_valid_selection_and_bound():
    sol = solve(random_problem(18, 3), 6, time_limit=0.05)
    assert sol.status in ("optimal", "feasible")
    assert sol.bound is not None and sol.bound >= sol.objective - 1e-9
    assert sorted(t for n in sol.networks for t in n.serves) == sorted(f"t{i}" for i in range(18))


@pytest.mark.parametrize("seed", range(4))
def test_search_free_bound_is_at_least_the_best_reduced_cost(seed):
    rng = np.random.default_rng(seed)
    a = random_problem(8, seed).score_matrix()
    pi, mu = rng.uniform(-0.2, 0.8, 8), float(rng.uniform(0, 0.5))
    assert GroupPricer(a).max_reduced_cost_bound(pi, mu) >= max(reduced_costs(a, pi, mu).values()) - 1e-12
