"""CLI hardening: bad arguments give a message naming the option and exit code 2 (never a traceback,
never a silent default), before any training; ``taskgrouper tables`` reads an ordinary CSV with the
dataset arguments of ``taskgrouper affinity`` and reports progress and a summary on stderr."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import grouping.cli.tables as tables_cli
from grouping.cli import (
    add_dataset_arguments,
    dataset_spec_from_args,
    finite_positive_float,
    non_negative_int,
    output_file,
    output_file_or_stdout,
    positive_int,
    seed_int,
    unit_fraction,
)
from grouping.errors import InputError
from service.cli import main


def run(capsys, *argv: str) -> tuple[int, str]:
    """Exit code and stderr of ``taskgrouper ARGV`` (argparse errors exit through ``SystemExit``)."""
    capsys.readouterr()
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


@pytest.fixture
def csv_path(tmp_path):
    rng = np.random.default_rng(0)
    n = 240
    frame = pd.DataFrame({
        "age": rng.integers(18, 80, n),
        "plan": rng.choice(["basic", "pro", "team"], n),
        "churn": rng.choice(["yes", "no"], n),
        "spend": rng.standard_normal(n) * 10,
        "price": rng.standard_normal(n) * 50 + 100,
    })
    path = tmp_path / "customers.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture
def no_training(monkeypatch):
    """Fail the test if a command gets as far as training."""
    def refuse(*args, **kwargs):
        raise AssertionError("training started although the arguments were bad")

    monkeypatch.setattr(tables_cli, "build_table", refuse)


# --- the shared argparse types ---------------------------------------------------------------------


@pytest.mark.parametrize(("parse", "text", "message"), [
    (positive_int, "0", "must be a whole number >= 1, got '0'"),
    (positive_int, "-2", ">= 1"),
    (positive_int, "1.5", ">= 1"),
    (non_negative_int, "-1", ">= 0"),
    (seed_int, "-1", ">= 0"),
    (seed_int, str(10**30), "in [0, 4294967295]"),
    (finite_positive_float, "nan", "must be a finite positive number, got 'nan'"),
    (finite_positive_float, "inf", "finite positive"),
    (finite_positive_float, "0", "finite positive"),
    (finite_positive_float, "fast", "finite positive"),
    (unit_fraction, "nan", "(0, 1]"),
    (unit_fraction, "1.5", "(0, 1]"),
])
def test_argument_types_refuse_with_a_reason(parse, text, message):
    with pytest.raises(argparse.ArgumentTypeError, match=message.replace("[", r"\[").replace("(", r"\(")):
        parse(text)


def test_argument_types_accept_good_values(tmp_path):
    assert positive_int(" 3 ") == 3 and non_negative_int("0") == 0 and seed_int("4294967295") == 2**32 - 1
    assert finite_positive_float("0.03") == 0.03 and unit_fraction("1") == 1.0
    assert output_file(str(tmp_path / "out.json")) == tmp_path / "out.json"
    assert output_file_or_stdout("-") == "-"


def test_output_files_are_checked_up_front(tmp_path):
    with pytest.raises(argparse.ArgumentTypeError, match="folder .* does not exist"):
        output_file(str(tmp_path / "missing" / "out.json"))
    with pytest.raises(argparse.ArgumentTypeError, match="is a directory"):
        output_file(str(tmp_path))
    (tmp_path / "file").write_text("")
    with pytest.raises(argparse.ArgumentTypeError, match="is not a directory"):
        output_file(str(tmp_path / "file" / "out.json"))


# --- tables: bad arguments -------------------------------------------------------------------------


@pytest.mark.parametrize(("extra", "option", "reason"), [
    (["--epochs", "0"], "--epochs", "must be a whole number >= 1, got '0'"),
    (["--workers", "0"], "--workers", ">= 1"),
    (["--patience", "-1"], "--patience", ">= 0"),
    (["--esa-fraction", "nan"], "--esa-fraction", "(0, 1]"),
    (["--seed", "-1"], "--seed", ">= 0"),
    (["--save-table", "/no/such/folder/t.json"], "--save-table", "does not exist"),
])
def test_tables_refuses_bad_options_before_training(capsys, no_training, tmp_path, extra, option, reason):
    code, err = run(capsys, "tables", "--dataset", "synthetic", "--out", str(tmp_path / "p.json"), *extra)
    assert code == 2
    assert f"argument {option}: " in err and reason in err and "Traceback" not in err


def test_tables_out_in_a_missing_folder_fails_before_training(capsys, no_training, tmp_path):
    missing = tmp_path / "nope"
    code, err = run(capsys, "tables", "--dataset", "synthetic", "--out", str(missing / "p.json"))
    assert code == 2 and "argument --out: " in err and f"the folder '{missing}' does not exist" in err


@pytest.mark.parametrize(("dataset", "extra", "option", "reason"), [
    ("{dir}", ["--tasks", "churn:binary"], "--dataset", "is a directory"),
    ("no-such-data", [], "--dataset", "neither a built-in dataset"),
    ("{csv}", [], "--task", "a file dataset needs its tasks"),
    ("{csv}", ["--tasks", "churn"], "--task", "'churn' has no type"),
    ("{csv}", ["--tasks", "churn:binary", "--option", "n_samples=3"], "--option", "built-in datasets"),
    ("synthetic", ["--tasks", "c0_t0,nope"], "--tasks", "has no task 'nope'"),
])
def test_tables_dataset_errors_name_the_option(capsys, no_training, tmp_path, csv_path, dataset, extra,
                                               option, reason):
    source = dataset.format(dir=tmp_path, csv=csv_path)
    code, err = run(capsys, "tables", "--dataset", source, "--out", str(tmp_path / "p.json"), *extra)
    assert code == 2
    assert err.startswith(f"taskgrouper tables: error: {option}: ") and reason in err, err


def test_a_continuous_column_declared_multiclass_is_refused_before_training(capsys, tmp_path, csv_path,
                                                                            monkeypatch):
    import grouping.tables.build as build

    def refuse(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(build, "train_all", refuse)
    code, err = run(capsys, "tables", "--dataset", str(csv_path), "--tasks", "price:multiclass,churn:binary",
                    "--out", str(tmp_path / "p.json"))
    assert code == 2 and "'price'" in err and "declare it regression" in err


def test_the_console_script_prints_no_traceback(tmp_path):
    """The installed entry point end to end: an argparse error and a data error, both exit 2."""
    for extra in (["--epochs", "0"], ["--dataset", str(tmp_path)]):
        argv = ["tables", "--dataset", "synthetic", "--out", str(tmp_path / "p.json"), *extra]
        done = subprocess.run([sys.executable, "-m", "service.cli", *argv], capture_output=True, text=True)
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr and "error:" in done.stderr


# --- tables reads a CSV with affinity's dataset arguments ------------------------------------------


def _namespace(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_dataset_arguments(parser)
    return parser.parse_args(argv)


def test_repeated_and_comma_separated_dataset_options_agree(csv_path):
    repeated = _namespace(["--dataset", str(csv_path), "--task", "churn:binary",
                           "--task", "spend:regression:l1", "--feature", "age", "--feature", "plan"])
    joined = _namespace(["--dataset", str(csv_path), "--tasks", "churn:binary, spend:regression:l1",
                         "--features", "age,plan"])
    spec = dataset_spec_from_args(repeated)
    assert spec == dataset_spec_from_args(joined)
    assert [t.name for t in spec.tasks] == ["churn", "spend"] and spec.tasks[1].loss == "l1"
    assert spec.features == ["age", "plan"]
    builtin = dataset_spec_from_args(_namespace(["--dataset", "synthetic", "--tasks", "c0_t0,c1_t0",
                                                 "--option", "n_samples=300"]))
    assert [t.name for t in builtin.tasks] == ["c0_t0", "c1_t0"] and builtin.options == {"n_samples": 300}
    with pytest.raises(InputError, match="expected KEY=VALUE"):
        dataset_spec_from_args(_namespace(["--dataset", "synthetic", "--option", "n_samples"]))


def test_tables_trains_on_a_csv_with_a_text_feature_and_reports_progress(capsys, tmp_path, csv_path):
    out, saved = tmp_path / "problem.json", tmp_path / "table.json"
    code, err = run(capsys, "tables", "--dataset", str(csv_path), "--task", "churn:binary",
                    "--task", "spend:regression", "--features", "age,plan", "--epochs", "1",
                    "--workers", "1", "--out", str(out), "--save-table", str(saved))
    assert code == 0, err
    problem = json.loads(out.read_text())
    assert problem["tasks"] == ["churn", "spend"] and len(problem["networks"]) == 5  # 3 full + 2 half
    table = json.loads(saved.read_text())
    assert table["metadata"]["dataset"]["features"] == ["age", "plan"]
    lines = err.strip().splitlines()
    progress = [line for line in lines if line.startswith("[")]
    assert [line.split("]")[0] for line in progress] == [f"[{k}/5" for k in range(1, 6)]
    assert lines[-1].startswith("tables (exhaustive): 5 networks for 2 tasks trained in ")
    assert lines[-1].endswith(f"-> {out} and {saved}")


def test_tables_quiet_prints_nothing_and_spec_files_still_work(capsys, tmp_path, csv_path, monkeypatch):
    seen = {}

    def fake_build(spec, method, model, training, **kwargs):
        seen["spec"], seen["training"] = spec, training
        raise InputError("dataset", "stop here")

    monkeypatch.setattr(tables_cli, "build_table", fake_build)
    spec_file = tmp_path / "spec.json"
    tasks = [{"name": "churn", "type": "binary"}]
    spec_file.write_text(json.dumps({"source": str(csv_path), "tasks": tasks}))
    code, err = run(capsys, "tables", "--dataset", str(spec_file), "--out", "-", "--quiet")
    assert code == 2 and err == "taskgrouper tables: error: dataset: stop here\n"
    assert seen["spec"].tasks[0].name == "churn" and seen["training"].epochs == 20
    code, err = run(capsys, "tables", "--dataset", str(spec_file), "--tasks", "churn:binary", "--out", "-")
    assert code == 2 and "--task/--tasks: does not apply to a DatasetSpec file" in err
