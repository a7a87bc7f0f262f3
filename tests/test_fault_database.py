"""A dropped database connection is replaced, not surfaced: every pooled PostgreSQL connection of
the API is killed server-side (``pg_terminate_backend`` on this test session's own database), and
the next requests succeed (``pool_pre_ping``)."""

from __future__ import annotations

import psycopg
import pytest
from conftest import _libpq
from sqlalchemy.engine import make_url

pytestmark = pytest.mark.services


def terminate_connections(url: str) -> int:
    """Kill every other connection to the database of ``url``; how many were killed."""
    with psycopg.connect(_libpq(url), autocommit=True) as admin:
        return admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (make_url(url).database,),
        ).fetchone()[0]


def test_requests_survive_dropped_database_connections(server_settings):
    from conftest import _client

    for client in _client(server_settings):
        for _ in range(3):  # fill the pool
            assert client.get("/jobs").status_code == 200
        assert terminate_connections(server_settings.resolved_database_url) >= 1
        for _ in range(5):
            response = client.get("/jobs")
            assert response.status_code == 200, response.text
        upload = client.post("/datasets", files={"file": ("t.csv", b"a,b\n1,2\n3,4\n")})
        assert upload.status_code == 201, upload.text
        assert client.get("/readyz").json()["checks"]["database"] == "ok"
