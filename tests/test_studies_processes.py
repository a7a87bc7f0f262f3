"""Ask and tell across real processes: a ``uvicorn --workers 2`` API on PostgreSQL, three client
processes answering a study's trials from a known table through the Python client. One asks for a
trial and stops answering (no heartbeat): its lease expires, the trial goes to another client, and
the study completes with every trial told exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from child_processes import free_port

from grouping.problem import parse_problem
from grouping.selection import solve
from tests.child_processes import Processes, running_in
from tests.conftest import make_key, service_env

pytestmark = pytest.mark.services
REPO = Path(__file__).resolve().parents[1]

#: a client process: ROLE "quitter" asks once and then never answers; "answerer" answers until the
#: study is complete, writing one line per successful tell (and per refusal) to OUT
CLIENT = r"""
import json, os, sys, time
from service.client import ApiError, TaskgrouperClient

def loss(task, group):
    return round(1.0 - 0.05 * (len(group) - 1) + 0.01 * "abcd".index(task), 6)

role, out = os.environ["ROLE"], open(os.environ["OUT"], "a", buffering=1)
with TaskgrouperClient(os.environ["SERVER"], api_key=os.environ["KEY"]) as client:
    study = client.study(os.environ["STUDY"])
    if role == "quitter":
        trial = study.ask(worker="quitter")
        out.write(json.dumps({"id": trial.id, "lease": trial.out.lease}) + "\n")
        time.sleep(3600)
    for trial in study.trials(worker=os.environ["NAME"], wait=0.2):
        served = trial.tasks if trial.size == "full" else trial.tasks[:1]
        values = {t: loss(t, trial.tasks) for t in served}
        time.sleep(0.05)
        try:
            trial.tell(values, test=values)
            out.write(json.dumps({"told": trial.id}) + "\n")
        except ApiError as exc:
            out.write(json.dumps({"refused": trial.id, "reason": exc.problem.get("reason")}) + "\n")
"""


def loss(task: str, group: list[str]) -> float:
    return round(1.0 - 0.05 * (len(group) - 1) + 0.01 * "abcd".index(task), 6)



def wait_for(predicate, timeout: float, what: str, logs=str):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}\n{logs()}"
        time.sleep(0.2)
    return value


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    yield from running_in(tmp_path)


@pytest.fixture
def api(server_settings, tmp_path: Path, processes: Processes) -> Iterator[tuple[str, dict[str, str]]]:
    """``uvicorn --workers 2`` in server mode: its base URL and the child environment."""
    env = service_env(server_settings)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    port = free_port()
    server = processes.start("uvicorn", [
        sys.executable, "-m", "uvicorn", "--factory", "service.app:create_app", "--workers", "2",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"], env=env)
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert server.poll() is None, processes.logs()
        try:
            return httpx.get(f"{base}/healthz", timeout=5).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(up, 120, "the API to start", processes.logs)
    yield base, env
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        processes.kill(server)


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_three_clients_one_stops_answering_study_completes_each_trial_told_once(
    api, server_settings, processes: Processes, tmp_path: Path
):
    base, env = api
    key = make_key(server_settings, server_settings.default_project)
    http = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60)
    made = http.post("/studies", json={"tasks": list("abcd"), "strategy": "exhaustive",
                                       "half_singletons": True, "lease_seconds": 3})
    assert made.status_code == 201, made.text
    study = made.json()
    client_env = {**env, "SERVER": base, "KEY": key, "STUDY": study["id"]}
    command = [sys.executable, "-c", CLIENT]

    quitter_out = tmp_path / "quitter.jsonl"
    quitter = processes.start("quitter", command, env={**client_env, "ROLE": "quitter", "NAME": "quitter",
                                                       "OUT": str(quitter_out)})
    [held] = wait_for(lambda: lines(quitter_out), 120, "the quitter's trial", processes.logs)
    outs = [tmp_path / f"answerer-{k}.jsonl" for k in range(2)]
    answerers = [processes.start(f"answerer-{k}", command, env={**client_env, "ROLE": "answerer",
                                                                 "NAME": f"answerer-{k}", "OUT": str(out)})
                 for k, out in enumerate(outs)]
    for answerer in answerers:
        deadline = time.monotonic() + 300
        while answerer.poll() is None:
            assert time.monotonic() < deadline, processes.logs()
            time.sleep(0.2)
        assert answerer.returncode == 0, processes.logs()
    assert quitter.poll() is None  # it never answered: its lease expired while it slept
    processes.kill(quitter)

    final = http.get(f"/studies/{study['id']}").json()
    assert final["state"] == "complete", final
    assert final["progress"] == {"waiting": 0, "running": 0, "succeeded": 19, "failed": 0, "total": 19}
    told = [entry["told"] for out in outs for entry in lines(out) if "told" in entry]
    refused = [entry for out in outs for entry in lines(out) if "refused" in entry]
    assert len(told) == 19 and len(set(told)) == 19, (told, refused)
    # a client starved past its lease (a loaded machine) is refused, and another tells that trial
    assert all(entry["reason"] in ("lease_lost", "lease_expired") for entry in refused), refused
    listed = http.get(f"/studies/{study['id']}/trials", params={"limit": 100}).json()["items"]
    trials = {t["id"]: t for t in listed}
    assert set(trials) == set(told) and all(t["state"] == "succeeded" for t in trials.values())
    taken_over = trials[held["id"]]
    assert taken_over["attempts"] == 2 and taken_over["worker"].startswith("answerer-")
    assert sum(t["attempts"] for t in trials.values()) == 20 + len(refused)  # one trial handed out twice
    print(f"\n19 trials told once each by 2 answerers; the quitter's trial went to {taken_over['worker']}")

    # refusals: the quitter's lease on a finished trial, an unknown trial
    late = http.post(f"/trials/{held['id']}:tell", json={"lease": held["lease"], "val": {"a": 1.0}})
    assert late.status_code == 409 and late.json()["reason"] == "finished", late.text
    unknown = http.post("/trials/not-a-trial:tell", json={"lease": held["lease"], "val": {"a": 1.0}})
    assert unknown.status_code == 404
    assert http.post(f"/studies/{study['id']}/trials:ask").status_code == 410

    problem = parse_problem(http.get(f"/studies/{study['id']}/table").json())
    assert solve(problem, 1.0).objective == pytest.approx(sum(loss(t, list("abcd")) for t in "abcd"))
    grouping = http.get("/groupings", params={"study_id": study["id"], "budget": 1.0}).json()
    assert grouping["trials"] == 19 and grouping["networks"][0]["trains"] == list("abcd")
    http.close()
