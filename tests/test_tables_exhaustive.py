"""Acceptance (issue 4): the exhaustive method on a 4-task suite trains 15 + 4 networks, and
``taskgrouper solve`` on its table returns the same optimum as ``brute_force``."""

from __future__ import annotations

import json

import pytest

from grouping.problem import parse_problem
from grouping.selection import solve
from grouping.tables import NetworkTable
from service.cli import main

TASKS = "c0_t0,c0_t1,c1_t0,c1_t1"


@pytest.fixture(scope="module")
def exhaustive(tmp_path_factory):
    out = tmp_path_factory.mktemp("tables")
    problem, table = out / "table.json", out / "full.json"
    code = main(["tables", "--dataset", "synthetic", "--tasks", TASKS, "--option", "n_samples=300",
                 "--method", "exhaustive", "--epochs", "2", "--workers", "2", "--quiet",
                 "--out", str(problem), "--save-table", str(table)])
    assert code == 0
    return json.loads(problem.read_text()), NetworkTable.from_dict(json.loads(table.read_text()))


def test_trains_every_group_plus_half_size_singles(exhaustive):
    problem, table = exhaustive
    full = [n for n in problem["networks"] if n["size"] == "full"]
    half = [n for n in problem["networks"] if n["size"] == "half"]
    assert len(full) == 15 and len(half) == 4
    trained = {frozenset(r.tasks) for r in table.rows if r.size == "full"}
    assert {frozenset(n["tasks"]) for n in full} == trained
    assert all(len(n["tasks"]) == 1 and n["cost"] == 0.5 for n in half)
    assert all(set(n["loss"]) == set(n["tasks"]) for n in problem["networks"])
    assert all(set(r.test_loss) == set(r.tasks) and r.epochs_run >= 1 for r in table.rows)


@pytest.mark.parametrize("budget", [1, 1.5, 2, 2.5, 3, 4])
def test_solve_cli_matches_brute_force(exhaustive, tmp_path, capsys, budget):
    problem, _ = exhaustive
    path = tmp_path / "p.json"
    path.write_text(json.dumps(problem))
    capsys.readouterr()
    assert main(["solve", str(path), "--budget", str(budget)]) == 0
    via_cli = json.loads(capsys.readouterr().out)
    brute = solve(parse_problem(problem), budget, solver="brute_force")
    assert via_cli["objective"] == pytest.approx(brute.objective, rel=1e-9)
    assert via_cli["status"] == "optimal"


def test_bad_method_and_dataset_are_clear_errors(capsys):
    assert main(["tables", "--dataset", "no-such-data", "--out", "x.json"]) == 2
    assert "dataset" in capsys.readouterr().err
    assert main(["tables", "--dataset", "synthetic", "--tasks", "c0_t0,nope", "--out", "x.json"]) == 2
    assert "no task 'nope'" in capsys.readouterr().err
