"""What a user is told about the default method and a wrong ``--method``:

* ``taskgrouper demo --method foo`` (and an empty ``--method``) prints one line naming ``--method``
  and the choices, exits 2 without a traceback, and creates nothing;
* the API's OpenAPI document names ``tag_first_order`` (half-size single-task networks allowed) as
  the default method, on the service and on ``POST /jobs``, and no longer ``warm_start``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from service.schemas import DEFAULT_METHODS, JOB_METHODS


def _taskgrouper() -> list[str]:
    exe = shutil.which("taskgrouper")
    return [exe] if exe else [sys.executable, "-m", "service.cli"]


@pytest.mark.parametrize("method", ["foo", ""])
def test_demo_with_an_unknown_method_is_a_clear_error(tmp_path: Path, method: str):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKGROUPER_")}
    env["TASKGROUPER_HOME"] = str(tmp_path / "home")
    done = subprocess.run(
        [*_taskgrouper(), "demo", "--method", method],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done
    assert "Traceback" not in done.stderr and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert lines == [f"taskgrouper demo: error: --method: choose one of {', '.join(JOB_METHODS)}"]
    assert not (tmp_path / "home" / "taskgrouper.sqlite3").exists()


def test_the_api_documents_the_default_method(embedded_client):
    assert list(DEFAULT_METHODS) == ["tag_first_order"]
    spec = embedded_client.get("/openapi.json").json()
    description = spec["info"]["description"]
    assert "by default `tag_first_order`" in description and "half-size" in description
    submit = spec["paths"]["/jobs"]["post"]["description"]
    assert "default ``tag_first_order``" in submit and "default ``warm_start``" not in submit
    job_create = spec["components"]["schemas"]["JobCreate"]["properties"]["methods"]
    assert job_create["default"] == ["tag_first_order"]
