"""Every selection a solver returns carries a proven bound on the right side of its objective, even
when a time limit ends the solve before the solver has one of its own (on a busy machine SCIP may
still be in presolve when the limit strikes: no incumbent and no finite dual bound)."""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pytest
from ortools.linear_solver import pywraplp

import grouping.selection.bip as bip
from grouping.candidates import explicit_table
from grouping.problem import parse_problem
from grouping.selection import solve
from grouping.selection.branch_and_bound import table_lower_bound
from grouping.selection.budget import CostScale


def small_explicit(seed: int, objective: str = "min_loss", n_tasks: int = 4, n_networks: int = 9):
    rng = np.random.default_rng(seed)
    tasks = [f"t{i}" for i in range(n_tasks)]
    networks = [{"tasks": [t], "cost": 1.0, "loss": {t: float(rng.uniform(0.2, 2.0))}} for t in tasks]
    groups = [g for size in range(2, n_tasks + 1) for g in combinations(tasks, size)]
    for i in rng.choice(len(groups), size=n_networks - n_tasks, replace=False):
        members = list(groups[int(i)])
        networks.append({"tasks": members, "cost": float(rng.choice([0.5, 1.0, 1.5])),
                         "loss": {t: float(rng.uniform(0.2, 2.0)) for t in members}})
    if objective == "max_score":
        for net in networks:
            net["score"] = net.pop("loss")
    return parse_problem({"tasks": tasks, "objective": objective, "networks": networks})


def small_affinity(n: int, seed: int, singletons: str = "forbid"):
    rng = np.random.default_rng(seed)
    m = rng.uniform(-0.3, 1.0, (n, n))
    np.fill_diagonal(m, rng.uniform(0.5, 2.0, n))
    return parse_problem({"tasks": [f"t{i}" for i in range(n)], "objective": "max_affinity",
                          "affinity": {"onto_row_from_column": m.tolist()}, "singletons": singletons})


def assert_bound_contract(sol, optimum: float, maximize: bool) -> None:
    """Finite bound; for a max problem ``bound >= optimum >= objective``, for a min problem the mirror."""
    assert sol.bound is not None and math.isfinite(sol.bound), sol
    assert sol.gap is not None and math.isfinite(sol.gap) and sol.gap >= 0
    tol = 1e-9 * max(1.0, abs(optimum))
    seen = (sol.bound, optimum, sol.objective)
    if maximize:
        assert sol.bound >= optimum - tol and optimum >= sol.objective - tol, seen
    else:
        assert sol.bound <= optimum + tol and optimum <= sol.objective + tol, seen


class _NoDualBound:
    """A SCIP model whose objective reports no finite dual bound (as before the root LP is solved)."""

    def __init__(self, inner: pywraplp.Solver) -> None:
        self._inner = inner

    def __getattr__(self, name: str):
        return getattr(self._inner, name)

    def Objective(self):
        inner = self._inner.Objective()

        class _Objective:
            def __getattr__(self, name: str):
                return getattr(inner, name)

            def BestBound(self) -> float:
                return -math.inf

        return _Objective()


@pytest.mark.parametrize("objective", ["min_loss", "max_score"])
@pytest.mark.parametrize("seed", range(3))
def test_bip_without_an_incumbent_returns_the_cheapest_cover_with_a_bound(monkeypatch, seed, objective):
    problem = small_explicit(seed, objective)
    budget = 3.0
    optimum = solve(problem, budget, solver="brute_force").objective
    # the time limit struck before SCIP found any selection
    monkeypatch.setattr(bip, "solve_exact", lambda solver: pywraplp.Solver.NOT_SOLVED)
    sol = solve(problem, budget, solver="bip", time_limit=0.01)
    assert sol.status == "feasible"
    assert sorted(t for n in sol.networks for t in n.serves) == sorted(problem.tasks)
    assert_bound_contract(sol, optimum, maximize=objective == "max_score")


@pytest.mark.parametrize("seed", range(3))
def test_bip_with_an_incumbent_but_no_finite_dual_bound_still_reports_one(monkeypatch, seed):
    problem = small_explicit(seed)
    optimum = solve(problem, 3.0, solver="brute_force").objective
    real_new_scip, real_solve_exact = bip.new_scip, bip.solve_exact
    monkeypatch.setattr(bip, "new_scip", lambda time_limit: _NoDualBound(real_new_scip(time_limit)))

    def stopped_early(solver) -> int:  # solves, but reports it as stopped by the limit
        real_solve_exact(solver._inner)
        return pywraplp.Solver.FEASIBLE

    monkeypatch.setattr(bip, "solve_exact", stopped_early)
    sol = solve(problem, 3.0, solver="bip", time_limit=0.01)
    assert sol.status == "feasible"
    assert_bound_contract(sol, optimum, maximize=False)


class _Clock:
    """A stand-in for the ``time`` module whose clock jumps a minute per reading: every deadline has
    passed at its first check, as when a loaded machine stalls the solver right after it starts."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        self.now += 60.0
        return self.now


@pytest.mark.parametrize("objective", ["min_loss", "max_score"])
@pytest.mark.parametrize("seed", range(3))
def test_branch_and_bound_stopped_before_any_covering_returns_the_cheapest_one(monkeypatch, seed, objective):
    import grouping.selection.branch_and_bound as bb

    problem = small_explicit(seed, objective)
    optimum = solve(problem, 3.0, solver="brute_force").objective
    monkeypatch.setattr(bb, "time", _Clock())
    sol = solve(problem, 3.0, solver="branch_and_bound", time_limit=0.5)
    assert sol.status == "feasible"
    assert sorted(t for n in sol.networks for t in n.serves) == sorted(problem.tasks)
    assert sum(n.cost for n in sol.networks) <= 3.0 + 1e-9
    assert_bound_contract(sol, optimum, maximize=objective == "max_score")


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("budget", [1.0, 2.0, 3.5, 10.0])
def test_the_search_free_bound_is_below_the_optimum(seed, budget):
    problem = small_explicit(seed, n_tasks=5, n_networks=12)
    table = explicit_table(problem)
    scale = CostScale.for_costs(list(table.costs))
    try:
        optimum = solve(problem, budget, solver="brute_force").objective
    except Exception:  # below the cheapest covering
        return
    assert table_lower_bound(table, scale, scale.budget_units(budget)) <= optimum + 1e-9


@pytest.mark.parametrize("solver", ["bip", "branch_and_bound"])
@pytest.mark.parametrize("seed", range(4))
def test_time_limited_explicit_solves_keep_the_contract(solver, seed):
    problem = small_explicit(seed, n_tasks=5, n_networks=14)
    optimum = solve(problem, 2.5, solver="brute_force").objective
    sol = solve(problem, 2.5, solver=solver, time_limit=1e-3)  # may or may not finish: both are fine
    assert_bound_contract(sol, optimum, maximize=False)


@pytest.mark.parametrize("singletons", ["forbid", "normalized"])
@pytest.mark.parametrize("seed", range(3))
def test_time_limited_affinity_solves_keep_the_contract(seed, singletons):
    problem = small_affinity(7, seed, singletons)
    for groups in (2, 3):
        optimum = solve(problem, groups, solver="brute_force").objective
        sol = solve(problem, groups, time_limit=1e-3)
        assert_bound_contract(sol, optimum, maximize=True)


def test_time_limited_affinity_solve_on_a_larger_instance_bounds_the_objective():
    problem = small_affinity(18, 3)
    sol = solve(problem, 6, time_limit=0.05)
    assert sol.bound is not None and sol.bound >= sol.objective - 1e-9
    a = problem.score_matrix()
    trivial = np.where(np.eye(len(a), dtype=bool), -np.inf, a).max(axis=1).sum()
    assert sol.bound <= trivial + 1e-9  # never weaker than the search-free bound
