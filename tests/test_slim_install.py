"""The base install (``pip install taskgrouper``, no extras) is the client and the CLI against a server:
``import service.client`` loads neither torch, OR-Tools, numpy nor the server stack, and a fresh virtual
environment with only the base install lists a real server's jobs, has neither torch nor OR-Tools
installed, and says which extra a library command needs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_key, stored_job
from test_hardening_server import serving

from service.app import create_app
from service.db import make_engine, make_session_factory

REPO = Path(__file__).resolve().parent.parent
#: what the base install must not bring (or, for the import check, load)
HEAVY = ("torch", "ortools", "numpy", "fastapi", "sqlalchemy", "celery", "uvicorn", "pandas", "sklearn")
#: what a wheel of the project is built from
SOURCES = ("pyproject.toml", "README.md", "grouping", "service", "worker")


def test_importing_the_client_loads_nothing_heavy():
    probe = f"import sys, service.client; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


@pytest.mark.slow
@pytest.mark.services
def test_a_fresh_venv_with_the_base_install_talks_to_a_real_server(tmp_path, server_settings):
    source = tmp_path / "source"  # a copy: building in the repository would leave build/ behind
    source.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO / name, source / name)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python, cli = venv / "bin" / "python", venv / "bin" / "taskgrouper"
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", str(source)],
                             capture_output=True, text=True, timeout=900)
    assert install.returncode == 0, install.stdout + install.stderr

    present = subprocess.run(
        [str(python), "-c", f"import importlib.util as u, json; print(json.dumps("
         f"[m for m in {HEAVY!r} if u.find_spec(m) is not None]))"],
        capture_output=True, text=True, check=True)
    assert json.loads(present.stdout) == []
    imported = subprocess.run([str(python), "-c", "import service.client"], capture_output=True, text=True)
    assert imported.returncode == 0, imported.stderr

    key = make_key(server_settings, server_settings.default_project)
    engine = make_engine(server_settings.resolved_database_url, pool_size=1)
    job_id = stored_job(make_session_factory(engine), server_settings.default_project)
    engine.dispose()
    with serving(create_app(server_settings)) as url:
        env = {"PATH": str(venv / "bin"), "TASKGROUPER_API_KEY": key, "HOME": str(tmp_path)}
        listed = subprocess.run([str(cli), "jobs", "list", "--server", url, "--json"], capture_output=True,
                                text=True, env=env, timeout=120)
        assert listed.returncode == 0, listed.stderr
        page = json.loads(listed.stdout)
        assert page["total"] == 1 and page["items"][0]["id"] == job_id
        text = subprocess.run([str(cli), "jobs", "list", "--server", url], capture_output=True, text=True,
                              env=env, timeout=120)
        assert text.returncode == 0 and job_id in text.stdout

    version = subprocess.run([str(cli), "--version"], capture_output=True, text=True, env=env)
    assert version.stdout.strip() == "taskgrouper 0.1.0"
    helped = subprocess.run([str(cli), "--help"], capture_output=True, text=True, env=env)
    assert helped.returncode == 0 and "jobs" in helped.stdout and "not installed" in helped.stdout
    solve = subprocess.run([str(cli), "solve", "problem.json", "--budget", "1"], capture_output=True,
                           text=True, env=env)
    assert solve.returncode == 2 and "pip install 'taskgrouper[all]'" in solve.stderr
    assert "Traceback" not in solve.stderr

