"""The API in both modes (embedded SQLite + in-process runner; server PostgreSQL + Redis): validation,
errors, groupings, uploads."""

from __future__ import annotations

import io

import numpy as np
import pytest
from conftest import stored_job

from grouping.problem import parse_problem
from grouping.selection import solve

PROBLEM = {
    "tasks": ["a", "b", "c", "d"],
    "objective": "max_affinity",
    "affinity": {
        "onto_row_from_column": [
            [0.0, 0.5, -0.2, 0.1],
            [0.4, 0.0, 0.1, -0.3],
            [-0.1, 0.2, 0.0, 0.6],
            [0.0, -0.2, 0.7, 0.0],
        ]
    },
    "singletons": "forbid",
    "network_cost": 1.0,
}


def add_job(client, status: str = "succeeded", **fields) -> str:
    """A job row in ``status`` (with a stored network table when succeeded), without training."""
    return stored_job(client.app.state.session_factory, client.app.state.settings.default_project,
                      status=status, problem=PROBLEM if status == "succeeded" else None, **fields)


def assert_problem(response, status: int, field: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["detail"]
    if field is not None:
        assert body["field"] == field, body
    return body


def test_health_docs_and_metrics(api_client):
    assert api_client.get("/healthz").json() == {"status": "ok", "checks": {}}
    ready = api_client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok", "queue": "ok"}
    assert "/jobs" in api_client.get("/openapi.json").json()["paths"]
    assert api_client.get("/docs").status_code == 200
    add_job(api_client, "failed", run_seconds=12.0)
    text = api_client.get("/metrics").text
    for name in (
        'taskgrouper_jobs{status="failed"}',
        "taskgrouper_job_duration_seconds_bucket",
        "taskgrouper_http_request_duration_seconds_bucket",
        "taskgrouper_solve_duration_seconds",
    ):
        assert name in text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "dataset"),
        ({"dataset": "digits-attributes", "training": {"epochs": 0}}, "training.epochs"),
        ({"dataset": "digits-attributes", "methods": ["nope"]}, "methods[0]"),
        ({"dataset": "digits-attributes", "methods": ["tag", "tag"]}, "methods"),
        ({"dataset": "digits-attributes", "tasks": [{"name": "x", "type": "ordinal"}]}, "tasks[0].type"),
        ({"dataset": "digits-attributes", "colour": "red"}, "colour"),
        ({"dataset": "no-such-dataset"}, "dataset"),
    ],
)
def test_invalid_job_bodies_name_the_field(api_client, body, field):
    assert_problem(api_client.post("/jobs", json=body), 422, field)


def test_malformed_json_is_a_422(api_client):
    response = api_client.post("/jobs", content=b"{not json", headers={"content-type": "application/json"})
    assert_problem(response, 422)


def test_unknown_resources_are_404(api_client):
    assert_problem(api_client.get("/jobs/nope"), 404, "job_id")
    assert_problem(api_client.post("/jobs/nope/cancel"), 404, "job_id")
    assert_problem(api_client.get("/jobs/nope/affinity"), 404, "job_id")
    assert_problem(api_client.get("/groupings", params={"job_id": "nope", "budget": 2}), 404, "job_id")
    assert_problem(api_client.get("/datasets/nope"), 404, "dataset_id")


def test_groupings_of_an_unfinished_job_are_409_with_its_status(api_client):
    job_id = add_job(api_client, "running")
    body = assert_problem(api_client.get("/groupings", params={"job_id": job_id, "budget": 2}), 409)
    assert body["job_status"] == "running"
    assert assert_problem(api_client.get(f"/jobs/{job_id}/affinity"), 409)["job_status"] == "running"


def test_groupings_solve_once_then_read_the_database(api_client):
    job_id = add_job(api_client)
    first = api_client.get("/groupings", params={"job_id": job_id, "budget": 2})
    assert first.status_code == 200, first.text
    assert first.headers["x-grouping-stored"] == "false"
    second = api_client.get("/groupings", params={"job_id": job_id, "budget": 2.0})
    assert second.headers["x-grouping-stored"] == "true"
    direct = solve(parse_problem(PROBLEM), 2.0).to_dict()
    for body in (first.json(), second.json()):
        assert body["objective"] == pytest.approx(direct["objective"])
        assert body["networks"] == direct["networks"] and body["per_task"] == direct["per_task"]
        assert (body["job_id"], body["method"], body["budget"]) == (job_id, "tag", 2.0)
        assert body["solver"] == "auto" and body["proved_by"] == "column_generation"
    curve = api_client.get("/groupings", params={"job_id": job_id, "budgets": "1:3:1"}).json()["curve"]
    assert [point["budget"] for point in curve] == [1.0, 2.0, 3.0]
    assert curve[1]["networks"] == direct["networks"]


def test_infeasible_budget_is_422_with_the_minimum(api_client):
    job_id = add_job(api_client)
    body = assert_problem(
        api_client.get("/groupings", params={"job_id": job_id, "budget": 0.5}), 422, "budget"
    )
    assert body["min_budget"] == pytest.approx(1.0)
    assert_problem(api_client.get("/groupings", params={"job_id": job_id, "budget": -1}), 422, "budget")
    assert_problem(api_client.get("/groupings", params={"job_id": job_id}), 422, "budget")
    assert_problem(
        api_client.get("/groupings", params={"job_id": job_id, "budget": 2, "method": "grad_cosine"}),
        422,
        "method",
    )
    assert_problem(
        api_client.get("/groupings", params={"job_id": job_id, "budget": 2, "solver": "magic"}), 422, "solver"
    )


def test_post_groupings_solves_a_problem(api_client):
    response = api_client.post("/groupings", json={"problem": PROBLEM, "budget": 2, "solver": "brute_force"})
    assert response.status_code == 200, response.text
    direct = solve(parse_problem(PROBLEM), 2.0, solver="brute_force").to_dict()
    assert response.json()["objective"] == pytest.approx(direct["objective"])
    bad = {**PROBLEM, "affinity": {"onto_row_from_column": [[0.0, 1.0]]}}
    body = assert_problem(api_client.post("/groupings", json={"problem": bad, "budget": 2}), 422)
    assert body["field"].startswith("problem.")
    body = assert_problem(
        api_client.post("/groupings", json={"problem": PROBLEM, "budget": 0.5}), 422, "budget"
    )
    assert body["min_budget"] == pytest.approx(1.0)


def test_cancel_and_list_jobs(api_client):
    queued = add_job(api_client, "queued")
    done = add_job(api_client, "succeeded")
    cancelled = api_client.post(f"/jobs/{queued}/cancel")
    assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled"
    assert api_client.post(f"/jobs/{queued}/cancel").status_code == 202  # idempotent
    assert assert_problem(api_client.post(f"/jobs/{done}/cancel"), 409)["job_status"] == "succeeded"
    page = api_client.get("/jobs", params={"limit": 1}).json()
    assert page["total"] == 2 and len(page["items"]) == 1 and page["next"]
    assert api_client.get(page["next"]).json()["items"][0]["id"] != page["items"][0]["id"]
    only = api_client.get("/jobs", params={"status": "cancelled"}).json()
    assert [j["id"] for j in only["items"]] == [queued]
    assert_problem(api_client.get("/jobs", params={"status": "done"}), 422, "status")


def test_idempotency_key(api_client):
    body = {"dataset": "synthetic", "methods": ["tag"], "training": {"epochs": 1}}
    first = api_client.post("/jobs", json=body, headers={"Idempotency-Key": "k1"})
    assert first.status_code == 202, first.text
    assert set(first.json()) >= {"id", "status", "links"} and first.json()["status"] in ("queued", "running")
    again = api_client.post("/jobs", json=body, headers={"Idempotency-Key": "k1"})
    assert again.status_code == 202 and again.json()["id"] == first.json()["id"]
    other = api_client.post(
        "/jobs", json={**body, "training": {"epochs": 2}}, headers={"Idempotency-Key": "k1"}
    )
    assert_problem(other, 409, "Idempotency-Key")
    assert api_client.post("/jobs", json=body).json()["id"] != first.json()["id"]
    api_client.post(f"/jobs/{first.json()['id']}/cancel")


def test_dataset_upload_infers_the_schema(api_client):
    csv = "x1,x2,label,score,colour\n" + "\n".join(
        f"{i * 0.1},{i % 7},{i % 2},{i * 1.5},{['red', 'green', 'blue'][i % 3]}" for i in range(30)
    )
    response = api_client.post("/datasets", files={"file": ("table.csv", csv.encode())}, data={"name": "t"})
    assert response.status_code == 201, response.text
    info = response.json()
    assert info["n_rows"] == 30 and info["format"] == "csv" and info["name"] == "t"
    types = {c["name"]: c["suggested_type"] for c in info["columns"]}
    assert types == {
        "x1": "regression",
        "x2": "multiclass",
        "label": "binary",
        "score": "regression",
        "colour": "multiclass",
    }
    assert api_client.get(f"/datasets/{info['id']}").json() == info

    job = api_client.post(
        "/jobs", json={"dataset": info["id"], "tasks": [{"name": "y", "column": "nope", "type": "binary"}]}
    )
    assert_problem(job, 422, "tasks[0].column")
    assert_problem(api_client.post("/jobs", json={"dataset": info["id"]}), 422, "tasks")


def test_npz_upload(api_client):
    buffer = io.BytesIO()
    np.savez(buffer, x=np.zeros((12, 1, 8, 8), dtype=np.float32), y=np.arange(12) % 3)
    response = api_client.post("/datasets", files={"file": ("digits.npz", buffer.getvalue())})
    assert response.status_code == 201, response.text
    columns = {c["name"]: c for c in response.json()["columns"]}
    assert columns["x"]["shape"] == [12, 1, 8, 8] and columns["y"]["suggested_type"] == "multiclass"


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("table.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00"),
        ("table.csv", b""),
        ("table.csv", b"a,b\n1,2,3,4\n5\n"),
        ("table.parquet", b"PAR1 not really parquet"),
        ("table.npz", b"PK\x03\x04 broken zip"),
        ("table.txt", b"a,b\n1,2\n"),
    ],
)
def test_invalid_uploads_are_422_with_a_reason(api_client, name, content):
    body = assert_problem(api_client.post("/datasets", files={"file": (name, content)}), 422, "file")
    assert body["reason"]


def test_missing_upload_file_is_422(api_client):
    assert_problem(api_client.post("/datasets", data={"name": "x"}), 422, "file")


def test_an_offset_past_64_bits_is_a_422_not_a_database_error(api_client):
    """Found by schemathesis: the value used to reach PostgreSQL's OFFSET and overflow its bigint."""
    body = assert_problem(api_client.get("/jobs", params={"limit": 1, "offset": 2**63}), 422)
    assert "offset" in str(body["field"])
