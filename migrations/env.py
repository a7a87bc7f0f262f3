"""Alembic environment: one migration history for PostgreSQL and SQLite.

The URL is ``sqlalchemy.url`` when the caller set it (``service.migrate``), else the service
settings (``TASKGROUPER_DATABASE_URL`` or the embedded SQLite file). SQLite runs in batch mode so
that later ``ALTER TABLE`` migrations work there too.
"""

from __future__ import annotations

import logging.config

from alembic import context

from service.db import make_engine
from service.models import Base
from service.settings import Settings

config = context.config
if config.config_file_name is not None and not config.attributes.get("skip_logging"):
    logging.config.fileConfig(config.config_file_name, disable_existing_loggers=False)

url = config.get_main_option("sqlalchemy.url") or Settings().resolved_database_url


def run_offline() -> None:
    """Emit SQL to stdout (``alembic upgrade head --sql``)."""
    context.configure(
        url=url, target_metadata=Base.metadata, literal_binds=True, render_as_batch=url.startswith("sqlite")
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    """Apply migrations over a live connection."""
    engine = make_engine(url, pool_size=1)
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=Base.metadata,
                render_as_batch=connection.dialect.name == "sqlite",
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
