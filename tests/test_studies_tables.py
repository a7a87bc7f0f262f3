"""``taskgrouper tables`` with a broker configured trains the table's networks on real Celery workers
(a builtin study on PostgreSQL) and writes the same table as without one (a local process)."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.settings import Settings
from tests.child_processes import Processes, running_in
from tests.conftest import service_env
from tests.test_studies_workers import taskgrouper

pytestmark = pytest.mark.services


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    yield from running_in(tmp_path)


def test_tables_with_a_broker_fans_out_and_gives_the_same_table(server_settings: Settings,
                                                                processes: Processes, tmp_path: Path):
    tag = uuid.uuid4().hex[:8]
    settings = server_settings.model_copy(update={
        "training_queue": f"{server_settings.training_queue}-{tag}",
        "solve_queue": f"{server_settings.solve_queue}-{tag}"})
    env = service_env(settings)
    for k in range(2):
        processes.start(f"worker-{k}", [*taskgrouper(), "worker", "--loglevel", "WARNING"], env)
    command = [*taskgrouper(), "tables", "--dataset", "synthetic", "--tasks", "c0_t0,c0_t1,c1_t0",
               "--method", "pairwise", "--epochs", "1", "--seed", "5"]
    fanned = subprocess.run([*command, "--out", str(tmp_path / "workers.json")], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=900)
    assert fanned.returncode == 0, fanned.stderr + processes.logs()
    assert "[9/9]" in fanned.stderr  # a line per network as it ended
    local_env = {k: v for k, v in env.items() if k != "TASKGROUPER_BROKER_URL"}
    local = subprocess.run([*command, "--workers", "1", "--out", str(tmp_path / "local.json")], env=local_env,
                           cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert local.returncode == 0, local.stderr
    on_workers, here = (json.loads((tmp_path / name).read_text()) for name in ("workers.json", "local.json"))
    assert on_workers == here

    refused = subprocess.run([*command, "--split-column", "part", "--out", str(tmp_path / "x.json")], env=env,
                             cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and "--dataset" in refused.stderr, refused.stderr
