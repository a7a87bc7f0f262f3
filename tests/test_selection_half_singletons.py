"""Half-size single-task networks in affinity problems (``"half_singletons": true``): a task may be served
alone by a network costing ``network_cost / 2`` that scores 0 onto it, with every solver."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grouping.candidates import group_scores
from grouping.errors import InputError
from grouping.problem import parse_problem
from grouping.selection import SOLVERS, InfeasibleBudget, min_feasible_budget, solve, solve_curve

PROPERTY_SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def affinity(m, singletons="forbid", half=True, cost=1.0, tasks=None):
    return parse_problem({"tasks": tasks or [f"t{i}" for i in range(len(m))], "objective": "max_affinity",
                          "affinity": {"onto_row_from_column": m}, "singletons": singletons,
                          "network_cost": cost, "half_singletons": half})


# a and b help each other, so do c and d; e is hurt by every task and hurts every task
FIVE = [
    [1.0, 1.0, 0.0, 0.0, -1.0],
    [1.0, 1.0, 0.0, 0.0, -1.0],
    [0.0, 0.0, 1.0, 1.0, -1.0],
    [0.0, 0.0, 1.0, 1.0, -1.0],
    [-1.0, -1.0, -1.0, -1.0, 1.0],
]


@pytest.mark.parametrize("singletons", ["forbid", "normalized"])
@pytest.mark.parametrize("solver", SOLVERS)
def test_budget_two_and_a_half_buys_two_groups_and_a_half_singleton(singletons, solver):
    # {a,b} + {c,d} + e alone on a half network: 2 + 2 + 0 = 4, cost 1 + 1 + 0.5
    sol = solve(affinity(FIVE, singletons, tasks=list("abcde")), 2.5, solver=solver)
    assert sol.status == "optimal" and sol.objective == pytest.approx(4.0) and sol.bound == pytest.approx(4.0)
    nets = sorted((n.trains, n.serves, n.size, n.cost) for n in sol.networks)
    assert nets == [(["a", "b"], ["a", "b"], "full", 1.0), (["c", "d"], ["c", "d"], "full", 1.0),
                    (["e"], ["e"], "half", 0.5)]
    assert sol.per_task == pytest.approx({"a": 1.0, "b": 1.0, "c": 1.0, "d": 1.0, "e": 0.0})
    # without the option the half budget unit is wasted: under forbid e joins a group ({a,b} + {c,d,e}:
    # 2 + 0 + 0 - 1); under normalized e takes a full network ({a,b,c,d} + {e}: 4 * 1/3 + 0)
    without = solve(affinity(FIVE, singletons, half=False), 2.5, solver=solver).objective
    assert without == pytest.approx(1.0 if singletons == "forbid" else 4 / 3)


@pytest.mark.parametrize("solver", SOLVERS)
def test_half_singleton_cost_follows_network_cost(solver):
    sol = solve(affinity(FIVE, cost=2.0, tasks=list("abcde")), 5.0, solver=solver)
    assert sol.objective == pytest.approx(4.0)
    assert sorted((n.size, n.cost) for n in sol.networks) == [("full", 2.0), ("full", 2.0), ("half", 1.0)]


@pytest.mark.parametrize(
    ("m", "singletons", "half", "cost", "expected"),
    [
        (FIVE, "forbid", True, 1.0, 1.0),  # the group of all tasks beats five half networks (2.5)
        (FIVE, "normalized", True, 2.0, 2.0),
        ([[1.0, 0.5], [0.5, 1.0]], "forbid", True, 1.0, 1.0),  # tie: one group or two half networks
        ([[1.0]], "forbid", True, 1.0, 0.5),  # one task: its half network is the cheapest covering
        ([[1.0]], "normalized", True, 3.0, 1.5),
        ([[1.0]], "normalized", False, 3.0, 3.0),
    ],
)
def test_min_feasible_budget(m, singletons, half, cost, expected):
    problem = affinity(m, singletons, half, cost)
    assert min_feasible_budget(problem) == expected
    for solver in SOLVERS:
        assert solve(problem, expected, solver=solver).status == "optimal"
        with pytest.raises(InfeasibleBudget) as err:
            solve(problem, expected - cost / 2, solver=solver)
        assert err.value.details["min_budget"] == expected


def test_single_task_served_by_its_half_network():
    sol = solve(affinity([[1.0]]), 0.5)
    assert [(n.trains, n.serves, n.size, n.cost) for n in sol.networks] == [(["t0"], ["t0"], "half", 0.5)]
    assert sol.objective == 0.0


def test_curve_at_half_steps():
    curve = solve_curve(affinity(FIVE), [0.5, 1.0, 1.5, 2.0, 2.5])
    assert curve[0].status == "infeasible"
    assert [round(s.objective, 9) for s in curve[1:]] == [round(solve(affinity(FIVE), b).objective, 9)
                                                           for b in (1.0, 1.5, 2.0, 2.5)]
    assert curve[-1].objective == pytest.approx(4.0)


def test_option_round_trips_and_is_strict():
    problem = affinity(FIVE)
    assert problem.to_dict()["half_singletons"] is True
    assert parse_problem(problem.to_dict()) == problem
    assert affinity(FIVE, half=False).to_dict()["half_singletons"] is False
    with pytest.raises(InputError) as err:
        affinity(FIVE, half="yes")
    assert err.value.field == "half_singletons"
    with pytest.raises(InputError) as err:
        affinity([[1.0]], half=False)  # forbid with one task and no half network: nothing may serve it
    assert err.value.field == "singletons"


@st.composite
def half_singleton_problems(draw):
    n = draw(st.integers(1, 5))
    m = [[draw(st.floats(-1, 2).map(lambda v: round(v, 3))) for _ in range(n)] for _ in range(n)]
    for i in range(n):
        m[i][i] = draw(st.floats(0.1, 2).map(lambda v: round(v, 3)))
    singletons = draw(st.sampled_from(["forbid", "normalized"]))
    return affinity(m, singletons, True, draw(st.sampled_from([1.0, 0.5])))


def check_selection(problem, sol, budget):
    """A feasible selection whose reported values are the networks' scores."""
    a = problem.score_matrix()
    cost = problem.network_cost
    assert sum(n.cost for n in sol.networks) <= budget + 1e-9
    assert sorted(t for n in sol.networks for t in n.serves) == sorted(problem.tasks)
    for net in sol.networks:
        members = tuple(problem.tasks.index(t) for t in net.trains)
        if net.size == "half":
            assert net.cost == cost / 2 and net.trains == net.serves and len(net.trains) == 1
        else:  # a full-size singleton is dominated by the half-size one and never offered
            assert net.size == "full" and net.cost == cost and len(net.trains) >= 2
        for t in net.serves:
            expected = group_scores(a, members)[net.trains.index(t)]
            assert sol.per_task[t] == pytest.approx(expected, abs=1e-9)
    assert sol.objective == pytest.approx(sum(sol.per_task.values()), abs=1e-9)


@PROPERTY_SETTINGS
@given(half_singleton_problems(), st.integers(1, 8))
def test_solvers_agree_with_brute_force(problem, halves):
    budget = halves * problem.network_cost / 2
    if budget < min_feasible_budget(problem):
        for solver in SOLVERS:
            with pytest.raises(InfeasibleBudget):
                solve(problem, budget, solver=solver)
        return
    reference = solve(problem, budget, solver="brute_force")
    assert reference.status == "optimal"
    for solver in SOLVERS:
        sol = solve(problem, budget, solver=solver)
        assert sol.status == "optimal"
        assert sol.objective == pytest.approx(reference.objective, abs=1e-7)
        assert sol.bound == pytest.approx(sol.objective, abs=1e-6)
        check_selection(problem, sol, budget)
    if len(problem.tasks) >= 2 and budget >= problem.network_cost:  # more candidates never hurt
        without = problem.model_copy(update={"half_singletons": False})
        assert reference.objective >= solve(without, budget, solver="brute_force").objective - 1e-9


@pytest.mark.parametrize("singletons", ["forbid", "normalized"])
def test_column_generation_matches_branch_and_bound_on_seven_tasks(singletons):
    rng = np.random.default_rng(3)
    m = rng.uniform(-0.6, 1.0, (7, 7)).round(3)
    np.fill_diagonal(m, 1.0)
    problem = affinity(m.tolist(), singletons)
    sizes = set()
    for budget in (1.5, 2.5, 3.5):
        bip = solve(problem, budget)
        assert bip.status == "optimal"
        assert bip.objective == pytest.approx(solve(problem, budget, solver="branch_and_bound").objective)
        check_selection(problem, bip, budget)
        sizes |= {n.size for n in bip.networks}
    assert sizes == {"full", "half"}
