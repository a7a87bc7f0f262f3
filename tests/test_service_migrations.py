"""One Alembic history for both backends: it builds exactly the models' schema on PostgreSQL and SQLite."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from service.db import make_engine
from service.migrate import alembic_config, upgrade
from service.models import Base

TABLES = {
    "alembic_version",
    "datasets",
    "jobs",
    "affinity_results",
    "network_tables",
    "groupings",
    "api_keys",
    "affinity_runs",
}


def schema_diff(url: str) -> list:
    engine = make_engine(url, pool_size=1)
    try:
        with engine.connect() as connection:
            return compare_metadata(MigrationContext.configure(connection), Base.metadata)
    finally:
        engine.dispose()


def test_postgres_schema_matches_models(pg_url):
    upgrade(pg_url)  # idempotent on the session database
    assert schema_diff(pg_url) == []
    engine = make_engine(pg_url, pool_size=1)
    columns = {c["name"]: c["type"] for c in inspect(engine).get_columns("jobs")}
    engine.dispose()
    assert type(columns["spec"]).__name__ == "JSONB"


def test_sqlite_upgrade_downgrade_upgrade(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    upgrade(url)
    assert schema_diff(url) == []
    engine = make_engine(url)
    assert set(inspect(engine).get_table_names()) >= TABLES
    command.downgrade(alembic_config(url), "base")
    assert set(inspect(engine).get_table_names()) == {"alembic_version"}
    engine.dispose()
    upgrade(url)
    assert schema_diff(url) == []
