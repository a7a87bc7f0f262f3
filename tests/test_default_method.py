"""The default job method: ``tag_first_order``, its network tables allowing half-size single-task
networks (the lowest regret at one all-task training run in ``bench/results/grouping_quality.md``).

* requests: a job that names no method runs ``tag_first_order`` and keeps it (pinned in its spec);
* the runner stores every affinity table with ``"half_singletons": true``; ``GET /groupings``
  answers x.5 budgets from it, with trust from the run's trajectory, and its default budgets step by
  0.5; a stored table where a half-size network is better is answered with one at 1.5, while a
  table stored before (no ``half_singletons`` key) keeps its whole budgets and no halves;
* ``taskgrouper affinity`` defaults to ``tag_first_order`` with half-size singletons
  (``--no-half-singletons``: none), sizes ``synthetic`` with ``--option``, and refuses
  ``--epochs 0`` or an ``--out`` in a missing folder before reading data or training (exit 2, the
  option named).

Jobs are tiny (4 synthetic tasks, 2 epochs of a 16-unit MLP); every wait polls with a generous deadline.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

import grouping.cli.affinity as affinity_cli
from grouping.problem import parse_problem
from grouping.selection import solve
from grouping.selection.trust import resampled_affinity, selection_trust
from service.affinity_runs import SINGLETON_RULES
from service.cli import main
from service.client import TaskgrouperClient
from service.db import transaction
from service.groupings import table_budgets
from service.models import AffinityResult, Job, NetworkTable, utcnow
from service.schemas import DEFAULT_METHODS, JOB_METHODS, JobCreate

TASKS = ["c0_t0", "c0_t1", "c1_t0", "c1_t1"]
#: a job naming no method: 4 synthetic tasks, 2 epochs (trust resamples at least 2 complete epochs)
DEFAULT_JOB: dict[str, Any] = {
    "dataset": "synthetic",
    "tasks": [{"name": name, "type": "regression"} for name in TASKS],
    "model": {"hidden_units": 16, "hidden_layers": 1, "representation": 8},
    "training": {"epochs": 2, "batch_size": 128},
}
TRUST_KEYS = {"samples", "level", "networks", "objective", "all_task", "gain", "win_rate"}
#: a and b help each other, c hurts both and is hurt by both: a half-size network for c is better
HALF_BETTER = [[1.0, 0.5, -0.4], [0.5, 1.0, -0.4], [-0.4, -0.4, 1.0]]


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Exit code and stderr of ``taskgrouper ARGV`` (argparse errors exit through ``SystemExit``)."""
    capsys.readouterr()
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


# --- requests -------------------------------------------------------------------------------------


def test_a_job_without_methods_runs_tag_first_order():
    request = JobCreate.model_validate({"dataset": "synthetic"})
    assert DEFAULT_METHODS == ("tag_first_order",) and set(DEFAULT_METHODS) <= set(JOB_METHODS)
    assert request.methods == ["tag_first_order"] and request.affinity_methods == ["tag_first_order"]
    assert request.warm_start is None
    for method in ("warm_start", "tag"):  # the others stay available by name
        assert JobCreate.model_validate({"dataset": "synthetic", "methods": [method]}).methods == [method]


# --- the default job, embedded --------------------------------------------------------------------


@pytest.fixture
def default_job(embedded_client) -> tuple[TaskgrouperClient, Any]:
    """A finished job submitted without methods on the embedded stack."""
    client = TaskgrouperClient(http=embedded_client)
    job = client.submit_job(**DEFAULT_JOB)
    assert job.methods == ["tag_first_order"]
    return client, client.wait(job.id, timeout=300, poll=0.2)


def test_the_default_job_stores_half_singleton_tables(default_job, embedded_client):
    client, job = default_job
    assert job.status == "succeeded" and job.methods == ["tag_first_order"]
    with embedded_client.app.state.session_factory() as session:
        assert session.get(Job, job.id).spec["methods"] == ["tag_first_order"]  # pinned
        rows = session.scalars(select(NetworkTable).where(NetworkTable.job_id == job.id)).all()
    assert rows and {r.method for r in rows} == {"tag_first_order"}
    assert "forbid" in {r.singletons for r in rows} and {r.singletons for r in rows} <= set(SINGLETON_RULES)
    for row in rows:
        problem = row.problem
        assert problem["half_singletons"] is True and problem["singletons"] == row.singletons
        assert problem["objective"] == "max_affinity" and problem["tasks"] == TASKS
        assert parse_problem(problem).network_costs == {"full": 1.0, "half": 0.5}
        assert table_budgets(problem) == [1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0]


def test_the_default_job_answers_a_half_budget_with_trust(default_job, embedded_client):
    client, job = default_job
    with embedded_client.app.state.session_factory() as session:
        document = session.scalar(select(NetworkTable.problem).where(
            NetworkTable.job_id == job.id, NetworkTable.singletons == "forbid"))
        trajectory = session.scalar(select(AffinityResult.trajectory).where(
            AffinityResult.job_id == job.id))
    problem = parse_problem(document)
    direct = solve(problem, 2.5)
    grouping = client.groupings(job.id, 2.5)
    assert grouping.method == "tag_first_order" and grouping.singletons == "forbid"
    assert grouping.budget == 2.5 and grouping.status == "optimal"
    assert grouping.objective == pytest.approx(direct.objective)
    assert [n.model_dump() for n in grouping.networks] == direct.to_dict()["networks"]
    trust = grouping.trust.model_dump()
    assert set(trust) == TRUST_KEYS and trust["samples"] == 200
    assert trust == selection_trust(direct, problem, resampled_affinity(problem, trajectory)).model_dump()
    curve = client.grouping_curve(job.id, "1:4:0.5")
    assert [p.budget for p in curve.curve] == [1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0]
    assert all(p.trust is not None for p in curve.curve)
    objectives = [p.objective for p in curve.curve]
    assert objectives == sorted(objectives)  # scores: more budget never hurts
    assert all(sum(n.cost for n in p.networks) <= p.budget + 1e-9 for p in curve.curve)


# --- stored tables: halves where better, none in tables stored before ------------------------------


def _stored_job(client: Any, problem: dict[str, Any], trajectory: list[Any]) -> str:
    """A succeeded ``tag_first_order`` job with ``problem`` as its forbid table (no training)."""
    with transaction(client.app.state.session_factory) as session:
        job = Job(project=client.app.state.settings.default_project, status="succeeded",
                  spec={"dataset": "synthetic", "methods": ["tag_first_order"]}, spec_hash="x",
                  cancel_requested=False, progress_fraction=1.0, attempts=1, created_at=utcnow())
        session.add(job)
        session.flush()
        session.add(AffinityResult(job_id=job.id, method="tag_first_order", tasks=problem["tasks"],
                                   matrix=problem["affinity"]["onto_row_from_column"],
                                   trajectory=trajectory, meta={}))
        session.add(NetworkTable(job_id=job.id, method="tag_first_order", singletons="forbid",
                                 problem=problem))
        return job.id


def _trajectory(matrix: list[list[float]], epochs: int = 3) -> list[list[list[float]]]:
    """Per-epoch matrices scattered around ``matrix`` (whose mean they are)."""
    base = np.asarray(matrix)
    offsets = [0.02 * (k - (epochs - 1) / 2) for k in range(epochs)]
    return [(base + offset).tolist() for offset in offsets]


def test_a_half_size_network_is_chosen_at_an_x5_budget_where_it_is_better(api_client):
    tasks = ["a", "b", "c"]
    half = {"tasks": tasks, "objective": "max_affinity", "singletons": "forbid", "network_cost": 1.0,
            "affinity": {"onto_row_from_column": HALF_BETTER}, "half_singletons": True}
    legacy = {key: value for key, value in half.items() if key != "half_singletons"}
    job_id = _stored_job(api_client, half, _trajectory(HALF_BETTER))
    old_id = _stored_job(api_client, legacy, _trajectory(HALF_BETTER))
    assert table_budgets(half) == [1.0, 1.5, 2.0, 2.5, 3.0] and table_budgets(legacy) == [1.0, 2.0, 3.0]

    answer = api_client.get("/groupings", params={"job_id": job_id, "budget": 1.5})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    nets = {(tuple(n["trains"]), n["size"], n["cost"]) for n in body["networks"]}
    assert nets == {(("a", "b"), "full", 1.0), (("c",), "half", 0.5)}
    assert body["objective"] == pytest.approx(1.0)  # 0.5 + 0.5, and 0 for c served alone
    trust = body["trust"]
    assert set(trust) == TRUST_KEYS and trust["win_rate"] == 1.0 and trust["gain"]["low"] > 0
    half_net = [k for k, n in enumerate(body["networks"]) if n["size"] == "half"][0]
    assert trust["networks"][half_net] == {"value": 0.0, "low": 0.0, "high": 0.0}  # alone: no transfer

    before = api_client.get("/groupings", params={"job_id": old_id, "budget": 1.5}).json()
    assert [n["size"] for n in before["networks"]] == ["full"]  # stored before: no halves, as then
    assert before["objective"] == pytest.approx(-0.3)  # the all-task network: 0.05 + 0.05 - 0.4
    assert before["trust"]["gain"]["value"] == pytest.approx(0.0)


# --- the CLI --------------------------------------------------------------------------------------


def test_cli_affinity_defaults_to_tag_first_order_with_half_singletons(tmp_path, capsys):
    out = tmp_path / "a.json"
    common = ["affinity", "--dataset", "synthetic", "--option", "n_samples=600", "--tasks", ",".join(TASKS),
              "--epochs", "2", "--hidden-units", "16", "--representation", "8"]
    code, err = run_cli(capsys, *common, "--out", str(out))
    assert code == 0 and "affinity (tag_first_order) for 4 tasks" in err and "half-size singletons" in err
    document = json.loads(out.read_text())
    assert document["metadata"]["method"] == "tag_first_order"
    assert document["metadata"]["methods"] == ["tag_first_order"]
    assert document["half_singletons"] is True and document["singletons"] == "forbid"
    assert document["metadata"]["dataset"]["rows"]["train"] == 420  # --option sized the dataset
    assert len(document["metadata"]["trajectories"]["tag_first_order"]) == 2
    problem = parse_problem(document)
    assert problem.half_singletons and problem.tasks == TASKS
    assert solve(problem, 1.5).status == "optimal"

    code, _ = run_cli(capsys, *common, "--no-half-singletons", "--out", str(out))
    assert code == 0 and json.loads(out.read_text())["half_singletons"] is False


@pytest.fixture
def no_training(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if ``taskgrouper affinity`` reads the dataset or trains."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the command got past its argument checks")

    for name in ("load_dataset", "compute_affinity", "dataset_spec_from_args"):
        monkeypatch.setattr(affinity_cli, name, refuse)


@pytest.mark.parametrize(("extra", "option", "reason"), [
    (["--epochs", "0"], "--epochs", "must be a whole number >= 1, got '0'"),
    (["--every", "0"], "--every", ">= 1"),
    (["--batch-size", "-3"], "--batch-size", ">= 1"),
    (["--threads", "0"], "--threads", ">= 1"),
    (["--representation", "0"], "--representation", ">= 1"),
    (["--lr", "nan"], "--lr", "finite positive"),
    (["--width", "0"], "--width", "finite positive"),
    (["--seed", "-1"], "--seed", ">= 0"),
])
def test_cli_affinity_refuses_bad_numbers_before_training(capsys, no_training, tmp_path, extra, option,
                                                          reason):
    code, err = run_cli(capsys, "affinity", "--dataset", "synthetic", "--out", str(tmp_path / "a.json"),
                        *extra)
    assert code == 2 and f"argument {option}: " in err and reason in err and "Traceback" not in err


@pytest.mark.parametrize("method", [None, "warm_start"])
def test_cli_affinity_refuses_an_out_in_a_missing_folder_before_training(capsys, no_training, tmp_path,
                                                                         method):
    missing = tmp_path / "nope"
    extra = ["--method", method] if method else []
    out = str(missing / "a.json")
    code, err = run_cli(capsys, "affinity", "--dataset", "synthetic", *extra, "--out", out)
    assert code == 2 and "argument --out: " in err and f"the folder '{missing}' does not exist" in err
    assert not missing.exists()
