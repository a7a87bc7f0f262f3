"""Schema upgrades with Alembic (``taskgrouper migrate``; automatic for the embedded SQLite file)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

#: the repository's ``alembic.ini`` (its ``script_location`` is the ``migrations/`` folder beside it)
ALEMBIC_INI = Path(__file__).resolve().parent.parent / "alembic.ini"


def alembic_config(database_url: str) -> Config:
    """An Alembic config bound to ``database_url`` (logging left to the caller)."""
    config = Config(str(ALEMBIC_INI))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    config.attributes["skip_logging"] = True
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Upgrade the schema at ``database_url`` to ``revision`` (idempotent)."""
    command.upgrade(alembic_config(database_url), revision)
