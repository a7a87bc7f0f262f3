"""Engines and sessions: one engine per process and database URL.

SQLite (embedded mode) gets WAL journaling, a busy timeout and foreign keys so that the API
threads and the in-process runner can share the file; PostgreSQL gets ``pool_pre_ping`` so a
dropped connection is replaced instead of failing a request.

Every engine writes its JSON columns with :func:`service.jsonsafe.dumps`: standard JSON whatever the
document holds (NaN and ±infinity become ``null``, numpy and torch values plain numbers), so no
write path can store a document one backend accepts and another refuses.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from service.jsonsafe import dumps


def make_engine(url: str, *, pool_size: int = 5) -> Engine:
    """Create an engine for ``url`` (creating the directory of a SQLite file) whose JSON columns are
    written with :func:`service.jsonsafe.dumps` (standard JSON: a non-finite number is ``null``)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, json_serializer=dumps
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(
        url, pool_pre_ping=True, pool_size=pool_size, max_overflow=2 * pool_size, json_serializer=dumps
    )


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions whose objects stay readable after commit (the API serialises them afterwards)."""
    return sessionmaker(engine, expire_on_commit=False)


def make_read_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions for single-statement reads in autocommit mode: no BEGIN/ROLLBACK round trips."""
    return sessionmaker(engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False)


@contextmanager
def transaction(session_factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session inside one transaction: committed on success, rolled back on error."""
    with session_factory() as session, session.begin():
        yield session
