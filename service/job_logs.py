"""A job's log in the database (table ``job_logs``): written by the attempt that runs the job, read by
any API process (``GET /jobs/{id}/logs``), so a log is readable wherever the job ran.

Bounds: an attempt stores at most ``limit`` entries (``job_log_entries``, default 1000); past it, only
warnings and errors are stored, up to a reserve of ``limit // 10`` more — so the entry naming a failure
is kept — and one entry says that entries were dropped. A message longer than
:data:`MAX_MESSAGE_CHARS` (a traceback included) keeps its first and last parts.
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.db import transaction
from service.logs import JobContextFilter
from service.models import JobLogRecord

#: longest stored message (characters); longer ones keep their head and tail
MAX_MESSAGE_CHARS = 8000
#: most entries one read returns
MAX_READ = 5000


def clip(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``text`` within ``limit`` characters: its head and tail around a note of what was cut."""
    if len(text) <= limit:
        return text
    half = (limit - 40) // 2
    return f"{text[:half]}\n… [{len(text) - 2 * half} characters cut] …\n{text[-half:]}"


class JobLogHandler(logging.Handler):
    """Stores the records of one attempt of one job (records whose ``job_id`` — from ``extra=`` or the
    thread's ``service.logs.job_context`` — is the job's), within the module's bounds. A
    failed write is reported on standard error (``logging.Handler.handleError``), never raised into
    the job."""

    def __init__(
        self, job_id: str, attempt: int, session_factory: sessionmaker[Session], limit: int = 1000
    ) -> None:
        super().__init__(level=logging.INFO)
        self.job_id = job_id
        self.attempt = attempt
        self.session_factory = session_factory
        self.limit = limit
        self.reserve = max(1, limit // 10)
        self.stored = 0
        self.dropped = 0
        self.setFormatter(logging.Formatter("%(message)s"))
        self.addFilter(JobContextFilter())
        self.addFilter(lambda record: getattr(record, "job_id", None) == job_id)

    def emit(self, record: logging.LogRecord) -> None:
        """Store ``record`` (called under the handler's lock by ``logging.Handler.handle``)."""
        full = self.stored >= self.limit
        if full and (record.levelno < logging.WARNING or self.stored >= self.limit + self.reserve):
            self.dropped += 1
            return
        noted = full and self.dropped > 0
        try:
            rows = [self._dropped_note()] if noted else []
            rows.append(self._row(record.levelname, getattr(record, "step", None), clip(self.format(record))))
            with transaction(self.session_factory) as session:
                session.add_all(rows)
            self.stored += len(rows)
            self.dropped = 0 if noted else self.dropped
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        """Store the note of entries dropped since the last stored one, if any."""
        with self.lock:
            if self.dropped:
                try:
                    with transaction(self.session_factory) as session:
                        session.add(self._dropped_note())
                except Exception:
                    logging.getLogger(__name__).exception("job %s: log note not stored", self.job_id)
                self.dropped = 0
        super().close()

    def _dropped_note(self) -> JobLogRecord:
        return self._row("WARNING", "log", f"{self.dropped} entries of attempt {self.attempt} dropped: "
                         f"an attempt stores at most {self.limit}")

    def _row(self, level: str, step: str | None, message: str) -> JobLogRecord:
        return JobLogRecord(
            job_id=self.job_id, attempt=self.attempt, level=level, step=(step or None) and step[:64],
            message=message,
        )


def read_job_log(
    session_factory: sessionmaker[Session], job_id: str, *, after: int | None = None, limit: int = MAX_READ
) -> tuple[list[JobLogRecord], bool]:
    """The job's entries after the entry ``after`` (all: ``None``), oldest first, at most ``limit``;
    and whether more follow."""
    query = select(JobLogRecord).where(JobLogRecord.job_id == job_id)
    if after is not None:
        query = query.where(JobLogRecord.id > after)
    with session_factory() as session:
        rows = list(session.scalars(query.order_by(JobLogRecord.id).limit(limit + 1)).all())
    return rows[:limit], len(rows) > limit
