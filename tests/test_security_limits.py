"""Limits and safe input: body and upload size (413), tasks per job and problem size (422), dataset
locations confined to the uploads and configured roots, no unpickling of user data or checkpoints."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from test_service_api import PROBLEM, assert_problem

from grouping.errors import InputError
from grouping.training.checkpoint import FILENAME, load_checkpoint
from service.app import create_app
from service.locations import allowed_location


@pytest.fixture
def roots(tmp_path: Path) -> dict[str, Path]:
    root, outside = tmp_path / "shared-data", tmp_path / "private"
    root.mkdir()
    outside.mkdir()
    (root / "table.csv").write_text("x,label\n" + "\n".join(f"{i},{i % 2}" for i in range(20)))
    (outside / "secret.csv").write_text("password,label\nhunter2,1\n")
    (root / "escape.csv").symlink_to(outside / "secret.csv")
    return {"root": root, "outside": outside}


@pytest.fixture
def small_limits(embedded_settings, roots):
    settings = embedded_settings.model_copy(
        update={
            "max_body_bytes": 4096,
            "max_upload_bytes": 2048,
            "max_tasks": 3,
            "max_networks": 5,
            "dataset_roots": [roots["root"]],
        }
    )
    with TestClient(create_app(settings)) as client:
        yield client


class Evil:
    """Unpickling this would create the file ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def test_request_body_and_upload_size_limits(small_limits):
    big_json = {"dataset": "synthetic", "training": {"epochs": 1}, "padding": "x" * 5000}
    body = assert_problem(small_limits.post("/jobs", json=big_json), 413)
    assert body["limit"] == 4096

    def chunks():  # no Content-Length: the stream is cut off when it crosses the limit
        for _ in range(10):
            yield b" " * 1000

    streamed = small_limits.post("/jobs", content=chunks(), headers={"content-type": "application/json"})
    assert_problem(streamed, 413)
    upload = "a,b\n" + "1,2\n" * 1000
    assert_problem(small_limits.post("/datasets", files={"file": ("t.csv", upload.encode())}), 413)
    assert small_limits.post("/datasets", files={"file": ("t.csv", b"a,b\n1,2\n3,4\n")}).status_code == 201


def test_tasks_per_job_and_problem_size(small_limits):
    tasks = [{"name": f"t{i}", "type": "binary"} for i in range(4)]
    assert_problem(small_limits.post("/jobs", json={"dataset": "synthetic", "tasks": tasks}), 422, "tasks")
    body = assert_problem(small_limits.post("/groupings", json={"problem": PROBLEM, "budget": 2}), 422)
    assert body["field"] == "problem.tasks" and "max_tasks" in body["reason"]
    explicit = {"tasks": ["a"], "networks": [{"trains": ["a"], "cost": 1, "loss": {"a": 1}}] * 6}
    body = assert_problem(small_limits.post("/groupings", json={"problem": explicit, "budget": 2}), 422)
    assert body["field"] == "problem.networks"
    assert_problem(small_limits.get("/groupings", params={"job_id": "x", "budgets": "0:1000000:0.001"}), 422)


def test_dataset_locations_stay_inside_the_roots(small_limits, roots):
    ok = small_limits.post("/datasets", data={"location": str(roots["root"] / "table.csv")})
    assert ok.status_code == 201, ok.text
    assert ok.json()["n_rows"] == 20 and str(roots["root"]) not in ok.text
    for location in (
        str(roots["outside"] / "secret.csv"),
        str(roots["root"] / ".." / "private" / "secret.csv"),
        str(roots["root"] / "escape.csv"),  # a symbolic link out of the root
        "shared-data/table.csv",
        "http://169.254.169.254/latest/meta-data.csv",
        "file://internal-host/etc/passwd.csv",
        "s3://bucket/x.parquet",
        "/etc/passwd",
    ):
        body = assert_problem(small_limits.post("/datasets", data={"location": location}), 422, "location")
        assert "hunter2" not in str(body)
    assert_problem(small_limits.post("/datasets", data={}), 422, "file")


def test_allowed_location_resolves_before_checking(roots):
    root = roots["root"]
    assert allowed_location(f"file://{root}/table.csv", [root]) == (root / "table.csv").resolve()
    with pytest.raises(InputError, match="outside"):
        allowed_location(f"{root}/../private/secret.csv", [root])
    with pytest.raises(InputError, match="NUL"):
        allowed_location(f"{root}/table.csv\x00.png", [root])


def test_no_pickle_in_uploaded_npz(embedded_client, tmp_path):
    marker = tmp_path / "pwned"
    buffer = io.BytesIO()
    np.savez(buffer, x=np.zeros((4, 2)), y=np.array([Evil(marker)] * 4, dtype=object))
    body = assert_problem(
        embedded_client.post("/datasets", files={"file": ("evil.npz", buffer.getvalue())}), 422
    )
    assert body["field"] == "file" and "pickle" in body["reason"].lower()
    assert not marker.exists()


def test_checkpoints_load_weights_only(tmp_path):
    marker = tmp_path / "pwned"
    (tmp_path / FILENAME).write_bytes(pickle.dumps({"fingerprint": "f", "evil": Evil(marker)}))
    with pytest.raises(Exception):  # noqa: B017 - refused by torch.load(weights_only=True)
        load_checkpoint(tmp_path, "f")
    assert not marker.exists()
