"""Process logging of the API and the workers: one configuration, applied once per process.

``configure_logging`` (``taskgrouper worker``; ``taskgrouper serve`` hands :func:`logging_config` to
uvicorn, which applies it in every server process) sends every record to standard error, by default
as one JSON object per line (``log_format = "json"``; ``"text"`` for plain lines)::

    {"time": "2026-11-29T06:41:05.123Z", "level": "INFO", "logger": "worker.runner",
     "message": "step load_dataset started", "job_id": "5f0c…", "attempt": 1, "step": "load_dataset"}

Records logged while a job runs carry its ``job_id``, ``attempt`` and ``step`` (:func:`job_context`
sets them for the current thread or task; :class:`JobContextFilter` copies them onto each record),
including those of library code the job calls. The uvicorn access log is on: one record per request
(``logger: uvicorn.access``, the client, request line and status in ``message``).
"""

from __future__ import annotations

import contextlib
import logging
import logging.config
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Any

#: the record attributes a running job adds (None outside a job)
JOB_FIELDS = ("job_id", "attempt", "step")


@dataclass(frozen=True)
class JobContext:
    """The job the current thread (or asyncio task) works on."""

    job_id: str
    attempt: int | None = None
    step: str | None = None


_current: ContextVar[JobContext | None] = ContextVar("taskgrouper_job", default=None)


def current_job() -> JobContext | None:
    """The job of the current thread or task, if any."""
    return _current.get()


@contextlib.contextmanager
def job_context(job_id: str | None = None, *, attempt: int | None = None, step: str | None = None
                ) -> Iterator[JobContext]:
    """Within the block, records carry ``job_id`` and ``attempt`` (default: those of the enclosing
    context) and ``step``."""
    outer = _current.get()
    if job_id is None:
        if outer is None:
            raise ValueError("job_context needs a job_id outside another job context")
        context = replace(outer, step=step, attempt=attempt or outer.attempt)
    else:
        context = JobContext(job_id, attempt, step)
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)


class JobContextFilter(logging.Filter):
    """Adds ``job_id``, ``attempt`` and ``step`` of :func:`current_job` to every record (left as they
    are where the record already has them, e.g. from ``extra=``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _current.get()
        for name in JOB_FIELDS:
            if getattr(record, name, None) is None:
                setattr(record, name, getattr(context, name) if context is not None else None)
        return True


#: fields of a JSON line, in order (then any ``extra=`` of the record)
_JSON_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
_JSON_RENAME = {"asctime": "time", "levelname": "level", "name": "logger"}
_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [job=%(job_id)s step=%(step)s] %(message)s"


def logging_config(log_format: str = "json", level: str = "INFO") -> dict[str, Any]:
    """The ``logging.config.dictConfig`` document of a process: root and uvicorn's loggers to standard
    error through :class:`JobContextFilter`, formatted as JSON lines or text."""
    formatter: dict[str, Any]
    if log_format == "json":
        formatter = {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": _JSON_FORMAT,
            "rename_fields": _JSON_RENAME,
            "timestamp": False,
            "datefmt": "%Y-%m-%dT%H:%M:%S%z",
        }
    else:
        formatter = {"format": _TEXT_FORMAT}
    handler = {
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
        "formatter": "default",
        "filters": ["job"],
    }
    inherit = {"handlers": [], "propagate": True}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"job": {"()": JobContextFilter}},
        "formatters": {"default": formatter},
        "handlers": {"default": handler},
        "root": {"handlers": ["default"], "level": level},
        "loggers": {"uvicorn": inherit, "uvicorn.error": inherit, "uvicorn.access": inherit},
    }


def configure_logging(log_format: str = "json", level: str = "INFO") -> None:
    """Apply :func:`logging_config` to this process."""
    logging.config.dictConfig(logging_config(log_format, level))
