"""Every input is validated before it reaches the database, a file or a worker, in both modes
(embedded SQLite; server PostgreSQL + Redis):

* JSON columns are written as standard JSON by the engines themselves (any write path);
* text with a NUL byte, another control character or a lone surrogate — in a path, a query, a body,
  a form field, an upload's file name or its column names — is a 422 naming the field, and an upload
  refused for any reason leaves no file behind;
* a job is checked against its uploaded dataset's schema at submission (a target that is also a
  feature, a numeric feature with missing values, ``binary`` on a many-class column) and seeds are
  bounded, instead of the job failing later in the worker.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import insert, text
from sqlalchemy.orm import Session, sessionmaker

from service.db import make_engine, make_session_factory, transaction
from service.migrate import upgrade
from service.models import Grouping, Job, utcnow
from service.settings import Settings

pytestmark = [pytest.mark.services]


def assert_problem(response: Any, status: int, field: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    if field is not None:
        assert body["field"] == field, body
    return body


def uploads(client: Any) -> list[Path]:
    """The folders of stored uploads under the app's home."""
    folder = client.app.state.settings.datasets_dir
    return sorted(folder.iterdir()) if folder.exists() else []


def multipart(filename: str, content: bytes, **fields: str) -> tuple[bytes, dict[str, str]]:
    """A multipart body written by hand, so the file name reaches the server byte for byte (httpx
    would percent-encode a NUL in it)."""
    boundary = "taskgrouperboundary"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: text/csv\r\n\r\n".encode()
        + content
        + b"\r\n"
    )
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, {"content-type": f"multipart/form-data; boundary={boundary}"}


# --- JSON columns ---------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    if request.param == "postgres":
        url = request.getfixturevalue("server_settings").resolved_database_url
    else:
        url = f"sqlite:///{tmp_path / 'engine.sqlite3'}"
        upgrade(url)
    engine = make_engine(url, pool_size=1)
    yield make_session_factory(engine)
    engine.dispose()


def test_every_json_write_is_standard_json_whatever_the_write_path(sessions):
    """ORM and Core writes of documents holding NaN, infinities, numpy values and a NUL character —
    none of them converted by the caller — are stored as standard JSON by the engine."""
    spec = {"dataset": "synthetic", "nan": float("nan"), "arr": np.array([1.5, np.inf]), "n": np.int64(3)}
    with transaction(sessions) as session:
        job = Job(
            project="p",
            status="failed",
            spec=spec,
            spec_hash="x",
            cancel_requested=False,
            progress_fraction=0.0,
            attempts=0,
            created_at=utcnow(),
            error={"field": None, "reason": "quoted foreign text: a\x00b"},
        )
        session.add(job)
        session.flush()
        job_id = job.id
        session.execute(
            insert(Grouping).values(
                project="p",
                job_id=job_id,
                method="tag",
                solver="bip",
                singletons="forbid",
                budget=2.0,
                status="feasible",
                objective=None,
                solve_seconds=0.0,
                solution={
                    "objective": float("nan"),
                    "bound": float("-inf"),
                    "per_task": {"a": np.float32(0.5)},
                },
            )
        )
    with sessions() as session:
        raw_spec, raw_error = session.execute(
            text("SELECT CAST(spec AS TEXT), CAST(error AS TEXT) FROM jobs WHERE id = :id"), {"id": job_id}
        ).one()
        raw_solution = session.scalar(
            text("SELECT CAST(solution AS TEXT) FROM groupings WHERE job_id = :id"), {"id": job_id}
        )
        stored = session.get(Job, job_id)
    for raw in (raw_spec, raw_solution):
        assert "NaN" not in raw and "Infinity" not in raw, raw
        json.loads(raw, parse_constant=lambda token: pytest.fail(f"non-standard token {token}"))
    assert stored.spec == {"dataset": "synthetic", "nan": None, "arr": [1.5, None], "n": 3}
    assert json.loads(raw_solution) == {"objective": None, "bound": None, "per_task": {"a": 0.5}}
    assert "\x00" not in json.loads(raw_error)["reason"] and "a\ufffdb" in json.loads(raw_error)["reason"]


# --- text inputs ----------------------------------------------------------------------------------

NUL = "a\x00b"


@pytest.mark.parametrize(
    ("method", "path", "field"),
    [
        ("get", "/jobs/a%00b", "job_id"),
        ("post", "/jobs/a%00b/cancel", "job_id"),
        ("get", "/jobs/a%00b/affinity", "job_id"),
        ("get", "/datasets/a%00b", "dataset_id"),
        ("get", "/jobs/a%01b", "job_id"),
        ("get", "/groupings?job_id=a%00b&budget=2", "job_id"),
        ("get", "/groupings?job_id=x&budget=2&method=t%00g", "method"),
        ("get", "/groupings?job_id=x&budgets=1%00", "budgets"),
    ],
)
def test_control_characters_in_path_and_query_parameters_are_422(api_client, method, path, field):
    body = assert_problem(getattr(api_client, method)(path), 422, field)
    assert "NUL" in body["reason"] or "control character" in body["reason"], body


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"dataset": NUL}, "dataset"),
        ({"dataset": "digits-attributes", "features": [NUL]}, "features[0]"),
        ({"dataset": "digits-attributes", "tasks": [{"name": NUL, "type": "binary"}]}, "tasks[0].name"),
        (
            {"dataset": "digits-attributes", "tasks": [{"name": "t", "column": NUL, "type": "binary"}]},
            "tasks[0].column",
        ),
        ({"dataset": "digits-attributes", "split": {"column": NUL}}, "split.column"),
        ({"dataset": "digits-attributes", "features": ["tab\there"]}, "features[0]"),
    ],
)
def test_control_characters_in_job_bodies_are_422_naming_the_field(api_client, body, field):
    assert_problem(api_client.post("/jobs", json=body), 422, field)
    assert api_client.get("/jobs").json()["total"] == 0


def test_a_lone_surrogate_is_422_not_an_encoding_error(api_client):
    raw = b'{"dataset": "\\ud800x"}'  # valid JSON, but no UTF-8 text: PostgreSQL cannot take it
    response = api_client.post("/jobs", content=raw, headers={"content-type": "application/json"})
    assert_problem(response, 422, "dataset")


def test_control_characters_in_a_posted_problem_are_422(api_client):
    problem = {
        "tasks": ["a", NUL],
        "objective": "max_affinity",
        "affinity": {"onto_row_from_column": [[0.0, 0.1], [0.2, 0.0]]},
    }
    assert_problem(
        api_client.post("/groupings", json={"budget": 1, "problem": problem}), 422, "problem.tasks[1]"
    )


@pytest.mark.parametrize(
    ("filename", "fields", "content", "field"),
    [
        ("t\x00.csv", {}, b"a,b\n1,2\n3,4\n", "file"),
        ("t\x01.csv", {}, b"a,b\n1,2\n3,4\n", "file"),
        ("t.csv", {"name": NUL}, b"a,b\n1,2\n3,4\n", "name"),
        ("t.csv", {}, b"a\x00x,b\n1,2\n3,4\n", "file"),  # a column name with a NUL
        ("x" * 300 + ".csv", {}, b"a,b\n1,2\n3,4\n", "file"),  # a file name too long to be its name
    ],
)
def test_an_upload_with_bad_text_is_422_and_leaves_no_file(api_client, filename, fields, content, field):
    body, headers = multipart(filename, content, **fields)
    assert_problem(api_client.post("/datasets", content=body, headers=headers), 422, field)
    assert uploads(api_client) == []
    # the same upload with acceptable text is stored (the hand-written multipart body is sound)
    body, headers = multipart("t.csv", b"a,b\n1,2\n3,4\n")
    assert api_client.post("/datasets", content=body, headers=headers).status_code == 201
    assert len(uploads(api_client)) == 1


def test_an_upload_whose_row_cannot_be_inserted_leaves_no_file(embedded_client, monkeypatch):
    from service.routes import datasets

    def broken(_sessions: Any) -> Any:
        raise RuntimeError("database gone")

    monkeypatch.setattr(datasets, "transaction", broken)
    response = embedded_client.post("/datasets", files={"file": ("t.csv", b"a,b\n1,2\n3,4\n")})
    assert_problem(response, 500)
    assert uploads(embedded_client) == []


def test_a_location_with_an_encoded_nul_is_422(tmp_path):
    from fastapi.testclient import TestClient

    from service.app import create_app

    root = tmp_path / "root"
    root.mkdir()
    settings = Settings(home=tmp_path / "home", database_url=None, broker_url=None, dataset_roots=[root])
    with TestClient(create_app(settings)) as client:
        response = client.post("/datasets", data={"location": f"file://{root}/a%00b.csv"})
        assert "NUL" in assert_problem(response, 422, "location")["reason"]


# --- jobs checked against the dataset's schema ------------------------------------------------------


@pytest.fixture
def dataset_id(api_client) -> str:
    """An uploaded CSV: numeric x1, x2, a binary label, a 6-class column, a text column, a numeric
    column with a missing value."""
    rows = [
        f"{i * 0.1},{i % 7},{i % 2},{i % 6},{['red', 'green', 'blue'][i % 3]},{'' if i == 5 else i * 1.5}"
        for i in range(60)
    ]
    csv = "x1,x2,label,six,colour,gappy\n" + "\n".join(rows)
    response = api_client.post("/datasets", files={"file": ("t.csv", csv.encode())})
    assert response.status_code == 201, response.text
    return response.json()["id"]


LABEL = [{"name": "label", "type": "binary"}]


@pytest.mark.parametrize(
    ("job", "field", "words"),
    [
        ({"tasks": LABEL, "features": ["x1", "label"]}, "features[1]", "target of task 'label'"),
        ({"tasks": LABEL}, "features", "'gappy' has 1 missing"),  # every other column is a feature
        ({"tasks": LABEL, "features": ["gappy"]}, "features[0]", "missing"),
        ({"tasks": [{"name": "six", "type": "binary"}], "features": ["x1"]}, "tasks[0].type", "6 distinct"),
        (
            {"tasks": [{"name": "c", "column": "colour", "type": "regression"}], "features": ["x1"]},
            "tasks[0].type",
            "not numeric",
        ),
        (
            {"tasks": [{"name": "g", "column": "gappy", "type": "regression"}], "features": ["x1"]},
            "tasks[0].column",
            "missing",
        ),
        ({"tasks": LABEL, "features": ["x1", "x1"]}, "features", "twice"),
    ],
)
def test_a_job_the_dataset_schema_rules_out_is_422_at_submission(api_client, dataset_id, job, field, words):
    body = assert_problem(api_client.post("/jobs", json={"dataset": dataset_id, **job}), 422, field)
    assert words in body["reason"], body
    assert api_client.get("/jobs").json()["total"] == 0


def test_a_job_the_dataset_schema_allows_is_accepted(api_client, dataset_id):
    job = {
        "dataset": dataset_id,
        "tasks": LABEL + [{"name": "six", "type": "multiclass"}],
        "features": ["x1", "x2"],
    }
    response = api_client.post("/jobs", json=job)
    assert response.status_code == 202, response.text
    also_text_target = {
        "dataset": dataset_id,
        "tasks": [{"name": "colour", "type": "multiclass"}],
        "features": ["x1", "x2"],
    }
    assert api_client.post("/jobs", json=also_text_target).status_code == 202


@pytest.mark.parametrize(
    ("job", "field"),
    [
        ({"training": {"seed": 10**30}}, "training.seed"),
        ({"training": {"seed": 2**32}}, "training.seed"),
        ({"training": {"seed": -1}}, "training.seed"),
        ({"split": {"seed": -1}}, "split.seed"),
        ({"split": {"seed": 10**30}}, "split.seed"),
    ],
)
def test_seeds_outside_32_bits_are_422(api_client, job, field):
    assert_problem(api_client.post("/jobs", json={"dataset": "digits-attributes", **job}), 422, field)


def test_the_largest_seed_is_accepted(api_client):
    job = {"dataset": "digits-attributes", "training": {"seed": 2**32 - 1}, "split": {"seed": 0}}
    response = api_client.post("/jobs", json=job)
    assert response.status_code == 202, response.text
    assert response.json()["spec"]["training"]["seed"] == 2**32 - 1


def test_the_openapi_schema_states_the_text_and_seed_rules(api_client):
    schemas = api_client.get("/openapi.json").json()["components"]["schemas"]
    dataset = schemas["JobCreate"]["properties"]["dataset"]
    assert dataset["maxLength"] == 255 and "pattern" in dataset
    seed = schemas["JobTraining"]["properties"]["seed"]
    assert seed["minimum"] == 0 and seed["maximum"] == 2**32 - 1
    assert not math.isnan(seed["maximum"])
