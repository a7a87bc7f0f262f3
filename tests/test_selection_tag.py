"""Acceptance (issue 2): TAG's Taskonomy groupings, Table 7 of 002_c72e544f74afbb80.txt ("Transference")."""

import json
from pathlib import Path

import pytest

from grouping.problem import parse_problem
from grouping.selection import SOLVERS, solve

#: copy of ../shared/data/tag2021/taskonomy_tag.json (published by Fifty et al.), shipped with the tests
DATA = Path(__file__).parent / "data" / "selection" / "tag2021" / "taskonomy_tag.json"
SHORT = {"ss_l": "s", "depth_l": "d", "norm_l": "n", "key_l": "k", "edge2d_l": "t"}


@pytest.fixture(scope="module")
def problem():
    raw = json.loads(DATA.read_text())
    return parse_problem({"tasks": raw["tasks"], "objective": "max_affinity", "singletons": "forbid",
                          "affinity": {"onto_row_from_column": raw["affinity_onto_row_from_column"]},
                          "network_cost": 1.0, "metadata": {"source": "TAG"}})


def groups(sol):
    return sorted("".join(sorted(SHORT[t] for t in n.trains)) for n in sol.networks)


@pytest.mark.parametrize("solver", SOLVERS)
def test_table7_transference(problem, solver):
    two, three = solve(problem, 2, solver=solver), solve(problem, 3, solver=solver)
    assert groups(two) == ["dns", "kt"]
    assert groups(three) == ["dn", "ds", "kt"]
    assert two.status == three.status == "optimal"
    served_by = {t: "".join(sorted(SHORT[m] for m in n.trains)) for n in three.networks for t in n.serves}
    assert served_by["depth_l"] == "ds" and served_by["norm_l"] == "dn"  # d serves from {s,d}


def test_score_is_mean_affinity_onto_member(problem):
    raw = json.loads(DATA.read_text())["affinity_onto_row_from_column"]
    sol = solve(problem, 2)
    # keypoints in {k, t}: the affinity onto keypoints (row 3) from edges (column 4)
    assert sol.per_task["key_l"] == pytest.approx(raw[3][4])
    assert sol.per_task["ss_l"] == pytest.approx((raw[0][1] + raw[0][2]) / 2)


def test_normalized_singletons_may_serve_alone(problem):
    normalized = problem.model_copy(update={"singletons": "normalized"})
    sol = solve(normalized, 5, solver="brute_force")
    assert solve(normalized, 5).objective == pytest.approx(sol.objective)
    assert all(v >= 0 for v in sol.per_task.values())
