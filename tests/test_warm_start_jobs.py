"""warm_start as a job method, end to end, and trust on every grouping.

* requests: ``warm_start`` runs when a job names it (the default is ``tag_first_order``, see
  ``tests/test_default_method.py``), its options are validated with bounds, a job's network count is
  limited (``max_warm_start_networks``), a stored job keeps its methods (and the migration pins the
  methods of jobs stored before);
* the runner trains the warm-start table (progress to 1, a cancel stops it mid-way, a rerun replaces
  its results) and stores the explicit problem with its draws, singletons ``none``;
* ``GET /groupings`` (one budget and the curve) answers with ``trust`` computed from the stored draws
  (warm_start) or the trajectory (affinity methods, two or more complete epochs); ``POST /groupings``
  where the posted problem carries draws; the OpenAPI document describes the fields;
* on PostgreSQL + Redis with a real Celery worker, a job running tag and warm_start stores both
  tables and precomputes both methods' groupings with trust;
* the CLI: ``taskgrouper affinity --method warm_start`` writes the warm-start problem with draws and
  ``taskgrouper solve`` prints its trust; affinity files solve as before (now allowing half-size
  singletons unless ``--no-half-singletons``).

Datasets are tiny (4 synthetic tasks, 1–2 epochs of a 16-unit MLP); every wait polls with a generous
deadline.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic import command
from conftest import PG_BASE, SESSION_TAG, TINY_JOB, _client, _libpq, service_env
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from grouping.data import DatasetSpec
from grouping.errors import InputError
from grouping.problem import parse_problem
from grouping.selection import solve
from grouping.selection.trust import problem_samples, selection_trust
from grouping.tables import network_count, warm_start_table
from grouping.training import Cancelled, ModelConfig, TrainingConfig
from service.cli import main
from service.client import TaskgrouperClient
from service.db import make_engine, make_session_factory, transaction
from service.migrate import alembic_config, upgrade
from service.models import Grouping, Job, NetworkTable, utcnow
from service.schemas import DEFAULT_METHODS, JobCreate
from service.settings import Settings
from worker.runner import run_job

TASKS = ["c0_t0", "c0_t1", "c1_t0", "c1_t1"]
#: a warm-start job small enough for end-to-end tests: 4 synthetic tasks, 21 networks of a tiny MLP
#: (warm_start named: it is no longer the default method)
WARM_JOB: dict[str, Any] = {
    "dataset": "synthetic",
    "methods": ["warm_start"],
    "tasks": [{"name": name, "type": "regression"} for name in TASKS],
    "model": {"hidden_units": 16, "hidden_layers": 1, "representation": 8},
    "training": {"epochs": 1, "batch_size": 128},
    "warm_start": {"val_draws": 40},
}
TRUST_KEYS = {"samples", "level", "networks", "objective", "all_task", "gain", "win_rate"}


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``predicate`` until it returns something truthy (returned); fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
    return value


def assert_trust(trust: dict[str, Any], networks: list[Any], samples: int) -> None:
    """A complete trust report of a grouping with ``networks``, over ``samples`` samples."""
    assert set(trust) == TRUST_KEYS and trust["samples"] == samples and trust["level"] == 0.95
    assert len(trust["networks"]) == len(networks)
    for interval in [*trust["networks"], trust["objective"], trust["all_task"], trust["gain"]]:
        assert interval["low"] <= interval["high"]
    assert 0.0 <= trust["win_rate"] <= 1.0


# --- requests -------------------------------------------------------------------------------------


def test_warm_start_gets_its_default_options_when_requested():
    default = JobCreate.model_validate({"dataset": "synthetic"})
    assert DEFAULT_METHODS == ("tag_first_order",) and default.methods == ["tag_first_order"]
    assert default.warm_start is None  # not the default any more: no options filled in
    request = JobCreate.model_validate({"dataset": "synthetic", "methods": ["warm_start"]})
    assert request.methods == ["warm_start"] and request.affinity_methods == []
    assert request.warm_start is not None and request.warm_start.model_dump() == {
        "finetune_epochs": 0.5, "half_singletons": True, "val_draws": 100, "subsets": None,
    }  # fmt: skip
    unnamed = {"dataset": "synthetic", "warm_start": {"val_draws": 10}}  # options without the method
    with pytest.raises(ValueError, match="methods do not include 'warm_start'"):
        JobCreate.model_validate(unnamed)
    tag = JobCreate.model_validate({"dataset": "synthetic", "methods": ["tag"]})
    assert tag.warm_start is None and tag.affinity_methods == ["tag"]
    both = JobCreate.model_validate({"dataset": "synthetic", "methods": ["tag", "warm_start"]})
    assert both.affinity_methods == ["tag"] and both.warm_start is not None


@pytest.mark.parametrize(
    "body, field",
    [
        ({"warm_start": {"val_draws": 201}}, "warm_start.val_draws"),
        ({"warm_start": {"val_draws": -1}}, "warm_start.val_draws"),
        ({"warm_start": {"finetune_epochs": -0.5}}, "warm_start.finetune_epochs"),
        ({"warm_start": {"finetune_epochs": 11}}, "warm_start.finetune_epochs"),
        ({"warm_start": {"finetune_epochs": "NaN"}}, "warm_start.finetune_epochs"),
        ({"warm_start": {"half_singletons": "maybe"}}, "warm_start.half_singletons"),
        ({"warm_start": {"subsets": [[]]}}, "warm_start.subsets[0]"),
        ({"warm_start": {"unknown": 1}}, "warm_start.unknown"),
        ({"methods": ["tag"], "warm_start": {"val_draws": 10}}, "warm_start"),
        ({"methods": ["warm_start", "warm_start"]}, "methods"),
        ({"warm_start": {"subsets": [["c0_t0", "nope"]]}}, "warm_start.subsets"),
        ({"warm_start": {"subsets": [["c0_t0", "c0_t0"]]}}, "warm_start.subsets"),
    ],
)
def test_bad_warm_start_options_are_refused_naming_the_field(api_client, body, field):
    response = api_client.post("/jobs", json={**WARM_JOB, **body})
    assert response.status_code == 422, response.text
    assert response.json()["field"].startswith(field), response.json()


def test_a_warm_start_job_over_the_network_limit_is_refused(tmp_path):
    settings = Settings(home=tmp_path / "home", database_url=None, broker_url=None,
                        max_warm_start_networks=20)
    with contextmanager(_client)(settings) as client:
        # 4 tasks: 2 base runs + 15 subsets + 4 half-size singletons = 21 networks
        response = client.post("/jobs", json=WARM_JOB)
        assert response.status_code == 422 and response.json()["field"] == "warm_start", response.text
        assert "21 networks" in response.json()["reason"]
        smaller = {**WARM_JOB, "warm_start": {"half_singletons": False}}  # 1 + 15 = 16
        assert client.post("/jobs", json=smaller).status_code == 202
        # a built-in dataset's tasks are known at submission (synthetic: 11 tasks, singles and pairs)
        builtin = client.post("/jobs", json={"dataset": "synthetic", "methods": ["warm_start"],
                                             "training": {"epochs": 1}})
        assert builtin.status_code == 422 and builtin.json()["field"] == "warm_start"
    assert network_count(TASKS, half_singletons=True) == 21
    eight = [f"t{k}" for k in range(8)]  # more than 6 tasks: singles and pairs, plus the all-task set
    assert network_count(eight, extra_subsets=[eight]) == 1 + 8 + 28 + 1


def test_a_stored_job_keeps_its_methods_and_options(embedded_client):
    job = embedded_client.post("/jobs", json=WARM_JOB).json()
    with embedded_client.app.state.session_factory() as session:
        spec = session.get(Job, job["id"]).spec
    assert spec["methods"] == ["warm_start"]  # pinned: a later change of the default keeps this job's
    options = {"finetune_epochs": 0.5, "half_singletons": True, "val_draws": 40, "subsets": None}
    assert spec["warm_start"] == options  # in full, defaults included
    assert job["methods"] == ["warm_start"] and job["spec"]["warm_start"]["val_draws"] == 40


def _old_job(sessions: Any) -> tuple[str, str]:
    """A job stored without methods (before they were pinned) and one that names its methods."""
    with transaction(sessions) as session:
        job = Job(project="p", status="succeeded", spec={"dataset": "synthetic"}, spec_hash="x",
                  cancel_requested=False, progress_fraction=1.0, attempts=1, created_at=utcnow())
        pinned = Job(project="p", status="queued", spec={"dataset": "synthetic", "methods": ["grad_cosine"]},
                     spec_hash="y", cancel_requested=False, progress_fraction=0.0, attempts=0,
                     created_at=utcnow())
        session.add_all([job, pinned])
        session.flush()
        return job.id, pinned.id


@pytest.fixture
def fresh_postgres() -> Iterator[str]:
    """An empty PostgreSQL database of this test alone (dropped at the end)."""
    name = f"taskgrouper_test_{SESSION_TAG}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(_libpq(PG_BASE), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(PG_BASE).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(_libpq(PG_BASE), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_migration_pins_the_methods_of_jobs_stored_before(backend, tmp_path, request):
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}" if backend == "sqlite" else request.getfixturevalue(
        "fresh_postgres")
    upgrade(url, "0002")
    engine = make_engine(url, pool_size=1)
    try:
        old, pinned = _old_job(make_session_factory(engine))
        upgrade(url)
        with make_session_factory(engine)() as session:
            assert session.get(Job, old).spec == {"dataset": "synthetic", "methods": ["tag"]}
            assert session.get(Job, pinned).spec["methods"] == ["grad_cosine"]
        command.downgrade(alembic_config(url), "0002")  # data only: the downgrade keeps the methods
        with make_session_factory(engine)() as session:
            assert session.get(Job, old).spec["methods"] == ["tag"]
    finally:
        engine.dispose()


# --- the job, embedded ----------------------------------------------------------------------------


@pytest.fixture
def warm_job(embedded_client) -> tuple[TaskgrouperClient, Any]:
    """A finished warm-start job on the embedded stack."""
    client = TaskgrouperClient(http=embedded_client)
    job = client.submit_job(**WARM_JOB)
    assert job.methods == ["warm_start"]
    return client, client.wait(job.id, timeout=300, poll=0.2)


def test_the_runner_stores_the_explicit_table_with_its_draws(warm_job, embedded_client):
    client, job = warm_job
    assert job.status == "succeeded" and job.progress.fraction == 1.0 and job.device == "cpu"
    assert job.progress.total_steps and job.progress.step == job.progress.total_steps
    with embedded_client.app.state.session_factory() as session:
        rows = session.scalars(select(NetworkTable).where(NetworkTable.job_id == job.id)).all()
    assert [(r.method, r.singletons) for r in rows] == [("warm_start", "none")]
    problem = rows[0].problem
    assert problem["tasks"] == TASKS and problem["objective"] == "min_loss" and problem["normalize"] == "stl"
    assert len(problem["networks"]) == 15 + 4  # every subset, and a half-size network per task
    meta = problem["metadata"]
    assert meta["method"] == "warm_start" and meta["dataset"] == "synthetic"  # not the server's file path
    assert meta["networks_trained"] == 21
    assert meta["finetune_epochs"] == 0.5 and meta["mtl_runs"]["total"] > 1
    draws = meta["val_draws"]
    assert len(draws) == len(problem["networks"])
    for net, entry in zip(problem["networks"], draws, strict=True):
        assert set(entry) == set(net["loss"]) and all(len(v) == 40 for v in entry.values())
    assert client.affinity(job.id)["methods"] == {}  # no affinity method ran


def test_groupings_carry_trust_from_the_stored_draws(warm_job, embedded_client):
    client, job = warm_job
    with embedded_client.app.state.session_factory() as session:
        document = session.scalar(select(NetworkTable.problem).where(NetworkTable.job_id == job.id))
    problem = parse_problem(document)
    direct = solve(problem, 2.5)
    expected = selection_trust(direct, problem, problem_samples(document)).model_dump()

    grouping = client.groupings(job.id, 2.5)
    assert grouping.method == "warm_start" and grouping.singletons == "none" and grouping.status == "optimal"
    assert grouping.objective == pytest.approx(direct.objective)
    assert [n.model_dump() for n in grouping.networks] == direct.to_dict()["networks"]
    trust = grouping.trust.model_dump()
    assert_trust(trust, grouping.networks, 40)
    assert trust == expected  # the stored draws, exactly
    assert trust["objective"]["value"] == pytest.approx(grouping.objective)
    again = client.groupings(job.id, 2.5, singletons="normalized")  # no rule to choose: ignored
    assert again.stored and again.singletons == "none" and again.trust.model_dump() == trust

    at_one = client.groupings(job.id, 1)  # the all-task network itself: no gain, never better
    assert at_one.trust.gain.value == 0.0 and at_one.trust.win_rate == 0.0
    curve = client.grouping_curve(job.id, "1:4:0.5")
    assert [p.budget for p in curve.curve] == [1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0]
    for point in curve.curve:
        assert_trust(point.trust.model_dump(), point.networks, 40)
    objectives = [p.objective for p in curve.curve]
    assert objectives == sorted(objectives, reverse=True)  # losses: more budget never hurts
    wrong = embedded_client.get("/groupings", params={"job_id": job.id, "budget": 2, "method": "tag"})
    assert wrong.status_code == 422 and wrong.json()["field"] == "method"


def test_a_rerun_replaces_the_table_and_its_groupings(warm_job, embedded_client):
    client, job = warm_job
    client.groupings(job.id, 2)
    sessions = embedded_client.app.state.session_factory
    settings = embedded_client.app.state.settings
    with transaction(sessions) as session:  # as if the worker had died after training
        row = session.get(Job, job.id)
        row.status, row.heartbeat_at = "running", utcnow().replace(year=2000)
    assert run_job(job.id, sessions, settings=settings) == "succeeded"  # trained anew
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(NetworkTable)
                              .where(NetworkTable.job_id == job.id)) == 1
        assert session.scalar(select(func.count()).select_from(Grouping)
                              .where(Grouping.job_id == job.id)) == 0
    assert client.job(job.id).attempts == 2 and client.groupings(job.id, 2).trust is not None


def test_cancel_stops_a_running_warm_start_job(embedded_client):
    client = TaskgrouperClient(http=embedded_client)
    long = {**WARM_JOB, "training": {"epochs": 500, "batch_size": 128, "patience": 0}}
    job = client.submit_job(**long)
    wait_for(lambda: (j := client.job(job.id)).status == "running" and (j.progress.step or 0) > 0, 120,
             "the job to train")
    assert client.cancel(job.id).cancel_requested
    cancelled = wait_for(lambda: (j := client.job(job.id)).status != "running" and j, 60, "the job to stop")
    assert cancelled.status == "cancelled" and cancelled.progress.fraction < 1
    with embedded_client.app.state.session_factory() as session:
        assert session.scalar(select(func.count()).select_from(NetworkTable)
                              .where(NetworkTable.job_id == job.id)) == 0


def test_an_affinity_job_of_two_epochs_has_trust_and_one_of_one_epoch_has_none(embedded_client):
    client = TaskgrouperClient(http=embedded_client)
    two = client.submit_job(**{**TINY_JOB, "training": {"epochs": 2, "batch_size": 128}})
    one = client.submit_job(**TINY_JOB)
    for job in (two, one):
        client.wait(job.id, timeout=300, poll=0.2)
    grouping = client.groupings(two.id, 2)
    assert grouping.method == "tag" and grouping.singletons == "forbid"
    assert_trust(grouping.trust.model_dump(), grouping.networks, 200)
    assert grouping.trust.objective.value == pytest.approx(grouping.objective)
    assert client.groupings(two.id, 2).stored and client.groupings(two.id, 2).trust == grouping.trust
    assert all(p.trust is not None for p in client.grouping_curve(two.id, "1:3:1").curve)
    assert client.groupings(one.id, 2).trust is None  # a single epoch cannot be resampled


# --- POST /groupings and the OpenAPI document -------------------------------------------------------


@pytest.fixture(scope="module")
def small_table() -> dict[str, Any]:
    """A tiny warm-start problem document with draws (three tasks)."""
    spec = DatasetSpec(source="synthetic", tasks=[{"name": n, "type": "regression"} for n in TASKS[:3]])
    table = warm_start_table(spec, ModelConfig(hidden_units=16, hidden_layers=1, representation=8),
                             TrainingConfig(epochs=1, batch_size=128), finetune_epochs=0.5,
                             half_singletons=True, val_draws=30, workers=1)
    return table.problem_document("val", normalize="stl")


def test_a_posted_problem_with_draws_is_answered_with_trust(api_client, small_table):
    answer = api_client.post("/groupings", json={"budget": 1.5, "problem": small_table})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert_trust(body["trust"], body["networks"], 30)
    curve = api_client.post("/groupings", json={"budgets": "1:3:1", "problem": small_table}).json()
    assert all(point["trust"]["samples"] == 30 for point in curve["curve"])
    plain = {k: v for k, v in small_table.items() if k != "metadata"}
    assert api_client.post("/groupings", json={"budget": 1.5, "problem": plain}).json()["trust"] is None
    broken = json.loads(json.dumps(small_table))
    broken["metadata"]["val_draws"][1][TASKS[1]][3] = "x"
    bad = api_client.post("/groupings", json={"budget": 1.5, "problem": broken})
    assert bad.status_code == 422 and bad.json()["field"] == f"problem.metadata.val_draws[1].{TASKS[1]}[3]"


def test_problem_samples_refuse_draws_that_do_not_fit(small_table):
    assert problem_samples({k: v for k, v in small_table.items() if k != "metadata"}) == []
    samples = problem_samples(small_table)
    assert len(samples) == 30 and all(s.normalize == "stl" for s in samples)
    short = json.loads(json.dumps(small_table))
    short["metadata"]["val_draws"].pop()
    with pytest.raises(InputError, match="one map per network"):
        problem_samples(short)
    ragged = json.loads(json.dumps(small_table))
    ragged["metadata"]["val_draws"][1][TASKS[1]].pop()  # networks[1] trains TASKS[1] alone
    with pytest.raises(InputError) as info:
        problem_samples(ragged)
    assert info.value.field == f"metadata.val_draws[1].{TASKS[1]}"


def test_openapi_describes_trust_and_the_warm_start_options(embedded_client):
    schemas = embedded_client.get("/openapi.json").json()["components"]["schemas"]
    assert set(schemas["TrustOut"]["properties"]) == TRUST_KEYS
    assert "gain" in schemas["TrustOut"]["properties"] and schemas["TrustOut"]["properties"]["gain"]
    for name in ("SolutionOut", "GroupingOut"):
        assert "trust" in schemas[name]["properties"], name
    options = schemas["WarmStartOptions"]["properties"]
    assert options["val_draws"]["maximum"] == 200 and options["val_draws"]["minimum"] == 0
    assert options["finetune_epochs"]["maximum"] == 10
    methods = schemas["JobCreate"]["properties"]["methods"]
    assert methods["default"] == ["tag_first_order"] and "warm_start" in json.dumps(methods)


# --- PostgreSQL, Redis and a Celery worker ------------------------------------------------------------


def _worker(settings: Settings, log: Path) -> subprocess.Popen:
    exe = shutil.which("taskgrouper")
    prefix = [exe] if exe else [sys.executable, "-m", "service.cli"]
    return subprocess.Popen([*prefix, "worker", "--loglevel", "WARNING"], env=service_env(settings),
                            stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)


@pytest.mark.services
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_celery_worker_runs_tag_and_warm_start_and_precomputes_both(server_settings, tmp_path):
    tag = uuid.uuid4().hex[:8]
    settings = server_settings.model_copy(update={
        "training_queue": f"{server_settings.training_queue}-{tag}",
        "solve_queue": f"{server_settings.solve_queue}-{tag}",
    })
    log = tmp_path / "worker.log"
    worker = _worker(settings, log)
    try:
        with contextmanager(_client)(settings) as http:
            client = TaskgrouperClient(http=http)
            training = {"epochs": 2, "batch_size": 128}
            body = {**WARM_JOB, "methods": ["tag", "warm_start"], "training": training}
            job = client.submit_job(**body)
            done = client.wait(job.id, timeout=400, poll=0.5)
            assert done.progress.fraction == 1.0 and done.methods == ["tag", "warm_start"], log.read_text()
            sessions = http.app.state.session_factory

            def precomputed() -> bool:
                with sessions() as session:
                    methods = session.execute(select(Grouping.method, Grouping.singletons, func.count())
                                              .where(Grouping.job_id == job.id)
                                              .group_by(Grouping.method, Grouping.singletons)).all()
                return {(m, s): n for m, s, n in methods} == {("tag", "forbid"): 7, ("warm_start", "none"): 7}

            # budgets 1..4 by 0.5 of both tables: each has half-size networks (the tag table allows
            # half-size singletons, the warm-start table has fine-tuned ones)
            wait_for(precomputed, 120, "the solve queue to store both methods' groupings")
            first = client.groupings(job.id, 2)  # the job's first method
            assert first.method == "tag" and first.stored and first.trust is not None
            assert_trust(first.trust.model_dump(), first.networks, 200)
            warm = client.groupings(job.id, 2.5, method="warm_start")
            assert warm.stored and warm.singletons == "none"
            assert_trust(warm.trust.model_dump(), warm.networks, 40)
            curve = client.grouping_curve(job.id, "1:4:0.5", method="warm_start")
            assert all(p.trust is not None for p in curve.curve)
    finally:
        if worker.poll() is None:
            worker.terminate()
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()


# --- the library and the CLI ------------------------------------------------------------------------


def test_the_table_reports_progress_and_stops_when_cancelled():
    spec = DatasetSpec(source="synthetic", tasks=[{"name": n, "type": "regression"} for n in TASKS[:3]])
    model = ModelConfig(hidden_units=16, hidden_layers=1, representation=8)
    training = TrainingConfig(epochs=1, batch_size=128)
    reports: list[Any] = []
    table = warm_start_table(spec, model, training, finetune_epochs=0.5, half_singletons=True, workers=1,
                             progress=reports.append)
    fractions = [p.fraction for p in reports]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert {p.total_steps for p in reports} == {reports[-1].step}
    assert len(table.rows) == 7 + 3
    asked = []

    def cancel_after_the_base_runs() -> bool:
        asked.append(1)
        return len(asked) > 40  # well inside the fine-tuning runs

    with pytest.raises(Cancelled):
        warm_start_table(spec, model, training, finetune_epochs=0.5, half_singletons=True, workers=1,
                         should_cancel=cancel_after_the_base_runs)


def test_cli_writes_the_warm_start_problem_and_solve_prints_its_trust(tmp_path, capsys):
    out = tmp_path / "w.json"
    tasks = [arg for name in TASKS[:3] for arg in ("--task", f"{name}:regression")]
    common = ["affinity", "--dataset", "synthetic", *tasks, "--epochs", "1", "--hidden-units", "16",
              "--hidden-layers", "1", "--representation", "8", "--batch-size", "128"]
    common += ["--method", "warm_start"]
    assert main([*common, "--val-draws", "25", "--out", str(out)]) == 0
    assert "warm_start table for 3 tasks: 12 networks" in capsys.readouterr().err
    document = json.loads(out.read_text())
    assert document["objective"] == "min_loss" and document["normalize"] == "stl"
    assert document["metadata"]["method"] == "warm_start" and len(document["metadata"]["val_draws"]) == 10

    assert main(["solve", str(out), "--budget", "1.5"]) == 0
    solution = json.loads(capsys.readouterr().out)
    problem = parse_problem(document)
    direct = solve(problem, 1.5)
    assert {k: v for k, v in solution.items() if k not in ("trust", "solve_seconds")} == {
        k: v for k, v in direct.to_dict().items() if k != "solve_seconds"}
    assert solution["trust"] == selection_trust(direct, problem, problem_samples(document)).model_dump()
    assert main(["solve", str(out), "--budgets", "0.5,1,2"]) == 0
    curve = json.loads(capsys.readouterr().out)
    assert curve[0]["status"] == "infeasible" and curve[0]["trust"] is None
    assert all(point["trust"]["samples"] == 25 for point in curve[1:])

    plain = tmp_path / "plain.json"
    assert main([*common, "--val-draws", "0", "--no-half-singletons", "--out", str(plain)]) == 0
    capsys.readouterr()
    assert main(["solve", str(plain), "--budget", "1"]) == 0
    assert "trust" not in json.loads(capsys.readouterr().out)  # no draws: the output is unchanged


def test_cli_affinity_methods_still_work_and_do_not_mix_with_warm_start(tmp_path, capsys):
    out = tmp_path / "a.json"
    tasks = [arg for name in TASKS[:3] for arg in ("--task", f"{name}:regression")]
    common = ["affinity", "--dataset", "synthetic", *tasks, "--epochs", "2", "--hidden-units", "16"]
    assert main([*common, "--method", "tag", "--out", str(out)]) == 0
    document = json.loads(out.read_text())
    assert document["objective"] == "max_affinity" and document["singletons"] == "forbid"
    assert document["metadata"]["method"] == "tag" and document["half_singletons"] is True
    assert main(["solve", str(out), "--budget", "2"]) == 0
    solution = json.loads(capsys.readouterr().out)
    # the document carries the run's two epochs, so solve adds trust from resampled epochs
    assert set(solution) == {"status", "objective", "bound", "gap", "networks", "per_task", "solve_seconds",
                             "solver", "budget", "proved_by", "trust"}
    assert solution["trust"]["samples"] > 0
    assert solution["trust"]["objective"]["value"] == pytest.approx(solution["objective"])
    assert main([*common, "--method", "tag", "--no-half-singletons", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["half_singletons"] is False  # TAG's published rule
    capsys.readouterr()
    warm = ["--method", "warm_start"]
    for extra, option in [(["--method", "tag", "--method", "warm_start"], "--method"),
                          ([*warm, "--singletons", "normalized"], "--singletons"),
                          ([*warm, "--every", "5"], "--every"),
                          ([*warm, "--checkpoint-dir", str(tmp_path)], "--checkpoint-dir")]:
        assert main([*common, *extra, "--out", str(out)]) == 2
        assert f"error: {option}" in capsys.readouterr().err
