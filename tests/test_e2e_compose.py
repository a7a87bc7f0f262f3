"""docker-compose.yml, run natively: each service's command and environment, as compose would
interpolate them from ``.env.example``, started as local processes against the local PostgreSQL
and Redis (compose host names are mapped to them), then the acceptance flow over real HTTP with a
real Celery worker subprocess."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import yaml
from child_processes import free_port

from service.client import TaskgrouperClient

ROOT = Path(__file__).resolve().parent.parent
_VARIABLE = re.compile(r"\$\$|\$\{(\w+)(?::([-?])([^}]*))?\}")

pytestmark = [pytest.mark.services, pytest.mark.slow]


def read_env_file(path: Path) -> dict[str, str]:
    pairs = (
        line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#")
    )
    return {key.strip(): value.strip() for key, value in pairs}


def interpolate(value: object, variables: dict[str, str]) -> object:
    """Compose's ``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}`` and ``$$`` substitution."""
    if isinstance(value, dict):
        return {k: interpolate(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, variables) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.groups()
        if variables.get(name):
            return variables[name]
        if op == "?":
            raise AssertionError(f"compose needs {name}: {arg}")
        return arg if op == "-" else ""

    return _VARIABLE.sub(substitute, value)


def local_service(value: str, endpoints: dict[str, str]) -> str:
    """A URL naming a compose service host (``postgres``, ``redis``) → the local endpoint for it."""
    host = urlsplit(value).hostname if "://" in value else None
    return endpoints.get(host, value) if host else value



def native(
    service: dict, endpoints: dict[str, str], overrides: dict[str, str]
) -> tuple[list[str], dict[str, str]]:
    """The service's command and environment for a local process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKGROUPER_")}
    env.update({k: local_service(str(v), endpoints) for k, v in service["environment"].items()})
    env.update(overrides)
    command = list(service["command"])
    if command[0] == "taskgrouper":
        command[:1] = [
            shutil.which("taskgrouper") or sys.executable,
            *([] if shutil.which("taskgrouper") else ["-m", "service.cli"]),
        ]
    return command, env


@pytest.fixture
def compose_stack(server_settings, tmp_path):
    """migrate (must exit 0), an API key created with the CLI, then api and worker running; yields
    the API's base URL and the key."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    compose = interpolate(compose, read_env_file(ROOT / ".env.example"))
    services = compose["services"]
    assert {"postgres", "redis", "migrate", "api", "worker"} <= set(services)
    assert services["postgres"]["healthcheck"] and services["postgres"]["volumes"]
    assert services["worker"]["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    endpoints = {"postgres": server_settings.resolved_database_url, "redis": server_settings.broker_url}
    overrides = {
        "TASKGROUPER_HOME": str(server_settings.home),
        "TASKGROUPER_TRAINING_QUEUE": server_settings.training_queue,
        "TASKGROUPER_SOLVE_QUEUE": server_settings.solve_queue,
        "TASKGROUPER_PROGRESS_INTERVAL": "0.2",
    }

    command, env = native(services["migrate"], endpoints, overrides)
    migrate = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert migrate.returncode == 0, migrate.stderr
    create_key = [*command[:-1], "create-api-key", "--project", server_settings.default_project]
    created = subprocess.run(create_key, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert created.returncode == 0 and created.stdout.startswith("tg_"), created.stderr
    api_key = created.stdout.strip()

    port = free_port()
    api_cmd, api_env = native(services["api"], endpoints, overrides)
    api_cmd[api_cmd.index("--port") + 1] = str(port)
    api_cmd[api_cmd.index("--host") + 1] = "127.0.0.1"
    processes = []
    logs = {name: (tmp_path / f"{name}.log").open("w") for name in ("api", "worker")}
    try:
        processes.append(
            subprocess.Popen(
                api_cmd,
                env=api_env,
                cwd=tmp_path,
                stdout=logs["api"],
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        worker_cmd, worker_env = native(services["worker"], endpoints, overrides)
        processes.append(
            subprocess.Popen(
                worker_cmd,
                env=worker_env,
                cwd=tmp_path,
                stdout=logs["worker"],
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            assert all(p.poll() is None for p in processes), (tmp_path / "api.log").read_text()
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "api.log").read_text()
            time.sleep(0.3)
        assert httpx.get(f"{base}/jobs").status_code == 401  # server mode requires a key
        yield base, api_key
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        for handle in logs.values():
            handle.close()
        for name in logs:
            print(f"--- {name} log (tail) ---\n" + (tmp_path / f"{name}.log").read_text()[-3000:])


def test_compose_services_run_the_job_flow(compose_stack, job_flow):
    base, api_key = compose_stack
    with TaskgrouperClient(base, timeout=30, api_key=api_key) as client:
        job_flow(client)
        metrics = httpx.get(f"{base}/metrics").text
        assert 'taskgrouper_jobs{status="succeeded"}' in metrics
        assert client.jobs(status="succeeded").total >= 1
