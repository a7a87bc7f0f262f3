"""The upload and metrics settings, and the metrics of ``taskgrouper serve --workers N``:

* ``max_dataset_rows``/``max_dataset_columns``/``max_dataset_bytes``, the ``upload_parse_*`` bounds
  and ``metrics_require_key`` are settings: read from ``TASKGROUPER_*``, validated against their
  bounds, and what the API enforces (an upload over a configured limit is a 413 naming it, in
  server mode on PostgreSQL + Redis; ``/metrics`` without a key is a 401 when one is required);
* ``taskgrouper serve --workers 2`` (a real server on PostgreSQL + Redis) points
  ``PROMETHEUS_MULTIPROC_DIR`` at a fresh temporary folder, so ``/metrics`` sums the request counters
  of both processes (no ``pid`` label, every request counted whichever process served it), and
  removes the folder when it stops; a folder set by the operator is used and kept.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from child_processes import free_port
from conftest import make_key, service_env
from fastapi.testclient import TestClient
from pydantic import ValidationError
from test_hardening_metrics import samples
from test_service_api import assert_problem

from service.app import create_app
from service.commands import MULTIPROC_ENV, multiprocess_metrics_dir
from service.settings import Settings
from service.upload_parsing import UploadLimits

pytestmark = [pytest.mark.services]

#: a generous bound on how long a server may take to start, or a loop to see both processes answer:
#: the waits below end as soon as the state they wait for is reached
DEADLINE = 300.0
CSV = b"x,label\n" + b"\n".join(f"{i * 0.5},{i % 2}".encode() for i in range(20)) + b"\n"

LIMIT_ENV = {
    "TASKGROUPER_MAX_DATASET_ROWS": "7",
    "TASKGROUPER_MAX_DATASET_COLUMNS": "3",
    "TASKGROUPER_MAX_DATASET_BYTES": "123456",
    "TASKGROUPER_UPLOAD_PARSE_MEMORY_BYTES": str(256 << 20),
    "TASKGROUPER_UPLOAD_PARSE_SECONDS": "12.5",
    "TASKGROUPER_UPLOAD_PARSE_CONCURRENCY": "3",
    "TASKGROUPER_METRICS_REQUIRE_KEY": "true",
}


def test_the_upload_and_metrics_settings_are_read_from_the_environment(monkeypatch):
    for name, text in LIMIT_ENV.items():
        monkeypatch.setenv(name, text)
    settings = Settings()
    assert UploadLimits.from_settings(settings) == UploadLimits(
        max_rows=7, max_columns=3, max_bytes=123456, memory_bytes=256 << 20, seconds=12.5, concurrency=3
    )
    assert settings.metrics_require_key is True


def test_the_defaults_are_the_documented_ones():
    settings = Settings()
    assert UploadLimits.from_settings(settings) == UploadLimits()
    assert settings.metrics_require_key is False


@pytest.mark.parametrize(
    ("field", "bad"),
    [
        ("max_dataset_rows", 0),
        ("max_dataset_columns", 0),
        ("max_dataset_bytes", 0),
        ("upload_parse_memory_bytes", (64 << 20) - 1),
        ("upload_parse_seconds", 0.0),
        ("upload_parse_concurrency", 0),
    ],
)
def test_out_of_bounds_values_are_refused_naming_the_setting(field, bad):
    with pytest.raises(ValidationError, match=field):
        Settings(**{field: bad})


@pytest.mark.parametrize(
    ("update", "resource", "limit"),
    [
        ({"max_dataset_rows": 7}, "rows", 7),
        ({"max_dataset_columns": 1}, "columns", 1),
        ({"max_dataset_bytes": 64}, "bytes", 64),
    ],
)
def test_an_upload_over_a_configured_limit_is_a_413_naming_it(server_settings, update, resource, limit):
    settings = server_settings.model_copy(update=update)
    with TestClient(create_app(settings)) as client:
        headers = {"Authorization": f"Bearer {make_key(settings, settings.default_project)}"}
        body = assert_problem(client.post("/datasets", files={"file": ("t.csv", CSV)}, headers=headers), 413)
        assert body["field"] == "file" and body["resource"] == resource and body["limit"] == limit
        assert not settings.datasets_dir.exists() or not any(settings.datasets_dir.iterdir())
    roomy = server_settings.model_copy(update={"max_dataset_rows": 20, "max_dataset_columns": 2})
    with TestClient(create_app(roomy)) as client:  # the same file within the limits is accepted
        ok = client.post("/datasets", files={"file": ("t.csv", CSV)}, headers=headers)
        assert ok.status_code == 201, ok.text


def test_metrics_require_a_key_when_the_setting_says_so(server_settings):
    settings = server_settings.model_copy(update={"metrics_require_key": True})
    with TestClient(create_app(settings)) as client:
        assert_problem(client.get("/metrics"), 401)
        key = make_key(settings, settings.default_project)
        assert client.get("/metrics", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    with TestClient(create_app(server_settings)) as client:  # off: an anonymous scrape is answered
        assert client.get("/metrics").status_code == 200


# --- serve --workers N ----------------------------------------------------------------------------


def test_the_multiprocess_folder_is_made_only_for_several_workers_and_never_replaces_one(tmp_path):
    environ: dict[str, str] = {}
    assert multiprocess_metrics_dir(1, environ) is None and environ == {}
    operator = {MULTIPROC_ENV: str(tmp_path)}
    assert multiprocess_metrics_dir(4, operator) is None and operator == {MULTIPROC_ENV: str(tmp_path)}
    folder = multiprocess_metrics_dir(2, environ)
    try:
        assert folder is not None and folder.is_dir() and not any(folder.iterdir())
        assert environ == {MULTIPROC_ENV: str(folder)}
        again = multiprocess_metrics_dir(2, {})
        assert again is not None and again != folder  # fresh every time: no stale counters
        shutil.rmtree(again)
    finally:
        if folder is not None:
            shutil.rmtree(folder)



def _serve_command() -> list[str]:
    exe = shutil.which("taskgrouper")
    return [exe] if exe else [sys.executable, "-m", "service.cli"]


class Server:
    """A running ``taskgrouper serve --workers 2``: base URL, its temporary folder and log."""

    def __init__(self, process: subprocess.Popen, base: str, tmp: Path, log: Path) -> None:
        self.process, self.base, self.tmp, self.log = process, base, tmp, log

    def stop(self) -> int:
        """SIGTERM the server and wait for it (the log on a generous deadline)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            pytest.fail(f"serve did not stop on SIGTERM\n{self.log.read_text()[-3000:]}")


def _start(settings: Settings, tmp_path: Path, extra_env: dict[str, str]) -> Server:
    env = service_env(settings)
    env.pop(MULTIPROC_ENV, None)
    tmp = tmp_path / "tmp"
    tmp.mkdir(parents=True)
    env.update({"TMPDIR": str(tmp), **extra_env})
    port = free_port()
    log = tmp_path / "serve.log"
    process = subprocess.Popen(
        [*_serve_command(), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
        env=env,
        cwd=tmp_path,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = Server(process, f"http://127.0.0.1:{port}", tmp, log)
    started = time.monotonic()
    while True:
        assert process.poll() is None, log.read_text()
        assert time.monotonic() - started < DEADLINE, log.read_text()
        try:
            if httpx.get(f"{server.base}/healthz", timeout=30).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.2)


@pytest.fixture
def serve(server_settings: Settings, tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start ``taskgrouper serve --workers 2`` in server mode with extra environment variables; every
    server started is stopped at the end."""
    servers: list[Server] = []

    def start(**extra_env: str) -> Server:
        servers.append(_start(server_settings, tmp_path / f"s{len(servers)}", extra_env))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def _healthz_count(text: str) -> dict[str, float]:
    """Served ``GET /healthz`` requests by ``pid`` label ("" when summed across processes)."""
    counts: dict[str, float] = {}
    for name, labels, count in samples(text):
        if name == "taskgrouper_http_request_duration_seconds_count" and labels.get("route") == "/healthz":
            counts[labels.get("pid", "")] = counts.get(labels.get("pid", ""), 0.0) + count
    return counts


def _writers(folder: Path) -> set[str]:
    """The processes that wrote a histogram file into a multiprocess folder (their pids)."""
    return {f.stem.rsplit("_", 1)[-1] for f in folder.glob("histogram_*.db")}


def _summed_healthz(base: str, sent: int) -> None:
    """Scrape until the summed ``/healthz`` count reaches ``sent`` (a request is counted just after its
    response went out, so the last one may lag a scrape); it never has a ``pid`` label or exceeds it."""
    started = time.monotonic()
    while True:
        counts = _healthz_count(httpx.get(f"{base}/metrics", timeout=30).text)
        assert list(counts) == [""] and counts[""] <= sent, (counts, sent)
        if counts[""] == sent:
            return
        assert time.monotonic() - started < DEADLINE, (counts, sent)
        time.sleep(0.05)


def test_serve_with_two_workers_sums_their_counters_and_removes_its_folder(serve):
    server = serve()
    folders = list(server.tmp.glob("taskgrouper-metrics-*"))
    assert len(folders) == 1, server.log.read_text()
    folder = folders[0]
    sent = 1  # the start-up probe
    started = time.monotonic()
    while len(_writers(folder)) < 2:  # until both processes have served a request
        assert time.monotonic() - started < DEADLINE, f"one process answered {sent} requests"
        assert httpx.get(f"{server.base}/healthz", timeout=30).status_code == 200  # a new connection
        sent += 1
    for _ in range(3):  # whichever process answers the scrape counts every request of both
        _summed_healthz(server.base, sent)
    assert server.stop() == 0, server.log.read_text()
    assert not folder.exists()


def test_serve_uses_and_keeps_a_multiprocess_folder_set_by_the_operator(serve, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    server = serve(PROMETHEUS_MULTIPROC_DIR=str(mine))
    assert not list(server.tmp.glob("taskgrouper-metrics-*"))
    assert httpx.get(f"{server.base}/healthz", timeout=30).status_code == 200
    _summed_healthz(server.base, 2)  # the start-up probe and this one
    assert _writers(mine)
    assert server.stop() == 0
    assert mine.is_dir() and _writers(mine)
