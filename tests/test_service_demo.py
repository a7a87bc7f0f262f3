"""``taskgrouper demo`` on a fresh home: the default job (``tag_first_order``, half-size singletons
allowed) through the runner, the table of groupings at budgets 1 to n by 0.5 with their trust lines,
the report with PNGs; ``warm_start`` and other affinity methods on request."""

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


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Exit code and stderr of ``taskgrouper ARGV`` (argparse errors exit through ``SystemExit``)."""
    capsys.readouterr()
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


def test_demo_runs_the_default_tag_first_order_job_with_halves_and_prints_trust(home, tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "report")]) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert "tag_first_order affinity" in out and "10 epochs" in out and "predicted score" in out
    assert "half-size network (cost 0.5) scores 0" in out
    assert "network 1" in out and "serves" in out and "this is the all-task network" in out
    budgets = [float(b) for b in re.findall(r"^\s*(\d+(?:\.\d+)?)\s+-?\d+\.\d{5}\s", out, re.MULTILINE)]
    assert budgets == [1.0 + 0.5 * k for k in range(15)]  # 8 tasks: 1, 1.5, ..., 8
    lines = TRUST_LINE.findall(out)
    assert lines, out  # 10 epochs: the trajectory is resampled
    for value, low, high, percent in lines:
        assert float(low) <= float(value) <= float(high) and 0 <= int(percent) <= 100
    assert "not the bias of the method" in out
    assert re.search(r"progress \d+%", captured.err)  # progress while the job runs (no terminal here)
    report = (tmp_path / "report" / "report.md").read_text()
    assert "| 2.5 |" in report and "affinity.png" in report and "score_vs_budget.png" in report
    assert "**method**: tag_first_order" in report and "**half-size singletons**: allowed" in report
    assert "better in" in report
    for png in ("affinity.png", "score_vs_budget.png"):
        assert (tmp_path / "report" / png).read_bytes()[:4] == b"\x89PNG"
    assert (home / "taskgrouper.sqlite3").exists()


def test_demo_runs_warm_start_on_request_and_prints_trust(home, tmp_path, capsys):
    argv = ["demo", "--method", "warm_start", "--epochs", "1", "--out", str(tmp_path / "report")]
    assert main(argv) == 0
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


def test_demo_rejects_an_unknown_dataset_or_method_and_too_few_epochs(home, capsys):
    assert main(["demo", "--dataset", "imagenet"]) == 2
    assert "--dataset" in capsys.readouterr().err
    assert main(["demo", "--method", "nope"]) == 2
    assert "--method" in capsys.readouterr().err
    code, err = run(capsys, "demo", "--epochs", "0")
    assert code == 2 and "argument --epochs: must be a whole number >= 1, got '0'" in err
    code, err = run(capsys, "demo", "--epochs", "1")  # the default method: one epoch cannot be resampled
    assert code == 2 and "error: --epochs: tag_first_order needs at least 2 epochs" in err
    assert not (home / "taskgrouper.sqlite3").exists()  # refused before any job was created
