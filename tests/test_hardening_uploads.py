"""Uploads that cannot take the API down, text features accepted as the loader encodes them, and
dataset deletion — in both modes (embedded SQLite; server PostgreSQL + Redis):

* a decompression bomb (a Parquet of 100 M zeros, an NPZ whose array header announces gigabytes, a
  CSV of 100,000 columns) is refused with a 413 naming the field and the resource, from the file's
  metadata, before any data is decoded, and leaves no file behind;
* a file that passes the metadata checks but still needs more memory than allowed (or more time) is
  refused by the child process that reads it, while the API process's memory stays where it was;
* the column summary is stored once: reading the dataset back never opens its file;
* a text feature with at most ``MAX_CATEGORIES`` distinct values (missing values allowed) is
  accepted at submission — and trained on — while one with more, and a continuous or too-many-class
  ``multiclass`` target, are refused naming the field;
* ``DELETE /datasets/{id}`` removes the row and the uploaded file, refuses with 409 while a queued or
  running job uses it, and answers 404 for another project's dataset.
"""

from __future__ import annotations

import io
import resource
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from test_service_api import add_job, assert_problem

from grouping.data.features import MAX_CATEGORIES
from grouping.data.targets import MAX_CLASSES
from grouping.errors import InputError
from service.app import create_app
from service.datasets import check_columns
from service.db import transaction
from service.models import Dataset, Job, new_id
from service.upload_parsing import LimitExceeded, UploadLimits, UploadReader, check_limits, describe_column

pytestmark = [pytest.mark.services]


def uploads(client: Any) -> list[Path]:
    folder = client.app.state.settings.datasets_dir
    return sorted(folder.iterdir()) if folder.exists() else []


def zeros_parquet(path: Path, millions: int) -> bytes:
    """A Parquet of ``millions`` × 1 M int64 zeros, written a million rows at a time (a few hundred KB)."""
    chunk = pa.table({"x": pa.array(np.zeros(1_000_000, dtype=np.int64))})
    with pq.ParquetWriter(path, chunk.schema) as writer:
        for _ in range(millions):
            writer.write_table(chunk)
    return path.read_bytes()


@pytest.fixture(scope="module")
def parquet_bomb(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """871 KB-class Parquet: 100 M zeros (800 MB decoded)."""
    return zeros_parquet(tmp_path_factory.mktemp("bombs") / "bomb.parquet", 100)


@pytest.fixture(scope="module")
def parquet_40m(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """40 M zeros: within generous row and byte limits, but 320 MB to decode."""
    return zeros_parquet(tmp_path_factory.mktemp("bombs") / "forty.parquet", 40)


def npz_bomb() -> bytes:
    """An NPZ whose one array announces 100,000 × 8,500 float64 (6.8 GB); its data is 64 MiB of zeros,
    deflated to a few dozen KB."""
    buffer = io.BytesIO()
    header = {"descr": "<f8", "fortran_order": False, "shape": (100_000, 8_500)}
    with (
        zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive,
        archive.open("x.npy", "w", force_zip64=True) as member,
    ):
        np.lib.format.write_array_header_1_0(member, header)
        for _ in range(64):
            member.write(bytes(1 << 20))
    return buffer.getvalue()


def wide_csv(columns: int = 100_000) -> bytes:
    """About 1 MB: a header of ``columns`` names and one row of zeros."""
    return (
        ",".join(f"c{i}" for i in range(columns)) + "\n" + ",".join("0" for _ in range(columns)) + "\n"
    ).encode()


SMALL_CSV = b"x,label\n" + b"\n".join(f"{i * 0.5},{i % 2}".encode() for i in range(20)) + b"\n"


# --- bombs refused before decoding -----------------------------------------------------------------


def test_a_parquet_bomb_is_refused_from_its_metadata(api_client, parquet_bomb):
    assert len(parquet_bomb) < 1_000_000
    response = api_client.post("/datasets", files={"file": ("zeros.parquet", parquet_bomb)})
    body = assert_problem(response, 413, "file")
    assert body["resource"] == "rows" and body["found"] == 100_000_000
    assert body["limit"] == UploadLimits().max_rows and "rows" in body["reason"]
    assert uploads(api_client) == []


def test_an_npz_bomb_is_refused_from_its_array_header(api_client):
    body = assert_problem(api_client.post("/datasets", files={"file": ("b.npz", npz_bomb())}), 413, "file")
    assert body["resource"] == "bytes" and body["found"] == 100_000 * 8_500 * 8
    assert uploads(api_client) == []


def test_a_csv_of_100k_columns_is_refused_from_its_header_line(api_client):
    content = wide_csv()
    assert len(content) < 1_100_000
    body = assert_problem(api_client.post("/datasets", files={"file": ("wide.csv", content)}), 413, "file")
    assert body["resource"] == "columns" and body["found"] == 100_000
    assert body["limit"] == UploadLimits().max_columns
    assert uploads(api_client) == []


def test_an_npz_member_that_is_not_an_array_is_refused(api_client):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("x.npy", _npy(np.zeros(4)))
        archive.writestr("notes.txt", bytes(50 << 20))  # 50 MB of zeros would be read whole by np.load
    body = assert_problem(api_client.post("/datasets", files={"file": ("t.npz", buffer.getvalue())}), 422)
    assert body["field"] == "file" and "notes.txt" in body["reason"]


def _npy(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, array)
    return out.getvalue()


@pytest.mark.parametrize(
    ("limits", "name", "content", "resource"),
    [
        (UploadLimits(max_rows=10), "t.csv", SMALL_CSV, "rows"),
        (UploadLimits(max_columns=1), "t.csv", SMALL_CSV, "columns"),
        (UploadLimits(max_bytes=100), "t.csv", SMALL_CSV, "bytes"),
        (UploadLimits(max_rows=3), "t.npz", b"", "rows"),
        (UploadLimits(max_bytes=16), "t.npz", b"", "bytes"),
        (UploadLimits(max_columns=1), "t.npz", b"", "columns"),
    ],
)
def test_each_limit_is_named(embedded_client, limits, name, content, resource):
    if name.endswith(".npz"):
        buffer = io.BytesIO()
        np.savez(buffer, x=np.zeros((4, 2)), y=np.arange(4))
        content = buffer.getvalue()
    embedded_client.app.state.upload_reader = UploadReader(limits)
    response = embedded_client.post("/datasets", files={"file": (name, content)})
    body = assert_problem(response, 413, "file")
    assert body["resource"] == resource and body["found"] > body["limit"]


def test_metadata_checks_decode_nothing(tmp_path, parquet_bomb):
    """The checks alone, in this process: the bombs are refused while this process's peak memory
    stays below what decoding any of them would take."""
    (tmp_path / "b.parquet").write_bytes(parquet_bomb)
    (tmp_path / "b.npz").write_bytes(npz_bomb())
    (tmp_path / "w.csv").write_bytes(wide_csv())
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    for name, fmt, what in (
        ("b.parquet", "parquet", "rows"),
        ("b.npz", "npz", "bytes"),
        ("w.csv", "csv", "columns"),
    ):
        with pytest.raises(LimitExceeded) as refused:
            check_limits(tmp_path / name, fmt, UploadLimits())
        assert refused.value.resource == what
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    assert grown < 200 << 20


# --- the child process ------------------------------------------------------------------------------


def test_a_file_that_exhausts_the_memory_cap_costs_the_child_not_the_api(api_client, parquet_40m):
    generous = UploadLimits(max_rows=10**9, max_bytes=10**11, memory_bytes=256 << 20)
    api_client.app.state.upload_reader = UploadReader(generous)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    response = api_client.post("/datasets", files={"file": ("forty.parquet", parquet_40m)})
    body = assert_problem(response, 413, "file")
    assert body["resource"] == "memory" and body["limit"] == 256 << 20
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    assert grown < 160 << 20  # decoding happened elsewhere: 320 MB of zeros never reached this process
    assert uploads(api_client) == []
    # the same cap reads an ordinary table
    ok = api_client.post("/datasets", files={"file": ("t.csv", SMALL_CSV)})
    assert ok.status_code == 201, ok.text


def test_a_read_over_its_time_limit_is_stopped(embedded_client):
    embedded_client.app.state.upload_reader = UploadReader(UploadLimits(seconds=0.001))
    body = assert_problem(
        embedded_client.post("/datasets", files={"file": ("t.csv", SMALL_CSV)}), 413, "file"
    )
    assert body["resource"] == "seconds"
    assert uploads(embedded_client) == []


@pytest.fixture
def located(embedded_settings, tmp_path):
    """An embedded app with a dataset root holding a Parquet bomb and an ordinary CSV."""
    root = tmp_path / "shared"
    root.mkdir()
    (root / "table.csv").write_bytes(SMALL_CSV)
    zeros_parquet(root / "zeros.parquet", 11)
    settings = embedded_settings.model_copy(update={"dataset_roots": [root]})
    with TestClient(create_app(settings)) as client:
        yield client, root


def test_a_located_bomb_is_refused_on_location(located):
    client, root = located
    body = assert_problem(client.post("/datasets", data={"location": str(root / "zeros.parquet")}), 413)
    assert body["field"] == "location" and body["resource"] == "rows" and body["found"] == 11_000_000
    assert str(root) not in body["detail"]


def test_the_schema_is_stored_once_and_read_back_without_the_file(api_client):
    created = api_client.post("/datasets", files={"file": ("t.csv", SMALL_CSV)})
    assert created.status_code == 201, created.text
    info = created.json()
    for folder in uploads(api_client):
        for file in folder.iterdir():
            file.unlink()
    assert api_client.get(f"/datasets/{info['id']}").json() == info
    assert [c["name"] for c in info["columns"]] == ["x", "label"] and info["n_rows"] == 20


def test_reader_errors_keep_the_server_path_private(embedded_client):
    body = assert_problem(
        embedded_client.post("/datasets", files={"file": ("t.parquet", b"PAR1xxxxxxxxPAR1")}), 422
    )
    assert str(embedded_client.app.state.settings.home) not in body["detail"]


# --- text features and multiclass targets -----------------------------------------------------------

ROWS = 1200


@pytest.fixture
def mixed_dataset(api_client) -> str:
    """1,200 rows: numbers, a binary and a 3-class label, a 3-category text column with empty cells,
    a 65-category text column, a continuous float, whole-number floats (150 values), and 1,200
    distinct integers."""
    colours = ["red", "green", "blue", ""]
    lines = ["x1,label,tri,colour,city,score,whole,ident"] + [
        f"{i * 0.1},{i % 2},{i % 3},{colours[i % 4]},c{i % (MAX_CATEGORIES + 1)},"
        f"{i * 0.37},{float(i % 150)},{i}"
        for i in range(ROWS)
    ]
    response = api_client.post("/datasets", files={"file": ("mixed.csv", "\n".join(lines).encode())})
    assert response.status_code == 201, response.text
    columns = {c["name"]: c for c in response.json()["columns"]}
    assert columns["colour"]["n_missing"] == ROWS // 4 and columns["colour"]["n_unique"] == 3
    assert columns["city"]["n_unique"] == MAX_CATEGORIES + 1
    return response.json()["id"]


LABEL = [{"name": "label", "type": "binary"}]


def test_a_text_feature_with_few_categories_is_accepted(api_client, mixed_dataset):
    job = {"dataset": mixed_dataset, "tasks": LABEL, "features": ["x1", "colour"]}
    response = api_client.post("/jobs", json=job)
    assert response.status_code == 202, response.text


@pytest.mark.parametrize(
    ("job", "field", "words"),
    [
        (
            {"tasks": LABEL, "features": ["x1", "city"]},
            "features[1]",
            ["'city'", f"{MAX_CATEGORIES + 1} distinct"],
        ),
        (
            {"tasks": LABEL, "features": ["colour", "x1", "score", "whole", "ident", "tri", "city"]},
            "features[6]",
            ["'city'"],
        ),
        ({"tasks": LABEL}, "features", ["'city'", "list them"]),  # every other column is a feature
        (
            {"tasks": [{"name": "score", "type": "multiclass"}], "features": ["x1"]},
            "tasks[0].type",
            ["'score'", "continuous", "regression"],
        ),
        (
            {"tasks": [{"name": "ident", "type": "multiclass"}], "features": ["x1"]},
            "tasks[0].type",
            [f"{ROWS} distinct", f"at most {MAX_CLASSES}"],
        ),
    ],
)
def test_what_the_loader_would_refuse_is_refused_at_submission(api_client, mixed_dataset, job, field, words):
    body = assert_problem(api_client.post("/jobs", json={"dataset": mixed_dataset, **job}), 422, field)
    for word in words:
        assert word in body["reason"], body


def test_whole_number_floats_can_be_classes(api_client, mixed_dataset):
    job = {"dataset": mixed_dataset, "tasks": [{"name": "whole", "type": "multiclass"}], "features": ["x1"]}
    assert api_client.post("/jobs", json=job).status_code == 202


def test_schemas_described_before_the_categorical_flag_still_check(api_client):
    """Rows stored before columns carried ``categorical``: a one-axis object column counts as text."""
    old = {
        "name": "colour",
        "dtype": "object",
        "shape": [10],
        "n_missing": 2,
        "n_unique": 3,
        "suggested_type": None,
    }
    many = {**old, "name": "city", "n_unique": MAX_CATEGORIES + 1}
    target = describe_column("label", np.arange(10) % 2)
    dataset = Dataset(id="d", columns=[old, many, target])
    task = type("Task", (), {"name": "label", "column": "label", "type": "binary"})()
    check_columns(dataset, ["colour"], [task], None)
    with pytest.raises(InputError, match="'city' has 65 distinct"):
        check_columns(dataset, ["city"], [task], None)


def test_a_text_feature_trains_end_to_end(embedded_client):
    """The embedded runner trains a job whose features include a text column with missing values."""
    colours = ["red", "green", "blue", ""]
    lines = ["x1,label,tri,colour"] + [f"{i * 0.1},{i % 2},{i % 3},{colours[i % 4]}" for i in range(120)]
    dataset = embedded_client.post("/datasets", files={"file": ("m.csv", "\n".join(lines).encode())}).json()[
        "id"
    ]
    job = {
        "dataset": dataset,
        "tasks": [{"name": "label", "type": "binary"}, {"name": "tri", "type": "multiclass"}],
        "features": ["x1", "colour"],
        "methods": ["tag"],
        "model": {"hidden_units": 8, "hidden_layers": 1, "representation": 4},
        "training": {"epochs": 1, "batch_size": 32},
    }
    response = embedded_client.post("/jobs", json=job)
    assert response.status_code == 202, response.text
    status = _wait_terminal(embedded_client, response.json()["id"])
    assert status["status"] == "succeeded", status


def _wait_terminal(client: Any, job_id: str) -> dict:
    """The job once it is finished (polled; pytest's timeout bounds a job that never ends)."""
    while True:
        body = client.get(f"/jobs/{job_id}").json()
        if body["status"] in ("succeeded", "failed", "cancelled"):
            return body
        time.sleep(0.1)


# --- DELETE /datasets/{id} ----------------------------------------------------------------------------


def _upload(client: Any) -> str:
    response = client.post("/datasets", files={"file": ("t.csv", SMALL_CSV)})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def test_delete_removes_the_row_and_the_file(api_client):
    dataset = _upload(api_client)
    assert len(uploads(api_client)) == 1
    assert api_client.delete(f"/datasets/{dataset}").status_code == 204
    assert uploads(api_client) == []
    assert_problem(api_client.get(f"/datasets/{dataset}"), 404, "dataset_id")
    assert_problem(api_client.delete(f"/datasets/{dataset}"), 404, "dataset_id")


@pytest.mark.parametrize("status", ["queued", "running"])
def test_delete_is_refused_while_an_active_job_uses_the_dataset(api_client, status):
    dataset = _upload(api_client)
    job = add_job(api_client, status, dataset_id=dataset)
    body = assert_problem(api_client.delete(f"/datasets/{dataset}"), 409, "dataset_id")
    assert body["jobs"] == [job] and job in body["detail"]
    assert api_client.get(f"/datasets/{dataset}").status_code == 200 and len(uploads(api_client)) == 1
    with transaction(api_client.app.state.session_factory) as session:
        session.get(Job, job).status = "cancelled"
    assert api_client.delete(f"/datasets/{dataset}").status_code == 204


def test_finished_jobs_keep_their_results_when_their_dataset_goes(api_client):
    dataset = _upload(api_client)
    job = add_job(api_client, "succeeded", dataset_id=dataset)
    assert api_client.delete(f"/datasets/{dataset}").status_code == 204
    assert api_client.get(f"/jobs/{job}").json()["status"] == "succeeded"
    assert api_client.get("/groupings", params={"job_id": job, "budget": 2}).status_code == 200
    with api_client.app.state.session_factory() as session:
        assert session.get(Job, job).dataset_id is None


def test_another_projects_dataset_is_404_and_stays(api_client):
    other = new_id()
    with transaction(api_client.app.state.session_factory) as session:
        session.add(
            Dataset(
                id=other,
                project="someone-else",
                name="theirs",
                format="csv",
                path="/nonexistent/data.csv",
                size_bytes=1,
                sha256="0" * 64,
                n_rows=1,
                columns=[],
            )
        )
    assert_problem(api_client.delete(f"/datasets/{other}"), 404, "dataset_id")
    with api_client.app.state.session_factory() as session:
        assert session.get(Dataset, other) is not None


def test_deleting_a_located_dataset_leaves_the_server_file(located):
    client, root = located
    created = client.post("/datasets", data={"location": str(root / "table.csv")})
    assert created.status_code == 201, created.text
    assert client.delete(f"/datasets/{created.json()['id']}").status_code == 204
    assert (root / "table.csv").read_bytes() == SMALL_CSV
