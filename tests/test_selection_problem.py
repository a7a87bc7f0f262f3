"""Problem validation, budget arithmetic and error reporting (issue 2, item 6)."""

import math

import pytest

from grouping.errors import InputError
from grouping.problem import parse_problem
from grouping.selection import InfeasibleBudget, min_feasible_budget, parse_budgets, solve, solve_curve


def explicit(networks, tasks=("a", "b"), **extra):
    return {"tasks": list(tasks), "objective": "min_loss", "networks": networks, **extra}


AB = {"tasks": ["a", "b"], "loss": {"a": 1.0, "b": 2.0}}


@pytest.mark.parametrize(
    ("data", "field", "reason"),
    [
        (explicit([{"tasks": ["a", "c"], "loss": {"a": 1}}]), "networks[0].tasks", "unknown task 'c'"),
        (explicit([{**AB, "cost": math.nan}]), "networks[0].cost", "finite"),
        (explicit([{**AB, "cost": -1}]), "networks[0].cost", "greater than or equal to 0"),
        (explicit([{**AB, "cost": "1"}]), "networks[0].cost", "number"),
        (explicit([AB, {**AB, "tasks": ["b", "a"]}]), "networks[1]", "duplicate of networks[0]"),
        (explicit([{"tasks": ["a", "b"], "loss": {"a": math.nan, "b": 1}}]), "networks[0].loss.a", "finite"),
        (explicit([{"tasks": ["a"], "loss": {"a": 1}}]), "networks", "task 'b' is not served"),
        (
            explicit([{"tasks": ["a", "b"], "loss": {"a": 1, "z": 1}}]),
            "networks[0].loss",
            "not in this network",
        ),
        (explicit([{**AB, "colour": "red"}]), "networks[0].colour", "Extra inputs"),
        (explicit([AB], tasks=("a", "a")), "tasks", "twice"),
        (
            {"tasks": ["a", "b"], "objective": "max_score", "networks": [AB]},
            "networks[0].score",
            "needs a 'score'",
        ),
        (
            {
                "tasks": ["a", "b"],
                "objective": "max_affinity",
                "affinity": {"onto_row_from_column": [[1, 2], [3]]},
            },
            "affinity.onto_row_from_column",
            "square 2x2",
        ),
        (
            {
                "tasks": ["a", "b", "c"],
                "objective": "max_affinity",
                "affinity": {"onto_row_from_column": [[1, 2]] * 2},
            },
            "affinity.onto_row_from_column",
            "square 3x3",
        ),
        (
            {
                "tasks": ["a", "b"],
                "objective": "max_affinity",
                "singletons": "normalized",
                "affinity": {"onto_row_from_column": [[0, 1], [1, 1]]},
            },
            "affinity.onto_row_from_column",
            "self-affinity",
        ),
        (
            {
                "tasks": ["a", "b"],
                "objective": "max_affinity",
                "network_cost": 0,
                "affinity": {"onto_row_from_column": [[1, 1], [1, 1]]},
            },
            "network_cost",
            "greater than 0",
        ),
        (
            {"tasks": ["a"], "objective": "max_affinity", "affinity": {"onto_row_from_column": [[1]]}},
            "singletons",
            "at least two tasks",
        ),
        ({"tasks": ["a"], "objective": "maximise"}, "objective", "must be one of"),
        ([1, 2], "problem", "JSON object"),
    ],
)
def test_bad_input_names_the_field(data, field, reason):
    with pytest.raises(InputError) as err:
        parse_problem(data)
    assert err.value.field == field
    assert reason in err.value.reason


def test_unknown_top_level_keys_are_ignored_and_round_trip():
    problem = parse_problem(
        explicit([AB, {"tasks": ["a"], "cost": 0.5, "loss": {"a": 0.5}}], metadata={"x": 1})
    )
    assert problem.networks[1].size == "half" and problem.networks[0].cost == 1.0
    assert parse_problem(problem.to_dict()) == problem


def test_parse_budgets():
    assert parse_budgets("1:5:0.5") == [1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0]
    assert parse_budgets("0.1:0.3:0.1") == [0.1, 0.2, 0.3]  # exact decimal steps, stop included
    assert parse_budgets("2.5") == [2.5] and parse_budgets("1, 2,4") == [1.0, 2.0, 4.0]
    for bad in ("1:5", "1:x:1", "5:1:1", "1:5:0", "-1", "", "nan"):
        with pytest.raises(InputError) as err:
            parse_budgets(bad)
        assert err.value.field == "budgets"


def test_budget_arithmetic_is_exact():
    problem = parse_problem(
        explicit(
            [
                {"tasks": ["a", "b"], "cost": 1.5, "loss": {"a": 1, "b": 1}},
                {"tasks": ["a"], "cost": 0.1, "loss": {"a": 0}},
                {"tasks": ["b"], "cost": 0.2, "loss": {"b": 0}},
            ]
        )
    )
    assert solve(problem, 0.1 + 0.2).objective == 0.0  # 0.30000000000000004 affords 0.1 + 0.2
    assert solve(problem, 0.29999999999).objective == 0.0  # floating-point noise below 0.3 too
    with pytest.raises(InfeasibleBudget):
        solve(problem, 0.299)


def test_infeasible_budget_reports_the_minimum():
    problem = parse_problem(
        explicit(
            [
                {"tasks": ["a", "b"], "cost": 1.5, "loss": {"a": 1, "b": 1}},
                {"tasks": ["a"], "cost": 0.5, "loss": {"a": 0}},
                {"tasks": ["b"], "cost": 0.75, "loss": {"b": 0}},
            ]
        )
    )
    assert min_feasible_budget(problem) == 1.25
    with pytest.raises(InfeasibleBudget) as err:
        solve(problem, 1.0)
    assert err.value.field == "budget" and err.value.details == {"min_budget": 1.25}
    assert "1.25" in err.value.reason
    curve = solve_curve(problem, [1.0, 1.25])
    assert [s.status for s in curve] == ["infeasible", "optimal"]
    assert curve[0].to_dict()["networks"] == [] and curve[0].objective is None


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"solver": "gurobi"}, "solver"),
        ({"time_limit": 0}, "time_limit"),
        ({"time_limit": math.inf}, "time_limit"),
    ],
)
def test_bad_solver_options(kwargs, field):
    problem = parse_problem(explicit([AB]))
    with pytest.raises(InputError) as err:
        solve(problem, 1.0, **kwargs)
    assert err.value.field == field


@pytest.mark.parametrize("budget", [math.nan, -1.0, math.inf, "2"])
def test_bad_budget(budget):
    with pytest.raises(InputError) as err:
        solve(parse_problem(explicit([AB])), budget)
    assert err.value.field == "budget"


def test_enumerating_solvers_refuse_large_affinity_problems():
    n = 12
    problem = parse_problem(
        {
            "tasks": [f"t{i}" for i in range(n)],
            "objective": "max_affinity",
            "affinity": {"onto_row_from_column": [[1.0] * n for _ in range(n)]},
        }
    )
    for solver in ("branch_and_bound", "brute_force"):
        with pytest.raises(InputError) as err:
            solve(problem, 3, solver=solver)
        assert err.value.field == "solver" and "'bip'" in err.value.reason


def test_solution_to_dict_shape():
    sol = solve(parse_problem(explicit([AB, {"tasks": ["a"], "cost": 0.5, "loss": {"a": 0.25}}])), 1.5)
    out = sol.to_dict()
    assert list(out) == [
        "status",
        "objective",
        "bound",
        "gap",
        "networks",
        "per_task",
        "solve_seconds",
        "solver",
        "budget",
        "proved_by",
    ]
    assert sorted(out["networks"], key=lambda n: n["size"]) == [
        {"trains": ["a", "b"], "serves": ["b"], "size": "full", "cost": 1.0},
        {"trains": ["a"], "serves": ["a"], "size": "half", "cost": 0.5},
    ]
    assert out["per_task"] == {"a": 0.25, "b": 2.0} and out["objective"] == 2.25
