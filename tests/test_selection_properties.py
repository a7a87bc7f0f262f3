"""Property tests (issue 2): every solver agrees with ``brute_force`` and returns a feasible selection."""

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from grouping.candidates import group_scores
from grouping.problem import AffinityProblem, ExplicitProblem, parse_problem
from grouping.selection import SOLVERS, InfeasibleBudget, min_feasible_budget, solve

PROPERTY_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def explicit_problems(draw):
    n = draw(st.integers(1, 4))
    tasks = [f"t{i}" for i in range(n)]
    objective = draw(st.sampled_from(["min_loss", "max_score"]))
    key = "loss" if objective == "min_loss" else "score"
    networks, seen = [], set()
    for _ in range(draw(st.integers(1, 7))):
        trains = draw(st.lists(st.sampled_from(tasks), min_size=1, max_size=n, unique=True))
        served = draw(st.lists(st.sampled_from(trains), min_size=1, max_size=len(trains), unique=True))
        cost = draw(st.sampled_from([0.25, 0.5, 1.0, 1.5]))
        if (frozenset(trains), cost < 1) in seen:
            continue
        seen.add((frozenset(trains), cost < 1))
        values = {t: draw(st.floats(-1, 1, allow_nan=False).map(lambda v: round(v, 3))) for t in served}
        networks.append({"tasks": trains, "cost": cost, key: values})
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
        }
    )


def served_value(problem, network, task):
    if isinstance(problem, ExplicitProblem):
        net = next(n for n in problem.networks if n.key == (frozenset(network.trains), network.size))
        return net.values[task]
    members = tuple(problem.tasks.index(t) for t in network.trains)
    return group_scores(problem.score_matrix(), members)[members.index(problem.tasks.index(task))]


def assert_feasible(problem, sol, budget):
    assert sum(n.cost for n in sol.networks) <= budget + 1e-9
    served = [t for n in sol.networks for t in n.serves]
    assert sorted(served) == sorted(problem.tasks)  # every task served exactly once
    for net in sol.networks:
        assert set(net.serves) <= set(net.trains)
        if isinstance(problem, AffinityProblem) and problem.singletons == "forbid":
            assert len(net.trains) >= 2
        for t in net.serves:
            assert sol.per_task[t] == pytest.approx(served_value(problem, net, t), abs=1e-9)
    assert sol.objective == pytest.approx(sum(sol.per_task.values()), abs=1e-9)


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
    assert reference.status == "optimal"
    for solver in SOLVERS:
        sol = solve(problem, budget, solver=solver)
        assert sol.status == "optimal"
        assert sol.objective == pytest.approx(reference.objective, abs=1e-7)
        assert sol.bound == pytest.approx(sol.objective, abs=1e-6)
        assert_feasible(problem, sol, budget)


@PROPERTY_SETTINGS
@given(explicit_problems(), st.sampled_from(np.arange(0.25, 4.01, 0.25).round(2).tolist()))
def test_explicit_solvers_agree(problem, budget):
    check_all_solvers(problem, budget)


@PROPERTY_SETTINGS
@given(affinity_problems(), st.integers(1, 4))
def test_affinity_solvers_agree(problem, groups):
    check_all_solvers(problem, groups * problem.network_cost)
