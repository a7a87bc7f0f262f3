"""Acceptance (issue 2): Standley et al. 2020, Table 4, reproduced from the published loss tables."""

from pathlib import Path

import pytest

from grouping.candidates import evaluate_selection, higher_order_approximation, read_standley_table
from grouping.selection import SOLVERS, parse_budgets, solve, solve_curve

#: copies of ../shared/data/standley2020 (published by Standley et al.), shipped with the tests
DATA = Path(__file__).parent / "data" / "selection" / "standley2020"

BUDGETS = parse_budgets("1:5:0.5")
#: Table 4, "Ours Optimal" and "Ours (ESA)": total test loss at budgets 1, 1.5, ..., 5
OPTIMAL = [0.503, 0.461, 0.452, 0.446, 0.442, 0.439, 0.436, 0.436, 0.435]
ESA = [0.503, 0.487, 0.467, 0.461, 0.457, 0.451, 0.451, 0.447, 0.447]


def table(name):
    return read_standley_table(DATA / f"setting1_{name}.tsv")


def reported_total(sol, test_table):
    return round(sum(evaluate_selection(sol.networks, test_table).values()), 3)


@pytest.fixture(scope="module")
def test_table():
    return table("test")


def label(sol):
    return sorted("".join(n.trains) + ("/2" if n.size == "half" else "") for n in sol.networks)


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize(("select_on", "expected"), [("val", OPTIMAL), ("esa", ESA)])
def test_table4_curve(solver, select_on, expected, test_table):
    curve = solve_curve(table(select_on), BUDGETS, solver=solver)
    assert [s.status for s in curve] == ["optimal"] * len(BUDGETS)
    assert [reported_total(s, test_table) for s in curve] == expected
    for sol in curve:
        assert sum(n.cost for n in sol.networks) <= sol.budget + 1e-12


def test_budget_2_5_selection():
    sol = solve(table("val"), 2.5)
    assert label(sol) == ["n/2", "nke", "sdn"]
    assert sol.status == "optimal" and sol.gap == 0.0
    assert sol.per_task["n"] == pytest.approx(0.08965)  # normals served by the half-size network
    assert sol.objective == pytest.approx(sum(sol.per_task.values()))


def test_budget_1_is_one_five_task_network():
    assert label(solve(table("val"), 1.0)) == ["sdnke"]
    assert label(solve(table("val"), 1.5)) == ["dnke", "s/2"]  # §6: half-size SemSeg + the other four


def test_hoa_predictions_from_pairs():
    hoa = higher_order_approximation(table("val"))
    assert len(hoa.networks) == 36
    val = {frozenset(n.tasks): n for n in table("val").networks if n.size == "full"}
    sdn = next(n for n in hoa.networks if set(n.tasks) == {"s", "d", "n"})
    expected_s = (val[frozenset("sd")].loss["s"] + val[frozenset("sn")].loss["s"]) / 2
    assert sdn.loss["s"] == pytest.approx(expected_s)


def test_hoa_curve(test_table):
    """Table 4, "Ours (HOA)" at budgets 1..3.5 and 5 (4 and 4.5 differ: README, selection section)."""
    budgets = [*BUDGETS[:6], 5.0]
    curve = solve_curve(higher_order_approximation(table("val")), budgets)
    expected = [0.503, 0.461, 0.455, 0.451, 0.449, 0.445, 0.442]
    assert [reported_total(s, test_table) for s in curve] == expected
