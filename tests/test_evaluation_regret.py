"""Grouping quality (regret.py, groupings.py) on a hand-checkable table and on Standley's test table.

Tasks a, b, c and six networks: abc (losses 3, 3, 3), ab (1, 2), full singles a (2.5), b (1), c (2),
and a half-size c (2.5). Every grouping (partition + networks), with cost and total loss:
    {abc}: 1, 9     {ab}{c}: 2, 5     {ab}{c½}: 1.5, 5.5     {a}{b}{c}: 3, 5.5     {a}{b}{c½}: 2.5, 6
(no bc or ac networks, so partitions using them have no grouping). Optimal selections may overlap:
    B=1 {abc} 9 · B=1.5 {ab, c½} 5.5 · B=2 {ab, c} 5 · B=2.5 {ab, b, c½} 4.5 · B=3 {ab, b, c} 4
"""

from pathlib import Path

import pytest

from grouping.candidates import read_standley_table
from grouping.errors import InputError
from grouping.evaluation.groupings import all_groupings, feasible
from grouping.evaluation.regret import GroupingQuality, grouping_quality, quality_curve, selection_total
from grouping.problem import parse_problem
from grouping.selection import InfeasibleBudget, solve

TABLE = {
    "tasks": ["a", "b", "c"],
    "objective": "min_loss",
    "networks": [
        {"tasks": ["a", "b", "c"], "cost": 1.0, "loss": {"a": 3, "b": 3, "c": 3}},
        {"tasks": ["a", "b"], "cost": 1.0, "loss": {"a": 1, "b": 2}},
        {"tasks": ["a"], "cost": 1.0, "loss": {"a": 2.5}},
        {"tasks": ["b"], "cost": 1.0, "loss": {"b": 1}},
        {"tasks": ["c"], "cost": 1.0, "loss": {"c": 2}},
        {"tasks": ["c"], "cost": 0.5, "size": "half", "loss": {"c": 2.5}},
    ],
}
AFFINITY = {"onto_row_from_column": [[1, 0], [0, 1]]}
STANDLEY_TEST = Path("/work/shared/data/standley2020/setting1_test.tsv")


def net(*tasks, size="full"):
    cost = 0.5 if size == "half" else 1.0
    return {"trains": list(tasks), "serves": list(tasks), "size": size, "cost": cost}


def test_all_groupings_of_the_hand_table():
    found = sorted((g.cost, g.total) for g in all_groupings(parse_problem(TABLE)))
    assert found == [(1.0, 9.0), (1.5, 5.5), (2.0, 5.0), (2.5, 6.0), (3.0, 5.5)]
    assert sorted(g.total for g in feasible(all_groupings(parse_problem(TABLE)), 2.0)) == [5.0, 5.5, 9.0]


def test_selection_total_serves_each_task_from_its_best_selected_network():
    problem = parse_problem(TABLE)
    assert selection_total(problem, [net("a", "b", "c"), net("b")]) == 3 + 1 + 3
    assert selection_total(problem, [net("a", "b"), net("b"), net("c", size="half")]) == 1 + 1 + 2.5


@pytest.mark.parametrize(
    ("budget", "selection", "expected"),
    [
        # budget, method's networks, (method, optimal, random, pessimal, regret)
        (1.0, [net("a", "b", "c")], (9, 9, 9, 9, None)),  # one grouping only: regret undefined
        (1.5, [net("a", "b", "c"), net("c", size="half")], (8.5, 5.5, 7.25, 9, 3 / 1.75)),
        (2.0, [net("a", "b", "c"), net("b")], (7, 5, 6.5, 9, 2 / 1.5)),
        (2.5, [net("a"), net("b"), net("c", size="half")], (6, 4.5, 25.5 / 4, 9, 1.5 / 1.875)),
        (3.0, [net("a"), net("b"), net("c")], (5.5, 4, 6.2, 9, 1.5 / 2.2)),
        (3.0, [net("a", "b"), net("b"), net("c")], (4, 4, 6.2, 9, 0.0)),
    ],
)
def test_grouping_quality_by_hand(budget, selection, expected):
    q = grouping_quality(TABLE, selection, budget)
    assert (q.method, q.optimal, q.random, q.pessimal) == pytest.approx(expected[:4])
    assert q.regret == (None if expected[4] is None else pytest.approx(expected[4]))
    assert q.to_dict()["budget"] == budget


def test_quality_curve_accepts_solutions_and_an_optimal_solution_has_zero_regret():
    problem = parse_problem(TABLE)
    budgets = [1.5, 2.0, 2.5, 3.0]
    curve = quality_curve(problem, {b: solve(problem, b) for b in budgets})
    assert [q.budget for q in curve] == budgets
    assert all(isinstance(q, GroupingQuality) and q.regret == pytest.approx(0.0) for q in curve)
    assert all(q.optimal <= q.random <= q.pessimal for q in curve)


def test_standley_test_table_groupings():
    problem = read_standley_table(STANDLEY_TEST)
    groupings = all_groupings(problem)
    # set partitions of 5 tasks where each singleton block is full- or half-size: 203 groupings
    assert len(groupings) == 203
    assert len(feasible(groupings, 1.0)) == 1  # the all-task network (two halves cannot cover 5 tasks)
    budgets = [1.0, 2.5, 5.0]
    curve = quality_curve(problem, {b: solve(problem, b) for b in budgets})
    assert curve[0].optimal == curve[0].random == curve[0].pessimal == pytest.approx(0.503, abs=5e-4)
    assert curve[0].regret is None
    for q in curve[1:]:
        assert q.optimal < q.random < q.pessimal
        assert q.regret == pytest.approx(0.0)


@pytest.mark.parametrize(
    ("table", "selection", "budget", "field"),
    [
        (TABLE, [net("a", "b", "c"), net("b")], 1.5, "selection"),  # costs 2 > 1.5
        (TABLE, [net("a", "c")], 2.0, "selection"),  # no such network
        (TABLE, [net("a", "b")], 2.0, "selection"),  # c is not computed
        (TABLE, [{"trains": ["a"]}], 2.0, "selection[0].serves"),
        (TABLE, [net("a", "b", "c")], 0.5, "budget"),
        ({"tasks": ["a", "b"], "objective": "max_affinity", "affinity": AFFINITY},
         [net("a", "b")], 1.0, "objective"),
        ({**TABLE, "networks": [{**TABLE["networks"][0], "cost": float("nan")}]}, [net("a", "b", "c")], 1.0,
         "networks[0].cost"),
    ],
)
def test_bad_input_names_the_field(table, selection, budget, field):
    with pytest.raises(InputError) as err:
        grouping_quality(table, selection, budget)
    assert err.value.field == field


def test_budget_below_the_cheapest_covering_reports_the_minimum():
    with pytest.raises(InfeasibleBudget) as err:
        grouping_quality(TABLE, [], 0.5)
    assert err.value.details["min_budget"] == 1.0


def test_too_many_tasks_to_enumerate():
    tasks = [f"t{i}" for i in range(9)]
    table = {"tasks": tasks, "networks": [{"tasks": tasks, "cost": 1, "loss": dict.fromkeys(tasks, 1.0)}]}
    with pytest.raises(InputError) as err:
        grouping_quality(table, [net(*tasks)], 1.0)
    assert err.value.field == "tasks"


def test_standley_esa_selection_measured_on_the_test_table():
    """ESA selects on short-training losses; on test losses its totals are Table 4's ESA row (003_…)."""
    esa = read_standley_table(STANDLEY_TEST.with_name("setting1_esa.tsv"))
    test = read_standley_table(STANDLEY_TEST)
    curve = quality_curve(test, {b: solve(esa, b) for b in (1.5, 2.5)})
    assert [round(q.method, 3) for q in curve] == [0.487, 0.461]
    assert curve[0].regret > 1  # at 1.5 ESA's pick is worse than a random grouping on average
    assert 0 < curve[1].regret < 1
