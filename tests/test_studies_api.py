"""Studies through the API in both modes (SQLite embedded, PostgreSQL server): create, ask, heartbeat,
tell, progress, the table export, and the refusals (unknown trial, finished trial, lost or expired
lease, values that do not fit the network)."""

from __future__ import annotations

import time

import pytest

from grouping.problem import parse_problem
from grouping.selection import solve


def loss(task: str, group: list[str]) -> float:
    """A known table: a task's loss falls with each partner, more for partners that follow it."""
    return round(1.0 - 0.05 * (len(group) - 1) + 0.01 * "abcd".index(task), 6)


def answer(client, trial: dict) -> dict:
    served = trial["tasks"] if trial["size"] == "full" else trial["tasks"][:1]
    values = {t: loss(t, trial["tasks"]) for t in served}
    return client.post(f"/trials/{trial['id']}:tell",
                       json={"lease": trial["lease"], "val": values, "test": values, "epochs_run": 3})


def test_exhaustive_study_ask_tell_until_complete(api_client):
    made = api_client.post("/studies", json={"tasks": list("abcd"), "strategy": "exhaustive",
                                             "half_singletons": True})
    assert made.status_code == 201, made.text
    study = made.json()
    assert study["progress"] == {"waiting": 19, "running": 0, "succeeded": 0, "failed": 0, "total": 19}
    assert study["budgets"] == [1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0]
    ask = f"/studies/{study['id']}/trials:ask"
    told = []
    while (got := api_client.post(ask, json={"worker": "test"})).status_code == 200:
        trial = got.json()
        assert trial["state"] == "running" and trial["lease"] and trial["attempts"] == 1
        beat = api_client.post(f"/trials/{trial['id']}:heartbeat", json={"lease": trial["lease"]})
        assert beat.status_code == 200
        done = answer(api_client, trial)
        assert done.status_code == 200, done.text
        cost = 1.0 if trial["size"] == "full" else 0.5
        assert done.json()["state"] == "succeeded" and done.json()["cost"] == cost
        told.append(trial)
    assert got.status_code == 410 and got.json()["reason"] == "complete"
    assert len(told) == 19 and len({t["id"] for t in told}) == 19
    final = api_client.get(f"/studies/{study['id']}").json()
    assert final["state"] == "complete" and final["progress"]["succeeded"] == 19
    assert [s["id"] for s in api_client.get("/studies").json()["items"]].count(study["id"]) == 1
    listed = api_client.get(f"/studies/{study['id']}/trials", params={"state": "succeeded"}).json()
    assert listed["total"] == 19

    # telling a finished trial again, an unknown trial
    again = answer(api_client, told[0])
    assert again.status_code == 409 and again.json()["reason"] == "finished"
    unknown = api_client.post("/trials/no-such-trial:tell", json={"lease": "x", "val": {"a": 1.0}})
    assert unknown.status_code == 404 and unknown.json()["field"] == "trial_id"

    # the explicit table solves as the known table does
    document = api_client.get(f"/studies/{study['id']}/table").json()
    assert document["metadata"]["trials"] == 19 and document["metadata"]["predicted"] == 0
    problem = parse_problem(document)
    assert len(problem.networks) == 19
    best = solve(problem, 2.0)
    assert best.objective == pytest.approx(sum(loss(t, list("abcd")) for t in "abcd"))


def test_lease_expiry_puts_the_trial_back_and_refuses_the_old_lease(api_client):
    study = api_client.post("/studies", json={"tasks": ["a", "b"], "strategy": "exhaustive",
                                              "lease_seconds": 1, "max_attempts": 2}).json()
    ask = f"/studies/{study['id']}/trials:ask"
    first = api_client.post(ask).json()
    time.sleep(1.2)  # the 1-second lease has expired (no heartbeat)
    expired = answer(api_client, first)
    assert expired.status_code == 409 and expired.json()["reason"] == "lease_expired", expired.text
    beat = api_client.post(f"/trials/{first['id']}:heartbeat", json={"lease": first["lease"]})
    assert beat.status_code == 409 and beat.json()["reason"] == "lease_expired"
    again = api_client.post(ask).json()
    assert again["id"] == first["id"] and again["attempts"] == 2 and again["lease"] != first["lease"]
    lost = answer(api_client, first)
    assert lost.status_code == 409 and lost.json()["reason"] == "lease_lost", lost.text
    assert answer(api_client, again).status_code == 200
    # a second expiry exhausts max_attempts = 2: the trial fails and the study goes on without it
    second = api_client.post(ask).json()
    time.sleep(1.2)
    second_again = api_client.post(ask).json()
    assert second_again["id"] == second["id"] and second_again["attempts"] == 2
    time.sleep(1.2)
    third = api_client.post(ask).json()
    assert third["id"] not in (first["id"], second["id"])
    failed = api_client.get(f"/studies/{study['id']}/trials", params={"state": "failed"}).json()["items"]
    assert [t["id"] for t in failed] == [second["id"]] and "lease expired" in failed[0]["error"]["reason"]


def test_bad_studies_and_tells_are_refused_naming_the_field(api_client):
    too_many = api_client.post("/studies", json={"tasks": [f"t{k}" for k in range(11)]})
    assert too_many.status_code == 422 and too_many.json()["field"] == "tasks"
    twice = api_client.post("/studies", json={"tasks": ["a", "a"]})
    assert twice.status_code == 422 and twice.json()["field"] == "tasks"
    esa = api_client.post("/studies", json={"tasks": ["a", "b"], "esa_epochs": 2})
    assert esa.status_code == 422 and esa.json()["field"] == "esa_epochs"
    assert api_client.get("/studies/nope").status_code == 404
    study = api_client.post("/studies", json={"tasks": ["a", "b"], "strategy": "pairwise"}).json()
    empty = api_client.get(f"/studies/{study['id']}/table")
    assert empty.status_code == 422 and empty.json()["field"] == "trials"
    trial = api_client.post(f"/studies/{study['id']}/trials:ask").json()
    wrong = api_client.post(f"/trials/{trial['id']}:tell", json={"lease": trial["lease"], "val": {"zz": 1.0}})
    assert wrong.status_code == 422 and wrong.json()["field"] == "val", wrong.text
    nan = api_client.post(f"/trials/{trial['id']}:tell",
                          content=b'{"lease": "%s", "val": {"a": NaN}}' % trial["lease"].encode(),
                          headers={"content-type": "application/json"})
    assert nan.status_code == 422
    assert answer(api_client, trial).status_code == 200


def test_python_client_runs_a_study(api_client):
    from service.client import TaskgrouperClient

    client = TaskgrouperClient(http=api_client, retry=None)
    study = client.create_study(list("abc"), strategy="pairwise")
    assert study.out.progress.total == 6
    for trial in study.trials(worker="me"):
        trial.tell({t: loss(t, trial.tasks) for t in trial.tasks})
    assert study.refresh().state == "complete"
    table = study.table()
    assert table["metadata"] == {"study_id": study.id, "strategy": "pairwise", "split": "val",
                                 "trials": 6, "predicted": 1}


def test_builtin_study_runs_in_the_embedded_pool_and_a_bad_task_fails_only_its_trials(embedded_client):
    made = embedded_client.post("/studies", json={
        "tasks": ["c0_t0", "no_such_task"], "strategy": "exhaustive", "execution": "builtin",
        "dataset": "synthetic", "seed": 3, "training": {"epochs": 1}})
    assert made.status_code == 201, made.text
    study_id = made.json()["id"]
    assert embedded_client.post(f"/studies/{study_id}/trials:ask").json()["reason"] == "builtin"
    deadline = time.monotonic() + 300
    while (study := embedded_client.get(f"/studies/{study_id}").json())["state"] != "complete":
        assert time.monotonic() < deadline, study
        time.sleep(0.2)
    listed = embedded_client.get(f"/studies/{study_id}/trials").json()["items"]
    trials = {tuple(t["tasks"]): t for t in listed}
    assert trials[("c0_t0",)]["state"] == "succeeded" and trials[("c0_t0",)]["val"]["c0_t0"] > 0
    for bad in (("no_such_task",), ("c0_t0", "no_such_task")):
        assert trials[bad]["state"] == "failed" and trials[bad]["attempts"] == 1
        assert "no_such_task" in trials[bad]["error"]["reason"]
    refused = embedded_client.post("/studies", json={"tasks": ["a"], "execution": "builtin",
                                                     "dataset": "nope"})
    assert refused.status_code == 422 and refused.json()["field"] == "dataset"
    external = embedded_client.post("/studies", json={"tasks": ["a"], "training": {"epochs": 1}})
    assert external.status_code == 422 and external.json()["field"] == "training"
