"""A builtin study on real Celery workers (PostgreSQL, Redis): 4 tasks, the exhaustive strategy, two
worker processes; one is ``kill -9``ed while it trains a trial, after that trial stored its first
epoch checkpoint. The trial reaper of the surviving worker gives that trial back once its lease
expires, the next attempt resumes from the checkpoint, and the study completes with every trial
succeeded exactly once, its values equal to the single-process ``taskgrouper tables`` table of the
same seed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.settings import Settings
from tests.child_processes import Processes, running_in
from tests.conftest import _client, service_env

pytestmark = pytest.mark.services
TASKS = ["c0_t0", "c0_t1", "c1_t0", "c1_t1"]
SEED = 11
EPOCHS = 3


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    yield from running_in(tmp_path)


@pytest.fixture
def settings(server_settings: Settings) -> Settings:
    """Queues of this test alone and a fast trial reaper."""
    tag = uuid.uuid4().hex[:8]
    return server_settings.model_copy(update={
        "reap_interval": 0.5,
        "training_queue": f"{server_settings.training_queue}-{tag}",
        "solve_queue": f"{server_settings.solve_queue}-{tag}",
    })


def taskgrouper() -> list[str]:
    exe = shutil.which("taskgrouper")
    return [exe] if exe else [sys.executable, "-m", "service.cli"]


def test_kill_9_a_worker_mid_trial_every_trial_succeeds_once_equal_to_tables(
    settings: Settings, processes: Processes, tmp_path: Path
):
    workers = [processes.start(f"worker-{k}", [*taskgrouper(), "worker", "--loglevel", "WARNING"],
                               service_env(settings)) for k in range(2)]
    for http in _client(settings):  # one client: the test client of the app in server mode
        made = http.post("/studies", json={
            "tasks": TASKS, "strategy": "exhaustive", "execution": "builtin", "dataset": "synthetic",
            "half_singletons": True, "seed": SEED, "training": {"epochs": EPOCHS}, "lease_seconds": 4})
        assert made.status_code == 201, made.text
        study_id = made.json()["id"]

        def trials(http=http, study_id=study_id) -> list[dict]:
            return http.get(f"/studies/{study_id}/trials", params={"limit": 100}).json()["items"]

        # kill -9 the worker of the first running trial seen with a stored checkpoint (its process runs
        # in its own session); a checkpoint is never stored after the last epoch, so the trial is
        # still training
        deadline = time.monotonic() + 300
        while not (running := [t for t in trials() if t["state"] == "running" and t["checkpoint_epoch"]]):
            assert time.monotonic() < deadline and all(w.poll() is None for w in workers), processes.logs()
            time.sleep(0.05)
        victim_trial = running[0]
        victim_pid = int(victim_trial["worker"].split("@")[0].rsplit("-", 1)[1])
        [victim] = [w for w in workers if w.pid == victim_pid]
        processes.kill(victim)
        print(f"\nkilled worker {victim_trial['worker']} while it trained {victim_trial['tasks']} "
              f"({victim_trial['size']})")

        deadline = time.monotonic() + 600
        while (study := http.get(f"/studies/{study_id}").json())["state"] != "complete":
            assert time.monotonic() < deadline, f"{study}\n{processes.logs()}"
            time.sleep(0.5)
        assert study["progress"] == {"waiting": 0, "running": 0, "succeeded": 19, "failed": 0, "total": 19}
        done = trials()
        lost = next(t for t in done if t["id"] == victim_trial["id"])
        assert lost["attempts"] == 2 and lost["worker"] != victim_trial["worker"]
        assert lost["resumed_from_epoch"] >= victim_trial["checkpoint_epoch"] >= 1, lost
        assert all(t["resumed_from_epoch"] is None for t in done if t["id"] != lost["id"])
        assert sum(t["attempts"] for t in done) == 20  # nothing lost, nothing trained twice but it
        assert len({(tuple(t["tasks"]), t["size"]) for t in done}) == 19

    saved = tmp_path / "table.json"
    subprocess.run([*taskgrouper(), "tables", "--dataset", "synthetic", "--tasks", ",".join(TASKS),
                    "--method", "exhaustive", "--epochs", str(EPOCHS), "--seed", str(SEED), "--workers", "1",
                    "--quiet", "--save-table", str(saved), "--out", str(tmp_path / "problem.json")],
                   check=True, cwd=tmp_path, timeout=900)
    rows = {(tuple(r["tasks"]), r["size"]): r for r in json.loads(saved.read_text())["rows"]}
    assert len(rows) == 19
    for trial in done:
        row = rows[(tuple(trial["tasks"]), trial["size"])]
        assert trial["val"] == row["val_loss"] and trial["test"] == row["test_loss"], (trial, row)
        assert trial["epochs_run"] == row["epochs_run"]
