"""``taskgrouper jobs ...`` against a real ``taskgrouper serve`` (a child process, embedded mode): submit,
list, status, logs, cancel and groupings, ``--json`` everywhere, errors as one line without a
traceback; a failed job's log names the failing step through the API and the CLI; the server logs
JSON lines (the access log among them, job records with their job id and step)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from child_processes import Processes, free_port, running_in
from conftest import TINY_JOB
from test_hardening_server import wait_until

from service.cli import build_parser

#: commands that run a service rather than print a result
NO_RESULT = {"serve", "worker"}


def taskgrouper(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "service.cli", *args], capture_output=True, text=True,
                          env=env, timeout=600)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    yield from running_in(tmp_path)


@pytest.fixture
def server(processes: Processes, tmp_path: Path) -> tuple[str, dict[str, str], Path]:
    """``taskgrouper serve`` (embedded, JSON logs): its URL, the environment that points the CLI at it
    (``TASKGROUPER_SERVER``), and its log file."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKGROUPER_")}
    env |= {"TASKGROUPER_HOME": str(tmp_path / "home"), "TASKGROUPER_LOG_FORMAT": "json",
            "TASKGROUPER_PROGRESS_INTERVAL": "0.2"}
    processes.start("serve", [sys.executable, "-m", "service.cli", "serve", "--port", str(port)], env)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(up, 120, "taskgrouper serve")
    return url, env | {"TASKGROUPER_SERVER": url}, processes.running[0][1]


def test_version():
    out = taskgrouper("--version")
    name, number = out.stdout.split()
    assert out.returncode == 0 and name == "taskgrouper" and number[0].isdigit()


def test_every_command_that_prints_a_result_takes_json():
    def leaves(parser: argparse.ArgumentParser, path: str) -> Iterator[tuple[str, argparse.ArgumentParser]]:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            yield path, parser
        for action in subs:
            for name, child in action.choices.items():
                yield from leaves(child, f"{path} {name}".strip())

    commands = dict(leaves(build_parser(), ""))
    assert {"jobs submit", "jobs logs", "solve", "affinity", "demo", "tables"} <= set(commands)
    missing = [name for name, parser in commands.items()
               if name not in NO_RESULT and "--json" not in parser._option_string_actions]
    assert missing == []


@pytest.mark.slow
def test_a_failed_job_through_the_cli_names_its_failing_step(server, tmp_path):
    url, env, server_log = server
    spec = tmp_path / "job.json"
    spec.write_text(json.dumps({"dataset": "digits-attributes", "features": ["no-such-column"]}))
    submitted = taskgrouper("jobs", "submit", "--spec", str(spec), "--wait", "--json", env=env)
    assert submitted.returncode == 1, submitted.stderr
    job = json.loads(submitted.stdout)
    assert job["status"] == "failed" and job["error"]["field"] == "dataset.features"

    logs = taskgrouper("jobs", "logs", job["id"], env=env)
    assert logs.returncode == 0, logs.stderr
    [failure] = [line for line in logs.stdout.splitlines() if "job failed" in line]
    assert "[load_dataset]" in failure and "step=load_dataset" in failure and "no-such-column" in failure

    followed = taskgrouper("jobs", "logs", job["id"], "--follow", env=env)  # the job has ended: returns
    assert followed.returncode == 0 and followed.stdout == logs.stdout

    entries = json.loads(taskgrouper("jobs", "logs", job["id"], "--json", env=env).stdout)["entries"]
    [entry] = [e for e in entries if e["level"] == "WARNING"]
    assert entry["step"] == "load_dataset" and entry["attempt"] == 1
    api = httpx.get(f"{url}/jobs/{job['id']}/logs").json()
    assert [e["message"] for e in api["entries"]] == [e["message"] for e in entries] and not api["more"]

    status = taskgrouper("jobs", "status", job["id"], env=env)
    assert "failed" in status.stdout and "field dataset.features" in status.stdout

    listed = json.loads(taskgrouper("jobs", "list", "--json", "--server", url).stdout)
    assert listed["total"] == 1 and listed["items"][0]["id"] == job["id"]

    # the server's own log: JSON lines, the access log on, the job's records with its id and step
    records = [json.loads(line) for line in server_log.read_text().splitlines() if line.startswith("{")]
    assert any(r["logger"] == "uvicorn.access" and f"/jobs/{job['id']}/logs" in r["message"] for r in records)
    assert any(r.get("job_id") == job["id"] and r.get("step") == "load_dataset" and r["level"] == "WARNING"
               for r in records)


@pytest.mark.slow
def test_submit_wait_groupings_and_errors(server):
    url, env, _ = server
    training = json.dumps(TINY_JOB["training"])
    spec = {**TINY_JOB, "training": json.loads(training)}
    spec_file = Path(env["TASKGROUPER_HOME"]).parent / "tiny.json"
    spec_file.write_text(json.dumps(spec))
    done = taskgrouper("jobs", "submit", "--spec", str(spec_file), "--wait", env=env)
    assert done.returncode == 0, done.stderr
    job_id = done.stdout.split()[1].rstrip(":")
    assert "succeeded" in done.stdout

    one = json.loads(taskgrouper("jobs", "groupings", job_id, "--budget", "2", "--json", env=env).stdout)
    assert one["status"] == "optimal" and one["job_id"] == job_id and one["networks"]
    curve = taskgrouper("jobs", "groupings", job_id, "--budgets", "1:2:1", env=env)
    assert curve.returncode == 0 and curve.stdout.startswith("budget 1: optimal")

    for args, status, said in [
        (("jobs", "status", "no-such-job"), 1, "HTTP 404: field job_id: no job no-such-job"),
        (("jobs", "cancel", job_id), 1, "HTTP 409"),
        (("jobs", "groupings", job_id, "--budget", "0.1"), 1, "HTTP 422: field budget:"),
        (("jobs", "submit"), 2, "--dataset: required"),
    ]:
        out = taskgrouper(*args, env=env)
        assert out.returncode == status and said in out.stderr, (args, out.stderr)
        assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_an_unreachable_server_is_one_line_without_traceback():
    env = {**os.environ, "TASKGROUPER_SERVER": f"http://127.0.0.1:{free_port()}"}
    out = taskgrouper("jobs", "list", "--retries", "0", env=env)
    assert out.returncode == 1 and "no answer from" in out.stderr and "Traceback" not in out.stderr
