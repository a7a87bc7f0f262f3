"""Affinity runs measured elsewhere (``POST /affinity-runs``) in both modes (embedded SQLite; server
PostgreSQL + Redis): validation naming the field, listing, isolation by project, ``GET /groupings`` on a
run's id (the same solve as a job's table: half-size singletons, method choice, trust from epochs),
deletion; the Python client; and, against a real ``taskgrouper serve``, a restart and the ``upload``
command."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from child_processes import Processes, free_port, running_in
from conftest import make_key, service_env

from grouping.affinity.run import AffinityRun
from grouping.problem import parse_problem
from grouping.selection import solve
from service.client import TaskgrouperClient
from service.limits import MAX_RUN_EPOCHS

TASKS = ["a", "b", "c", "d"]
TAG = [
    [0.0, 0.5, -0.2, 0.1],
    [0.4, 0.0, 0.1, -0.3],
    [-0.1, 0.2, 0.0, 0.6],
    [0.0, -0.2, 0.7, 0.0],
]
COSINE = [
    [1.0, -0.1, 0.3, 0.2],
    [-0.1, 1.0, 0.4, 0.1],
    [0.3, 0.4, 1.0, -0.2],
    [0.2, 0.1, -0.2, 1.0],
]


def epoch(matrix: list[list[float]], shift: float) -> list[list[float]]:
    return [[v + shift * (i - j) for j, v in enumerate(row)] for i, row in enumerate(matrix)]


RUN = {
    "name": "resnet-mtl",
    "tasks": TASKS,
    "matrices": {"tag": TAG, "grad_cosine": COSINE},
    "trajectories": {"tag": [epoch(TAG, 0.05), epoch(TAG, -0.05), epoch(TAG, 0.02)]},
    "metadata": {"model": "resnet18", "optimizer": "AdamW", "affinity_steps": 30},
}


def direct(matrix: list[list[float]], budget: float) -> dict:
    """The optimum of ``matrix`` as a job's stored table is solved: forbid, half-size singletons."""
    problem = {
        "tasks": TASKS,
        "objective": "max_affinity",
        "affinity": {"onto_row_from_column": matrix},
        "singletons": "forbid",
        "network_cost": 1.0,
        "half_singletons": True,
    }
    return solve(parse_problem(problem), budget).to_dict()


def assert_problem(response: httpx.Response, status: int, field: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    if field is not None:
        assert body["field"] == field, body
    return body


def upload(client, **changes) -> dict:
    response = client.post("/affinity-runs", json={**RUN, **changes})
    assert response.status_code == 201, response.text
    return response.json()


def _with(body: dict, **changes) -> dict:
    return {**body, **changes}


def _square(n: int) -> list[list[float]]:
    return [[0.1 * (i != j) for j in range(n)] for i in range(n)]


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        (_with(RUN, matrices={"tag": TAG[:3]}), "matrices.tag", "4 x 4"),
        (_with(RUN, matrices={"tag": [TAG[0], TAG[1][:3], TAG[2], TAG[3]]}), "matrices.tag[1]", "3 columns"),
        (_with(RUN, matrices={"tag": [[*TAG[0][:1], None, *TAG[0][2:]], *TAG[1:]]}), "matrices.tag[0][1]",
         "number"),
        (_with(RUN, matrices={"tag": [[0.0, 2e6, 0.0, 0.0], *TAG[1:]]}), "matrices.tag[0][1]", "1000000"),
        (_with(RUN, matrices={"nope": TAG}), "matrices.nope", "unknown affinity method"),
        (_with(RUN, matrices={}), "matrices", ""),
        (_with(RUN, trajectories={"nope": [TAG]}), "trajectories.nope", "unknown affinity method"),
        (_with(RUN, trajectories={"tag_first_order": [TAG]}), "trajectories.tag_first_order",
         "without a matrix"),
        (_with(RUN, trajectories={"tag": [TAG, TAG[:2]]}), "trajectories.tag[1]", "4 x 4"),
        (_with(RUN, tasks=["a", "b", "c"]), "matrices.tag", "3 tasks"),
        (_with(RUN, tasks=["a", "b", "c", "a"]), "tasks", "listed twice"),
        (_with(RUN, tasks=["a"]), "tasks", ""),
        (_with(RUN, tasks=[f"t{i}" for i in range(65)], matrices={"tag": _square(65)}, trajectories={}),
         "tasks", "max_tasks"),
        (_with(RUN, tasks=["a", "b"], matrices={"tag": _square(2)},
               trajectories={"tag": [_square(2)] * (MAX_RUN_EPOCHS + 1)}), "trajectories", "epochs"),
        (_with(RUN, name=""), "name", ""),
        ({k: v for k, v in RUN.items() if k != "name"}, "name", ""),
        (_with(RUN, colour="red"), "colour", ""),
        (_with(RUN, metadata={"deep": json.loads("[" * 400 + "]" * 400)}), "metadata", "levels deep"),
    ],
)
def test_bad_runs_are_refused_naming_the_field(api_client, body, field, words):
    problem = assert_problem(api_client.post("/affinity-runs", json=body), 422, field)
    assert words in problem["reason"], problem


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_scores_are_refused_naming_the_entry(api_client, token):
    text = json.dumps(RUN).replace("0.5", token, 1)  # TAG[0][1], the first 0.5 of the document
    response = api_client.post("/affinity-runs", content=text, headers={"content-type": "application/json"})
    assert "finite" in assert_problem(response, 422, "matrices.tag[0][1]")["reason"]


def test_an_uploaded_run_is_listed_read_solved_and_deleted(api_client):
    run = upload(api_client)
    assert run["methods"] == ["tag", "grad_cosine"] and run["epochs"] == 3 and run["steps"] == 30
    assert run["metadata"] == RUN["metadata"] and run["tasks"] == TASKS
    assert run["links"]["self"] == f"/affinity-runs/{run['id']}"
    page = api_client.get("/affinity-runs").json()
    assert page["total"] == 1 and [item["id"] for item in page["items"]] == [run["id"]]
    assert "matrices" not in page["items"][0]
    detail = api_client.get(f"/affinity-runs/{run['id']}").json()
    assert detail["matrices"] == RUN["matrices"] and detail["trajectories"] == RUN["trajectories"]

    # GET /groupings takes the run's id as a job's: its first method by default, solved as a job's table
    response = api_client.get(run["links"]["groupings"])
    assert response.status_code == 200, response.text
    grouping = response.json()
    expected = direct(TAG, 2)
    assert grouping["method"] == "tag" and grouping["singletons"] == "forbid" and not grouping["stored"]
    assert grouping["objective"] == pytest.approx(expected["objective"])
    assert grouping["networks"] == expected["networks"]
    trust = grouping["trust"]  # three complete epochs: resampled
    assert trust["samples"] > 0 and trust["objective"]["low"] <= trust["objective"]["high"]
    assert api_client.get(run["links"]["groupings"]).json()["stored"] is True

    # half-size singletons: the default curve steps by 0.5, and 1.5 buys one group and a half network
    curve = api_client.get("/groupings", params={"job_id": run["id"], "budgets": "1:4:0.5"}).json()["curve"]
    assert [s["budget"] for s in curve] == [1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0]
    half = direct(TAG, 1.5)
    assert curve[1]["objective"] == pytest.approx(half["objective"])
    assert any(n["size"] == "half" for n in curve[1]["networks"]) == any(
        n["size"] == "half" for n in half["networks"]
    )

    # another method by name; its run has no trajectory, so no trust; an unknown one names method
    cosine = api_client.get("/groupings", params={"job_id": run["id"], "budget": 2, "method": "grad_cosine"})
    assert cosine.status_code == 200, cosine.text
    assert cosine.json()["objective"] == pytest.approx(direct(COSINE, 2)["objective"])
    assert cosine.json()["trust"] is None
    missing = {"job_id": run["id"], "budget": 2, "method": "tag_first_order"}
    assert_problem(api_client.get("/groupings", params=missing), 422, "method")
    # 'normalized' needs positive self-affinities, which TAG's zero diagonal is not
    assert_problem(
        api_client.get("/groupings", params={"job_id": run["id"], "budget": 2, "singletons": "normalized"}),
        422,
        "singletons",
    )

    assert api_client.delete(f"/affinity-runs/{run['id']}").status_code == 204
    assert_problem(api_client.get(f"/affinity-runs/{run['id']}"), 404, "run_id")
    assert_problem(api_client.delete(f"/affinity-runs/{run['id']}"), 404, "run_id")
    assert_problem(api_client.get(run["links"]["groupings"]), 404, "job_id")
    assert api_client.get("/affinity-runs").json()["total"] == 0


def test_a_single_epoch_run_is_solved_without_trust(api_client):
    run = upload(api_client, trajectories={"tag": [TAG]})
    grouping = api_client.get(run["links"]["groupings"]).json()
    assert grouping["status"] == "optimal" and grouping["trust"] is None


def test_the_list_pages_newest_first(api_client):
    ids = [upload(api_client, name=f"run-{i}")["id"] for i in range(3)]
    first = api_client.get("/affinity-runs", params={"limit": 2}).json()
    assert first["total"] == 3 and [r["id"] for r in first["items"]] == ids[::-1][:2]
    second = api_client.get(first["next"]).json()
    assert [r["id"] for r in second["items"]] == ids[:1] and second["next"] is None


def test_runs_are_visible_to_their_project_only(server_settings):
    from fastapi.testclient import TestClient

    from service.app import create_app

    with TestClient(create_app(server_settings)) as client:
        owner = {"Authorization": f"Bearer {make_key(server_settings, 'owner-' + os.urandom(4).hex())}"}
        other = {"Authorization": f"Bearer {make_key(server_settings, 'other-' + os.urandom(4).hex())}"}
        response = client.post("/affinity-runs", json=RUN, headers=owner)
        assert response.status_code == 201, response.text
        run = response.json()
        assert client.get(run["links"]["groupings"], headers=owner).status_code == 200
        for method, url in [
            ("GET", f"/affinity-runs/{run['id']}"),
            ("DELETE", f"/affinity-runs/{run['id']}"),
            ("GET", run["links"]["groupings"]),
        ]:
            assert_problem(client.request(method, url, headers=other), 404)
        assert client.get("/affinity-runs", headers=other).json()["total"] == 0
        assert client.get("/affinity-runs", headers=owner).json()["total"] == 1
        assert client.get(f"/affinity-runs/{run['id']}", headers=owner).status_code == 200
        assert_problem(client.post("/affinity-runs", json=RUN), 401)


def test_the_client_uploads_a_library_run_a_dict_and_a_file(embedded_client, tmp_path):
    library = AffinityRun(
        tasks=TASKS,
        matrices={"tag_first_order": np.array(TAG)},
        trajectories={"tag_first_order": [np.array(epoch(TAG, 0.1)), np.full((4, 4), np.nan)]},
        metadata={"optimizer": "SGD"},
    )
    client = TaskgrouperClient(http=embedded_client, retry=None)
    first = client.upload_affinity(library, name="plain-loop", metadata={"model": "mlp"})
    assert first.methods == ["tag_first_order"] and first.epochs == 2
    assert first.metadata == {"optimizer": "SGD", "model": "mlp"}
    stored = client.affinity_run(first.id)
    assert stored.trajectories["tag_first_order"][1] == [[None] * 4] * 4  # an epoch without a measurement
    grouping = client.groupings(first.id, 2)
    assert grouping.objective == pytest.approx(direct(TAG, 2)["objective"])
    assert grouping.trust is None  # one complete epoch only

    second = client.upload_affinity(library.to_dict(), name="as-dict")
    path = tmp_path / "RUN.json"
    path.write_text(json.dumps(library.to_dict()))
    third = client.upload_affinity(path)
    assert third.name == "RUN" and second.name == "as-dict"
    # what `taskgrouper affinity --out` writes: the run under the problem's metadata
    problem = library.to_problem_dict("tag_first_order")
    problem["metadata"] |= {k: library.to_dict()[k] for k in ("matrices", "trajectories")}
    fourth = client.upload_affinity(problem, name="from-cli")
    assert fourth.methods == ["tag_first_order"] and fourth.epochs == 2
    assert [r.id for r in client.affinity_runs().items] == [fourth.id, third.id, second.id, first.id]
    client.delete_affinity_run(fourth.id)
    assert client.affinity_runs().total == 3


# --- a real server: restart and the CLI ---------------------------------------------------------------


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    yield from running_in(tmp_path)



def serve(processes: Processes, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    """``taskgrouper serve`` with ``env`` on a free port, once it answers: ``(process, base URL)``."""
    port = free_port()
    process = processes.start("serve", ["taskgrouper", "serve", "--port", str(port)], env=env)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert process.poll() is None, processes.logs()
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return process, base
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise AssertionError("taskgrouper serve did not answer within 180 s")


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["taskgrouper", *args], env=env, capture_output=True, text=True, timeout=120)


def test_runs_survive_a_restart_and_the_cli_uploads(server_settings, processes, tmp_path):
    env = service_env(server_settings)
    key = make_key(server_settings, server_settings.default_project)
    process, base = serve(processes, env)
    client_env = {**env, "TASKGROUPER_SERVER": base, "TASKGROUPER_API_KEY": key}

    path = tmp_path / "resnet.json"
    path.write_text(json.dumps({k: v for k, v in RUN.items() if k != "name"}))
    done = cli("upload", str(path), "--metadata", "note=cli", "--json", env=client_env)
    assert done.returncode == 0, done.stderr
    uploaded = json.loads(done.stdout)
    assert uploaded["name"] == "resnet" and uploaded["metadata"]["note"] == "cli"
    assert uploaded["metadata"]["model"] == "resnet18"
    plain = cli("upload", str(path), "--name", "second", env=client_env)
    assert plain.returncode == 0 and "second" in plain.stdout and "/groupings?job_id=" in plain.stdout
    solved = cli("jobs", "groupings", uploaded["id"], "--budget", "2.5", "--json", env=client_env)
    assert solved.returncode == 0, solved.stderr
    assert json.loads(solved.stdout)["objective"] == pytest.approx(direct(TAG, 2.5)["objective"])

    with TaskgrouperClient(base, api_key=key) as client:
        before = client.groupings(uploaded["id"], 2)
    processes.kill(process)
    _, base = serve(processes, env)  # a new server process on the same database
    with TaskgrouperClient(base, api_key=key) as client:
        assert client.affinity_run(uploaded["id"]).matrices == RUN["matrices"]
        assert client.affinity_runs().total == 2
        after = client.groupings(uploaded["id"], 2)
        assert after.stored and after.objective == before.objective and after.networks == before.networks
        again = client.groupings(uploaded["id"], 3)  # solved by the new process
        assert again.objective == pytest.approx(direct(TAG, 3)["objective"])

    # refusals: the server's names the field (exit 1), a file that is no JSON names the file (exit 2)
    client_env["TASKGROUPER_SERVER"] = base
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**RUN, "matrices": {"tag": TAG[:3]}}))
    refused = cli("upload", str(bad), env=client_env)
    assert refused.returncode == 1 and "matrices.tag" in refused.stderr and "4 x 4" in refused.stderr
    assert "Traceback" not in refused.stderr
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    broken = cli("upload", str(garbage), env=client_env)
    assert broken.returncode == 2 and "not JSON" in broken.stderr and "Traceback" not in broken.stderr
    absent = cli("upload", str(tmp_path / "absent.json"), env=client_env)
    assert absent.returncode == 2 and "absent.json" in absent.stderr
    unauthorised = cli("upload", str(path), env={**client_env, "TASKGROUPER_API_KEY": ""})
    assert unauthorised.returncode == 1 and "401" in unauthorised.stderr


def test_a_plain_training_loop_run_is_accepted_and_solved(embedded_client):
    """The tracker in a plain loop over a DataLoader (BatchNorm, AdamW, per-task losses of any kind),
    its result uploaded as it is and solved."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from grouping.affinity import AffinityTracker

    torch.manual_seed(0)
    names = ["x", "y", "z"]
    inputs = torch.randn(96, 6)
    targets = torch.stack([inputs[:, 0] + inputs[:, 1], inputs[:, 1] - inputs[:, 2], inputs[:, 3]], dim=1)
    loader = DataLoader(TensorDataset(inputs, targets), batch_size=16, shuffle=True)
    trunk = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.BatchNorm1d(16), torch.nn.ReLU())
    outputs = torch.nn.ModuleDict({name: torch.nn.Linear(16, 1) for name in names})
    optimizer = torch.optim.AdamW([*trunk.parameters(), *outputs.parameters()], lr=1e-2, weight_decay=0.1)
    methods = ("tag", "tag_first_order")
    tracker = AffinityTracker(trunk.parameters(), optimizer, names, every=2, methods=methods)

    def losses(x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        shared = trunk(x)
        return {
            name: torch.nn.functional.smooth_l1_loss(outputs[name](shared).squeeze(1), y[:, k])
            for k, name in enumerate(names)
        }

    for _ in range(2):
        for x, y in loader:
            optimizer.zero_grad()
            tracker.backward(losses(x, y), lambda x=x, y=y: losses(x, y))
            optimizer.step()
        tracker.end_epoch()

    client = TaskgrouperClient(http=embedded_client, retry=None)
    run = client.upload_affinity(tracker.result(), name="plain-loop", metadata={"model": "mlp+bn"})
    assert run.tasks == names and run.methods == ["tag", "tag_first_order"] and run.epochs == 2
    assert run.steps == tracker.steps and run.metadata["optimizer"] == "AdamW"
    grouping = client.groupings(run.id, 2)
    assert grouping.status == "optimal" and grouping.trust is not None
    expected = tracker.result().to_problem_dict("tag")
    assert grouping.objective == pytest.approx(solve(parse_problem(expected), 2).objective)


def test_an_embedded_run_survives_a_restart(embedded_settings):
    from fastapi.testclient import TestClient

    from service.app import create_app

    with TestClient(create_app(embedded_settings)) as first:
        run = upload(first)
        before = first.get(run["links"]["groupings"]).json()
    with TestClient(create_app(embedded_settings)) as second:  # a new app on the same SQLite file
        assert second.get(f"/affinity-runs/{run['id']}").json()["matrices"] == RUN["matrices"]
        after = second.get(run["links"]["groupings"]).json()
        assert after["stored"] and after["networks"] == before["networks"]
