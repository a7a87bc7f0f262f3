"""``taskgrouper demo`` on a fresh home: job through the runner, table of groupings, report with PNGs."""

from __future__ import annotations

from service.cli import main


def test_demo_writes_the_table_and_report(tmp_path, monkeypatch, capsys):
    for name in ("TASKGROUPER_DATABASE_URL", "TASKGROUPER_BROKER_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TASKGROUPER_HOME", str(tmp_path / "home"))
    assert main(["demo", "--epochs", "1", "--out", str(tmp_path / "report")]) == 0
    out = capsys.readouterr().out
    assert "predicted score" in out and "network 1" in out and "serves" in out
    assert f"report: {tmp_path / 'report' / 'report.md'}" in out
    report = (tmp_path / "report" / "report.md").read_text()
    assert "| 2 |" in report and "affinity.png" in report
    for png in ("affinity.png", "score_vs_budget.png"):
        assert (tmp_path / "report" / png).read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "home" / "taskgrouper.sqlite3").exists()


def test_demo_rejects_an_unknown_dataset(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TASKGROUPER_HOME", str(tmp_path / "home"))
    assert main(["demo", "--dataset", "imagenet"]) == 2
    assert "--dataset" in capsys.readouterr().err
