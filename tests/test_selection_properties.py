"""Property tests: every solver, and the ``auto`` dispatcher on both of its branches, agrees with
``brute_force`` on small explicit and affinity instances, returns a feasible selection and says which
method proved it; a curve answered by one subset DP equals the budgets solved one by one."""

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import grouping.selection.dispatch as dispatch
from grouping.candidates import group_scores
from grouping.problem import AffinityProblem, ExplicitProblem, parse_problem
from grouping.selection import SOLVERS, InfeasibleBudget, min_feasible_budget, solve, solve_curve

PROPERTY_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
#: costs with a zero, thirds (a cost scale of 12) and more than a full network
COSTS = [0.0, 0.25, 1 / 3, 0.5, 1.0, 1.5]
#: the concrete methods a solution may name in ``proved_by``
METHODS = {"bip", "subset_dp", "branch_and_bound", "brute_force", "column_generation"}


@st.composite
def explicit_problems(draw, max_tasks=5, max_networks=8):
    n = draw(st.integers(1, max_tasks))
    tasks = [f"t{i}" for i in range(n)]
    objective = draw(st.sampled_from(["min_loss", "max_score"]))
    key = "loss" if objective == "min_loss" else "score"
    networks, seen = [], set()
    for _ in range(draw(st.integers(1, max_networks))):
        trains = draw(st.lists(st.sampled_from(tasks), min_size=1, max_size=n, unique=True))
        served = draw(st.lists(st.sampled_from(trains), min_size=1, max_size=len(trains), unique=True))
        cost = draw(st.sampled_from(COSTS))
        if (frozenset(trains), cost < 1) in seen:
            continue
        seen.add((frozenset(trains), cost < 1))
        values = {t: draw(st.floats(-1, 1, allow_nan=False).map(lambda v: round(v, 3))) for t in served}
        networks.append({"tasks": trains, "cost": cost, "size": "half" if cost < 1 else "full", key: values})
    assume({t for net in networks for t in net[key]} == set(tasks))
    return parse_problem({"tasks": tasks, "objective": objective, "networks": networks})


@st.composite
def affinity_problems(draw):
    n = draw(st.integers(2, 5))
    singletons = draw(st.sampled_from(["forbid", "normalized"]))
    m = draw(
        st.lists(
            st.lists(st.floats(-1, 2, allow_nan=False).map(lambda v: round(v, 3)), min_size=n, max_size=n),
            min_size=n,
            max_size=n,
        )
    )
    for i in range(n):
        m[i][i] = draw(st.floats(0.1, 2).map(lambda v: round(v, 3)))
    return parse_problem(
        {
            "tasks": [f"t{i}" for i in range(n)],
            "objective": "max_affinity",
            "affinity": {"onto_row_from_column": m},
            "singletons": singletons,
            "network_cost": draw(st.sampled_from([1.0, 0.5])),
            "half_singletons": draw(st.booleans()),
        }
    )


def served_value(problem, network, task):
    if isinstance(problem, ExplicitProblem):
        net = next(n for n in problem.networks if n.key == (frozenset(network.trains), network.size))
        return net.values[task]
    if network.size == "half":
        return 0.0
    members = tuple(problem.tasks.index(t) for t in network.trains)
    return group_scores(problem.score_matrix(), members)[members.index(problem.tasks.index(task))]


def assert_feasible(problem, sol, budget):
    assert sum(n.cost for n in sol.networks) <= budget + 1e-9
    served = [t for n in sol.networks for t in n.serves]
    assert sorted(served) == sorted(problem.tasks)  # every task served exactly once
    for net in sol.networks:
        assert set(net.serves) <= set(net.trains)
        if isinstance(problem, AffinityProblem) and problem.singletons == "forbid" and net.size == "full":
            assert len(net.trains) >= 2
        for t in net.serves:
            assert sol.per_task[t] == pytest.approx(served_value(problem, net, t), abs=1e-9)
    assert sol.objective == pytest.approx(sum(sol.per_task.values()), abs=1e-9)


def assert_optimal(problem, sol, reference, budget, solver):
    assert sol.status == "optimal"
    assert sol.solver == solver and sol.proved_by in METHODS
    assert sol.objective == pytest.approx(reference.objective, abs=1e-7)
    assert sol.bound == pytest.approx(sol.objective, abs=1e-6)
    assert_feasible(problem, sol, budget)


def check_all_solvers(problem, budget):
    if budget < min_feasible_budget(problem) - 1e-12:
        for solver in SOLVERS:
            with pytest.raises(InfeasibleBudget) as err:
                solve(problem, budget, solver=solver)
            assert err.value.field == "budget" and err.value.details["min_budget"] == min_feasible_budget(
                problem
            )
        return
    reference = solve(problem, budget, solver="brute_force")
    assert reference.status == "optimal" and reference.proved_by == "brute_force"
    for solver in SOLVERS:
        assert_optimal(problem, solve(problem, budget, solver=solver), reference, budget, solver)


BUDGETS = st.sampled_from(np.arange(0.25, 4.01, 0.25).round(2).tolist() + [1 / 3, 2 / 3, 5 / 3])


@PROPERTY_SETTINGS
@given(explicit_problems(), BUDGETS)
def test_explicit_solvers_agree(problem, budget):
    check_all_solvers(problem, budget)


@PROPERTY_SETTINGS
@given(affinity_problems(), st.integers(1, 4), st.booleans())
def test_affinity_solvers_agree(problem, groups, half):
    check_all_solvers(problem, (groups + 0.5 * half) * problem.network_cost)


@pytest.mark.parametrize("limit", [0.0, float("inf")], ids=["bip", "subset_dp"])
@PROPERTY_SETTINGS
@given(problem=explicit_problems(max_tasks=6, max_networks=10), budget=BUDGETS)
def test_auto_agrees_with_brute_force_on_either_side_of_its_cutoff(limit, problem, budget):
    """``auto`` proves the optimum whichever method its cutoff picks, and names that method."""
    assume(budget >= min_feasible_budget(problem) - 1e-12)
    reference = solve(problem, budget, solver="brute_force")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dispatch, "SUBSET_DP_MAX_WORK", limit)
        sol = solve(problem, budget, solver="auto")
    assert_optimal(problem, sol, reference, budget, "auto")
    assert sol.proved_by == ("bip" if limit == 0 else "subset_dp")


@pytest.mark.parametrize("solver", ["auto", "subset_dp"])
@PROPERTY_SETTINGS
@given(problem=explicit_problems(max_tasks=6, max_networks=10),
       budgets=st.lists(BUDGETS, min_size=1, max_size=6))
def test_a_curve_from_one_dynamic_program_equals_each_budget_solved_alone(solver, problem, budgets):
    curve = solve_curve(problem, budgets, solver=solver)
    assert [sol.budget for sol in curve] == budgets
    for budget, sol in zip(budgets, curve, strict=True):
        if budget < min_feasible_budget(problem) - 1e-12:
            assert sol.status == "infeasible" and sol.networks == []
            continue
        assert_optimal(problem, sol, solve(problem, budget, solver="brute_force"), budget, solver)
        assert sol.proved_by == "subset_dp"
