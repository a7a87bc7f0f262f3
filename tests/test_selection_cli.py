"""``taskgrouper solve`` and ``taskgrouper import-standley`` through the real console entry point."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from service.cli import main

STANDLEY = Path(__file__).parent / "data" / "selection" / "standley2020"


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_import_then_solve(tmp_path, capsys):
    problem = tmp_path / "val.json"
    code, _, _ = run(capsys, "import-standley", str(STANDLEY / "setting1_val.tsv"), "-o", str(problem))
    assert code == 0 and len(json.loads(problem.read_text())["networks"]) == 36
    code, out, _ = run(capsys, "solve", str(problem), "--budget", "2.5", "--solver", "branch_and_bound")
    sol = json.loads(out)
    assert code == 0 and sol["status"] == "optimal"
    assert sorted("".join(n["trains"]) + n["size"][0] for n in sol["networks"]) == ["nh", "nkef", "sdnf"]
    assert set(sol) >= {"status", "objective", "bound", "networks", "per_task", "solve_seconds"}


def test_curve_and_hoa(tmp_path, capsys):
    code, out, _ = run(capsys, "import-standley", str(STANDLEY / "setting1_val.tsv"), "--hoa")
    assert code == 0
    problem = tmp_path / "hoa.json"
    problem.write_text(out)
    code, out, _ = run(capsys, "solve", str(problem), "--budgets", "0.5:2:0.5", "--time-limit", "30")
    curve = json.loads(out)
    assert code == 0 and [s["budget"] for s in curve] == [0.5, 1.0, 1.5, 2.0]
    assert [s["status"] for s in curve] == ["infeasible", "optimal", "optimal", "optimal"]


def test_errors_exit_2_with_the_field(tmp_path, capsys):
    problem = tmp_path / "p.json"
    problem.write_text(json.dumps({"tasks": ["a", "b"], "objective": "min_loss",
                                   "networks": [{"tasks": ["a", "b"], "cost": 1, "loss": {"a": 1, "b": 1}}]}))
    cases = [
        (["solve", str(problem), "--budget", "0.5"], "budget: 0.5 is below", "minimum feasible budget is 1"),
        (["solve", str(problem), "--budgets", "0:0.5:0.25"], "budget:", "minimum feasible budget is 1"),
        (["solve", str(tmp_path / "missing.json"), "--budget", "1"], "PROBLEM: cannot read", ""),
        (["solve", str(problem), "--budgets", "1:2"], "budgets: expected START:STOP:STEP", ""),
        (["import-standley", str(tmp_path / "missing.tsv")], "cannot read", ""),
    ]
    for argv, first, second in cases:
        code, out, err = run(capsys, *argv)
        assert code == 2 and out == "" and first in err and second in err and "Traceback" not in err
    problem.write_text("{not json")
    code, _, err = run(capsys, "solve", str(problem), "--budget", "1")
    assert code == 2 and "PROBLEM: " in err and "not valid JSON" in err
    bad_tsv = tmp_path / "bad.tsv"
    bad_tsv.write_text("0.1\t0.2\n0.3\tx\n")
    code, _, err = run(capsys, "import-standley", str(bad_tsv), "--tasks", "a,b")
    assert code == 2 and "bad.tsv:2" in err and "not a number" in err


def test_stdout_is_only_the_json_in_a_fresh_process(tmp_path):
    """Column generation's LP solver (HiGHS) writes a banner to the C-level stdout at its first instance
    in a process; the CLI's stdout must still be exactly the selection's JSON."""
    rng = np.random.default_rng(0)
    m = rng.uniform(-0.3, 1.0, (9, 9))
    np.fill_diagonal(m, 1.0)
    problem = tmp_path / "affinity.json"
    problem.write_text(json.dumps({"tasks": [f"t{i}" for i in range(9)], "objective": "max_affinity",
                                   "affinity": {"onto_row_from_column": m.tolist()}}))
    done = subprocess.run([sys.executable, "-m", "service.cli", "solve", str(problem), "--budget", "3"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    sol = json.loads(done.stdout)
    assert sol["status"] == "optimal" and sol["proved_by"] == "column_generation"
    assert "HiGHS" not in done.stdout + done.stderr
