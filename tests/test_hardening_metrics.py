"""``/metrics`` agrees across API processes and shows a project only its own numbers:

* job, heartbeat and queue gauges come from PostgreSQL and Redis, so every process reports the same;
* request counters are per process and labelled ``pid`` (each pid's series never goes backwards),
  or summed across processes with ``PROMETHEUS_MULTIPROC_DIR`` — checked against a real
  ``uvicorn --workers 2`` on PostgreSQL + Redis;
* an anonymous scrape in server mode sees global totals only, a key its own project's jobs, a bad
  key a 401;
* queue length (the Celery queue's Redis list) and live workers (fresh heartbeats) are reported,
  and a broker that is down reads ``taskgrouper_broker_up 0`` instead of failing the scrape.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from child_processes import free_port
from conftest import TINY_JOB, make_key, service_env
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from test_service_api import add_job

from service.app import create_app
from service.db import transaction
from service.models import Job, utcnow
from service.settings import Settings

pytestmark = [pytest.mark.services]

REPO = Path(__file__).resolve().parent.parent


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Every sample of an exposition as ``(name, labels, value)``."""
    return [
        (sample.name, dict(sample.labels), sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def value(text: str, name: str, **labels: str) -> float:
    """The one sample ``name`` whose labels include ``labels``."""
    found = [v for n, lab, v in samples(text) if n == name and labels.items() <= lab.items()]
    assert len(found) == 1, (name, labels, found)
    return found[0]


def scrape(client: Any, **headers: str) -> str:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    return response.text


@pytest.fixture
def server_app(server_settings: Settings) -> Iterator[TestClient]:
    """The server-mode app with no key attached to the client (requests choose their own)."""
    with TestClient(create_app(server_settings)) as client:
        yield client


def test_every_metric_family_is_exposed_and_process_samples_carry_the_pid(api_client):
    add_job(api_client, "failed", run_seconds=12.0)
    assert api_client.get("/healthz").status_code == 200  # a request observed before the scrape
    text = scrape(api_client)
    names = {name for name, _, _ in samples(text)}
    for name in (
        "taskgrouper_jobs",
        "taskgrouper_job_duration_seconds_bucket",
        "taskgrouper_running_jobs",
        "taskgrouper_live_workers",
        "taskgrouper_http_request_duration_seconds_bucket",
        "taskgrouper_project_jobs",
    ):
        assert name in names, name
    for name, labels, _ in samples(text):
        if name.startswith(("taskgrouper_http_", "taskgrouper_solve_", "process_", "python_")):
            assert labels.get("pid") == str(os.getpid()), (name, labels)
        if name.startswith(
            ("taskgrouper_jobs", "taskgrouper_running", "taskgrouper_live", "taskgrouper_queue")
        ):
            assert "pid" not in labels and "project" not in labels, (name, labels)


def test_job_gauges_are_read_from_the_database(server_settings, server_app):
    """Two app instances (as two API processes would) report the same job counts, and a job written
    by neither shows up in both."""
    with TestClient(create_app(server_settings)) as other:
        before = [value(scrape(c), "taskgrouper_jobs", status="cancelled") for c in (server_app, other)]
        assert before[0] == before[1]
        add_job(server_app, "cancelled")
        after = [value(scrape(c), "taskgrouper_jobs", status="cancelled") for c in (server_app, other)]
        assert after == [before[0] + 1] * 2


def test_an_anonymous_scrape_sees_only_global_totals(server_settings, server_app):
    mine, theirs = f"mine-{uuid.uuid4().hex[:8]}", f"theirs-{uuid.uuid4().hex[:8]}"
    key = make_key(server_settings, mine)
    make_key(server_settings, theirs)
    text = scrape(server_app)
    assert not [s for s in samples(text) if s[0] == "taskgrouper_project_jobs"]
    assert mine not in text and theirs not in text

    server_app.post("/jobs", json=TINY_JOB, headers={"Authorization": f"Bearer {key}"})
    keyed = scrape(server_app, Authorization=f"Bearer {key}")
    projects = {labels["project"] for name, labels, _ in samples(keyed) if name == "taskgrouper_project_jobs"}
    assert projects == {mine}
    assert value(keyed, "taskgrouper_project_jobs", project=mine, status="queued") == 1
    assert theirs not in keyed

    bad = server_app.get("/metrics", headers={"Authorization": "Bearer tg_nope_nope"})
    assert bad.status_code == 401


def test_a_key_can_be_required_for_metrics(server_settings):
    settings = server_settings.model_copy(update={"metrics_require_key": True})
    with TestClient(create_app(settings)) as client:
        assert client.get("/metrics").status_code == 401
        key = make_key(settings, settings.default_project)
        assert client.get("/metrics", headers={"Authorization": f"Bearer {key}"}).status_code == 200


def test_queue_length_counts_the_messages_waiting_in_redis(server_settings, server_app):
    key = make_key(server_settings, server_settings.default_project)
    headers = {"Authorization": f"Bearer {key}"}
    queue = server_settings.training_queue
    before = scrape(server_app)
    assert value(before, "taskgrouper_broker_up") == 1
    for _ in range(2):
        assert server_app.post("/jobs", json=TINY_JOB, headers=headers).status_code == 202
    after = scrape(server_app)
    grown = value(after, "taskgrouper_queue_messages", queue=queue) - value(
        before, "taskgrouper_queue_messages", queue=queue
    )
    assert grown == 2  # nothing consumes the test session's queue
    assert value(after, "taskgrouper_queue_messages", queue=server_settings.solve_queue) >= 0


def test_a_broker_that_is_down_is_reported_not_fatal(server_settings):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    settings = server_settings.model_copy(update={"broker_url": f"redis://127.0.0.1:{port}/0"})
    with TestClient(create_app(settings)) as client:
        text = scrape(client)
    assert value(text, "taskgrouper_broker_up") == 0
    assert "taskgrouper_queue_messages{" not in text


def test_live_workers_are_running_jobs_with_fresh_heartbeats(server_settings, server_app):
    before = scrape(server_app)
    worker = f"celery-{uuid.uuid4().hex[:8]}@host"
    now = utcnow()
    fresh = add_job(server_app, "running")
    stale = add_job(server_app, "running")
    with transaction(server_app.app.state.session_factory) as session:
        session.get(Job, fresh).heartbeat_at = now
        session.get(Job, fresh).worker = worker
        session.get(Job, stale).heartbeat_at = now - timedelta(seconds=server_settings.stale_after * 2)
        session.get(Job, stale).worker = "gone@host"
    after = scrape(server_app)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("taskgrouper_running_jobs", heartbeat="fresh") == 1
    assert grew("taskgrouper_running_jobs", heartbeat="stale") == 1
    assert grew("taskgrouper_live_workers") == 1


# --- a real server with two worker processes ------------------------------------------------------



@pytest.fixture(params=["pid-labelled", "multiprocess"])
def two_workers(
    request: pytest.FixtureRequest, server_settings: Settings, tmp_path: Path
) -> Iterator[tuple[str, str, Path | None]]:
    """``uvicorn --workers 2`` of the app in server mode (PostgreSQL + Redis): the mode, its base URL
    and the multiprocess folder (multiprocess mode)."""
    env = service_env(server_settings)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    folder = None
    if request.param == "multiprocess":
        folder = tmp_path / "prometheus"
        folder.mkdir()
        env["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    port = free_port()
    log = (tmp_path / "uvicorn.log").open("w")
    command = [sys.executable, "-m", "uvicorn", "--factory", "service.app:create_app", "--workers", "2"]
    server = subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        while True:  # until it answers (pytest's timeout bounds a server that never does)
            assert server.poll() is None, (tmp_path / "uvicorn.log").read_text()
            try:
                if httpx.get(f"{base}/healthz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        yield request.param, base, folder
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


def _metrics_requests(text: str) -> dict[str, float]:
    """Completed ``GET /metrics`` requests by ``pid`` label ("" when summed across processes)."""
    counts: dict[str, float] = {}
    for name, labels, count in samples(text):
        if name == "taskgrouper_http_request_duration_seconds_count" and labels.get("route") == "/metrics":
            pid = labels.get("pid", "")
            counts[pid] = counts.get(pid, 0.0) + count
    return counts


def _answering(mode: str, seen: dict[str, float], folder: Path | None) -> int:
    """How many API processes have served a request so far: distinct ``pid`` labels, or in
    multiprocess mode the processes that wrote a histogram file."""
    if mode == "multiprocess" and folder is not None:
        return len({f.stem.rsplit("_", 1)[-1] for f in folder.glob("histogram_*.db")})
    return len(seen)


def test_two_api_processes_report_one_truth_and_no_counter_goes_backwards(two_workers):
    mode, base, folder = two_workers
    statuses = ("queued", "running", "succeeded", "failed", "cancelled")
    seen: dict[str, float] = {}
    jobs: set[tuple[float, ...]] = set()
    scrapes = 0
    while scrapes < 10 or _answering(mode, seen, folder) < 2:
        assert scrapes < 2000, f"only {_answering(mode, seen, folder)} process answered {scrapes} scrapes"
        # a new connection each time, so either process may answer
        text = httpx.get(f"{base}/metrics", timeout=30).text
        scrapes += 1
        jobs.add(tuple(value(text, "taskgrouper_jobs", status=s) for s in statuses))
        for pid, count in _metrics_requests(text).items():
            assert count >= seen.get(pid, 0.0), (mode, pid, count, seen)
            seen[pid] = count
    assert len(jobs) == 1  # every process read the same job counts
    if mode == "multiprocess":
        assert list(seen) == [""]  # one series, summed over the processes
        assert seen[""] >= scrapes - 2  # every earlier scrape counted, whichever process served it
    else:
        assert len(seen) == 2 and "" not in seen
