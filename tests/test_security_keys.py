"""API keys and project isolation in server mode (real PostgreSQL and Redis): a key sees only its
project's jobs, datasets and groupings (others' answer 404); requests without a valid key get 401;
the CLI creates and revokes keys; only the secret's hash is stored; embedded mode needs no key."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import uuid

import pytest
from conftest import make_key, service_env, stored_job
from fastapi.testclient import TestClient
from sqlalchemy import select
from test_service_api import PROBLEM, assert_problem

from service.app import create_app
from service.auth import secret_hash
from service.models import ApiKey

pytestmark = pytest.mark.services

CSV = "x1,x2,label\n" + "\n".join(f"{i * 0.1},{i % 7},{i % 2}" for i in range(40))


@pytest.fixture
def server_app(server_settings):
    with TestClient(create_app(server_settings)) as client:
        yield client


def as_key(client: TestClient, key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


def seed(client: TestClient, key: str) -> dict[str, str]:
    """A dataset, a finished job with a network table, and a stored grouping, made through ``key``."""
    headers = as_key(client, key)
    dataset = client.post("/datasets", files={"file": ("t.csv", CSV.encode())}, headers=headers)
    assert dataset.status_code == 201, dataset.text
    project = client.app.state.key_verifier.verify(key)[1]
    job_id = stored_job(client.app.state.session_factory, project, problem=PROBLEM, attempts=1)
    grouping = client.get("/groupings", params={"job_id": job_id, "budget": 2}, headers=headers)
    assert grouping.status_code == 200, grouping.text
    return {"dataset": dataset.json()["id"], "job": job_id}


def test_keys_see_only_their_project(server_app, server_settings):
    alice = make_key(server_settings, f"alice-{uuid.uuid4().hex[:8]}")
    bob = make_key(server_settings, f"bob-{uuid.uuid4().hex[:8]}")
    mine, theirs = seed(server_app, alice), seed(server_app, bob)
    for key, own, other in ((alice, mine, theirs), (bob, theirs, mine)):
        headers = as_key(server_app, key)
        assert server_app.get(f"/jobs/{own['job']}", headers=headers).status_code == 200
        assert server_app.get(f"/datasets/{own['dataset']}", headers=headers).status_code == 200
        for response in (
            server_app.get(f"/jobs/{other['job']}", headers=headers),
            server_app.post(f"/jobs/{other['job']}/cancel", headers=headers),
            server_app.get(f"/jobs/{other['job']}/affinity", headers=headers),
            server_app.get("/groupings", params={"job_id": other["job"], "budget": 2}, headers=headers),
            server_app.get(
                "/groupings", params={"job_id": other["job"], "budgets": "1:3:1"}, headers=headers
            ),
        ):
            assert_problem(response, 404, "job_id")
        assert_problem(server_app.get(f"/datasets/{other['dataset']}", headers=headers), 404, "dataset_id")
        listed = server_app.get("/jobs", headers=headers).json()
        assert [j["id"] for j in listed["items"]] == [own["job"]] and listed["total"] == 1
        # another project's dataset cannot be trained on either
        body = {"dataset": other["dataset"], "tasks": [{"name": "label", "type": "binary"}]}
        assert_problem(server_app.post("/jobs", json=body, headers=headers), 422, "dataset")


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer",
        "Bearer nonsense",
        "Basic dXNlcjpwYXNz",
        "Bearer tg_abcdefghijkl_wrongsecret",
        "Bearer tg_ABCDEFGHIJKL_x",
    ],
)
def test_server_mode_requires_a_valid_key(server_app, authorization):
    headers = {"Authorization": authorization} if authorization is not None else {}
    for method, url in (("GET", "/jobs"), ("POST", "/jobs"), ("GET", "/datasets/x"), ("POST", "/groupings")):
        response = server_app.request(method, url, headers=headers, json={"dataset": "synthetic"})
        body = assert_problem(response, 401)
        assert response.headers["www-authenticate"].startswith("Bearer"), body
    assert server_app.get("/healthz").status_code == 200  # probes need no key
    assert server_app.get("/readyz").status_code == 200


def test_keys_are_stored_hashed_and_revocable(server_app, server_settings):
    key = make_key(server_settings, "hashed")
    _, key_id, secret = key.split("_", 2)
    with server_app.app.state.session_factory() as session:
        row = session.scalar(select(ApiKey).where(ApiKey.key_id == key_id))
    assert row.secret_sha256 == hashlib.sha256(secret.encode()).hexdigest() == secret_hash(secret)
    assert secret not in {row.key_id, row.project, row.name}

    env = service_env(server_settings)
    cli = [sys.executable, "-m", "service.cli"]
    created = subprocess.run(
        [*cli, "create-api-key", "--project", "cli-made"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert created.returncode == 0, created.stderr
    cli_key = created.stdout.strip()
    assert cli_key.startswith("tg_") and "not shown again" in created.stderr
    assert server_app.get("/jobs", headers=as_key(server_app, cli_key)).status_code == 200
    revoked = subprocess.run(
        [*cli, "revoke-api-key", cli_key.split("_")[1]], env=env, capture_output=True, text=True, timeout=120
    )
    assert revoked.returncode == 0, revoked.stderr
    with TestClient(create_app(server_settings)) as fresh:  # a process that has not cached the key
        assert_problem(fresh.get("/jobs", headers=as_key(fresh, cli_key)), 401)
    bad = subprocess.run(
        [*cli, "create-api-key", "--project", ""], env=env, capture_output=True, text=True, timeout=120
    )
    assert bad.returncode == 2 and "--project" in bad.stderr


def test_embedded_mode_needs_no_key(embedded_client):
    assert embedded_client.app.state.settings.auth_required is False
    assert embedded_client.get("/jobs").status_code == 200
    assert_problem(embedded_client.get("/jobs", headers={"Authorization": "Bearer wrong"}), 401)


def test_rate_limit_per_key_is_429_with_retry_after(server_settings):
    settings = server_settings.model_copy(update={"rate_limit_requests": 3, "rate_limit_window": 30})
    with TestClient(create_app(settings)) as client:
        first, second = make_key(settings, "limited"), make_key(settings, "limited")
        statuses = [client.get("/jobs", headers=as_key(client, first)).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        limited = client.get("/jobs", headers=as_key(client, first))
        body = assert_problem(limited, 429)
        assert 1 <= int(limited.headers["retry-after"]) <= 30 and body["retry_after"] >= 1
        assert client.get("/jobs", headers=as_key(client, second)).status_code == 200  # per key
