"""``taskgrouper demo`` on a fresh home: the default job (a warm-start table) through the runner, the
table of groupings with their trust lines, the report with PNGs; an affinity method on request."""

from __future__ import annotations

import re

import pytest

from service.cli import main

#: the trust line of a grouping (a number, its interval, the share of resamples where it wins)
TRUST_LINE = re.compile(
    r"predicted gain over one all-task network: (-?[\d.e+-]+) \[(-?[\d.e+-]+), (-?[\d.e+-]+)\], "
    r"better in (\d+)% of resamples"
)


@pytest.fixture
def home(tmp_path, monkeypatch):
    for name in ("TASKGROUPER_DATABASE_URL", "TASKGROUPER_BROKER_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TASKGROUPER_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_demo_runs_the_default_warm_start_job_and_prints_trust(home, tmp_path, capsys):
    assert main(["demo", "--epochs", "1", "--out", str(tmp_path / "report")]) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert "warm-start table" in out and "predicted total relative loss" in out
    assert "network 1" in out and "serves" in out and "this is the all-task network" in out
    lines = TRUST_LINE.findall(out)
    assert lines, out
    for value, low, high, percent in lines:
        assert float(low) <= float(value) <= float(high) and 0 <= int(percent) <= 100
    assert "not the bias of the method" in out
    assert re.search(r"progress \d+%", captured.err)  # progress while the job runs (no terminal here)
    assert f"report: {tmp_path / 'report' / 'report.md'}" in out
    report = (tmp_path / "report" / "report.md").read_text()
    assert "| 2 |" in report and "pair_losses.png" in report and "objective_vs_budget.png" in report
    assert TRUST_LINE.pattern.split(":")[0] in report and "better in" in report
    for png in ("pair_losses.png", "objective_vs_budget.png"):
        assert (tmp_path / "report" / png).read_bytes()[:4] == b"\x89PNG"
    assert (home / "taskgrouper.sqlite3").exists()


def test_demo_with_an_affinity_method(home, tmp_path, capsys):
    assert main(["demo", "--method", "tag", "--epochs", "2", "--out", str(tmp_path / "report")]) == 0
    out = capsys.readouterr().out
    assert "tag affinity" in out and "predicted score" in out and "network 1" in out
    assert TRUST_LINE.search(out)  # two complete epochs: the trajectory is resampled
    report = (tmp_path / "report" / "report.md").read_text()
    assert "| 2 |" in report and "affinity.png" in report
    for png in ("affinity.png", "score_vs_budget.png"):
        assert (tmp_path / "report" / png).read_bytes()[:4] == b"\x89PNG"


def test_demo_rejects_an_unknown_dataset_or_method(home, capsys):
    assert main(["demo", "--dataset", "imagenet"]) == 2
    assert "--dataset" in capsys.readouterr().err
    assert main(["demo", "--method", "nope"]) == 2
    assert "--method" in capsys.readouterr().err
