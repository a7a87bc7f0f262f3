"""Prometheus metrics at ``GET /metrics``: what every API process agrees on, what one process saw,
and what only a project's key may see.

**Shared state, the same from every API process** (read at scrape time from the database and the
broker, so two scrapes answered by different processes never disagree and nothing goes backwards):

* ``taskgrouper_jobs{status}`` — jobs of all projects by status (global totals, no project label);
* ``taskgrouper_job_duration_seconds`` — run time of finished jobs (a histogram built in SQL);
* ``taskgrouper_running_jobs{heartbeat="fresh"|"stale"}`` — running jobs whose last heartbeat is
  younger (fresh) or older (stale) than ``stale_after``, and ``taskgrouper_live_workers`` — distinct
  workers running a job with a fresh heartbeat (idle workers count in ``taskgrouper_workers_alive``
  below, read from their presence beats: asking every worker over the broker would make each scrape
  wait for the slowest one);
* ``taskgrouper_queue_messages{queue}`` — messages waiting in each Celery queue (the length of its
  Redis lists), ``taskgrouper_workers_alive{queue}`` — worker processes consuming the queue whose
  presence beat (``service.presence``, every ``heartbeat_interval``) is younger than ``stale_after``,
  idle ones included, and ``taskgrouper_broker_up`` (1 when the broker answered); server mode only.

**Per process** — ``taskgrouper_http_request_duration_seconds``, ``taskgrouper_solve_duration_seconds``
and the client library's ``process_*``/``python_*`` metrics — are counted in the API process that
served the request. With ``PROMETHEUS_MULTIPROC_DIR`` set in the environment of every API process
(before they start), prometheus-client's multiprocess collector sums them across the processes of a
host and they carry no extra label. Without it, every sample carries ``pid``: the process that
answered this scrape, so a counter never appears to go backwards when the next scrape is answered by
another process (each pid's series is monotonic on its own; sum them over ``pid``).

**Per project**: ``taskgrouper_project_jobs{project,status}`` — only the caller's own project, and
only for a caller who presents an API key (``Authorization: Bearer``), or any caller where keys are
not required (embedded mode: the default project). A scraper without a key in server mode sees the
global totals above and nothing per project; an invalid key is a 401. Setting
``metrics_require_key`` makes a key mandatory for ``/metrics`` too (where keys are required at all).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from prometheus_client import REGISTRY, CollectorRegistry, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.models import JOB_STATUSES, Job, utcnow
from service.presence import count_alive_commands

if TYPE_CHECKING:
    from fastapi import Request, Response

    from service.settings import Settings

REQUEST_SECONDS = Histogram(
    "taskgrouper_http_request_duration_seconds",
    "HTTP request latency by route template (per API process: see the module's notes)",
    ["method", "route", "status"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
SOLVE_SECONDS = Histogram(
    "taskgrouper_solve_duration_seconds",
    "Time to solve one grouping (per API process: see the module's notes)",
    ["solver"],
    buckets=(0.001, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0),
)
#: upper bounds (seconds) of the job-duration histogram buckets
JOB_DURATION_BUCKETS = (10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 12 * 3600.0, 24 * 3600.0)
#: the label every per-process sample carries outside multiprocess mode
PROCESS_LABEL = "pid"
#: kombu's Redis transport keeps a queue's messages of priority p > 0 in the list ``<queue>\x06\x16<p>``
_PRIORITY_SEPARATOR = "\x06\x16"
_PRIORITY_STEPS = (3, 6, 9)
#: seconds the broker may take to answer a scrape's queue-length query
BROKER_TIMEOUT = 1.0


class JobsCollector(Collector):
    """The shared-state metrics of the module docstring (jobs by status, job duration, running jobs
    by heartbeat, live workers; queue lengths when ``settings`` name a Redis broker), read from the
    jobs table and the broker at every collection."""

    def __init__(self, session_factory: sessionmaker[Session], settings: Settings | None = None) -> None:
        self.session_factory = session_factory
        self.settings = settings
        self._redis: Any = None

    def collect(self) -> Iterator[Metric]:
        yield from self._jobs()
        yield from self._queues()

    def _jobs(self) -> Iterator[Metric]:
        jobs = GaugeMetricFamily("taskgrouper_jobs", "Jobs of all projects by status", labels=["status"])
        bucket_columns = [
            func.sum(case((Job.run_seconds <= bound, 1), else_=0)) for bound in JOB_DURATION_BUCKETS
        ]
        stale_after = self.settings.stale_after if self.settings is not None else 120.0
        fresh_since = utcnow() - timedelta(seconds=stale_after)
        fresh = Job.heartbeat_at >= fresh_since
        with self.session_factory() as session:
            counts = dict(session.execute(select(Job.status, func.count()).group_by(Job.status)).all())
            total, seconds, *buckets = session.execute(
                select(func.count(), func.coalesce(func.sum(Job.run_seconds), 0.0), *bucket_columns).where(
                    Job.status.in_(("succeeded", "failed")), Job.run_seconds.is_not(None)
                )
            ).one()
            n_fresh, n_workers = session.execute(
                select(func.count(), func.count(func.distinct(Job.worker))).where(
                    Job.status == "running", fresh
                )
            ).one()
        for status in JOB_STATUSES:
            jobs.add_metric([status], counts.get(status, 0))
        yield jobs
        duration = HistogramMetricFamily(
            "taskgrouper_job_duration_seconds", "Run time of finished (succeeded or failed) jobs"
        )
        cumulative = [
            (str(bound), int(n or 0)) for bound, n in zip(JOB_DURATION_BUCKETS, buckets, strict=True)
        ]
        duration.add_metric([], [*cumulative, ("+Inf", int(total))], float(seconds or 0.0))
        yield duration
        running = GaugeMetricFamily(
            "taskgrouper_running_jobs",
            f"Running jobs by heartbeat: fresh (within stale_after = {stale_after:g} s) or stale",
            labels=["heartbeat"],
        )
        running.add_metric(["fresh"], int(n_fresh))
        running.add_metric(["stale"], max(0, counts.get("running", 0) - int(n_fresh)))
        yield running
        yield GaugeMetricFamily(
            "taskgrouper_live_workers",
            "Distinct workers running a job with a fresh heartbeat (idle workers are not counted)",
            value=int(n_workers),
        )

    def _queues(self) -> Iterator[Metric]:
        settings = self.settings
        url = settings.broker_url if settings is not None else None
        if settings is None or not url or not url.startswith(("redis://", "rediss://", "unix://")):
            return
        up = GaugeMetricFamily("taskgrouper_broker_up", "1 when the broker answered this scrape, else 0")
        queues = GaugeMetricFamily(
            "taskgrouper_queue_messages",
            "Messages waiting in a Celery queue (not yet taken)",
            labels=["queue"],
        )
        alive = GaugeMetricFamily(
            "taskgrouper_workers_alive",
            f"Worker processes consuming a queue whose presence beat is younger than stale_after "
            f"({settings.stale_after:g} s), idle or busy",
            labels=["queue"],
        )
        try:
            lengths, workers = self._broker_state(url, [settings.training_queue, settings.solve_queue])
        except Exception:  # the broker being down is what this metric reports
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        for queue, length in lengths.items():
            queues.add_metric([queue], length)
            alive.add_metric([queue], workers[queue])
        yield queues
        yield alive

    def _broker_state(self, url: str, names: list[str]) -> tuple[dict[str, int], dict[str, int]]:
        """Per queue: the messages waiting and the live workers (:mod:`service.presence`), in one
        round trip."""
        import redis

        if self._redis is None:
            self._redis = redis.Redis.from_url(
                url, socket_timeout=BROKER_TIMEOUT, socket_connect_timeout=BROKER_TIMEOUT
            )
        names = list(dict.fromkeys(names))
        pipe = self._redis.pipeline(transaction=False)
        for name in names:
            pipe.llen(name)
            for step in _PRIORITY_STEPS:
                pipe.llen(f"{name}{_PRIORITY_SEPARATOR}{step}")
        stale_after = self.settings.stale_after if self.settings is not None else 120.0
        count_alive_commands(pipe, names, stale_after)
        values = pipe.execute()
        per_queue = 1 + len(_PRIORITY_STEPS)
        lengths = {
            name: int(sum(values[i * per_queue : (i + 1) * per_queue])) for i, name in enumerate(names)
        }
        alive = dict(zip(names, (int(v) for v in values[len(names) * per_queue :]), strict=True))
        return lengths, alive


class ProjectJobsCollector(Collector):
    """``taskgrouper_project_jobs{project,status}`` of one project."""

    def __init__(self, session_factory: sessionmaker[Session], project: str) -> None:
        self.session_factory = session_factory
        self.project = project

    def collect(self) -> Iterator[Metric]:
        with self.session_factory() as session:
            counts = dict(
                session.execute(
                    select(Job.status, func.count()).where(Job.project == self.project).group_by(Job.status)
                ).all()
            )
        family = GaugeMetricFamily(
            "taskgrouper_project_jobs", "The caller's project's jobs by status", labels=["project", "status"]
        )
        for status in JOB_STATUSES:
            family.add_metric([self.project, status], counts.get(status, 0))
        yield family


class _Labelled(Collector):
    """Every metric of ``registry``, each sample labelled ``pid=<this process>``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Metric]:
        pid = str(os.getpid())
        for family in self.registry.collect():
            out = Metric(family.name, family.documentation, family.type, family.unit)
            for sample in family.samples:
                out.add_sample(
                    sample.name,
                    {**sample.labels, PROCESS_LABEL: pid},
                    sample.value,
                    sample.timestamp,
                    sample.exemplar,
                )
            yield out


def multiprocess_mode() -> bool:
    """Whether per-process metrics are aggregated across processes (``PROMETHEUS_MULTIPROC_DIR`` set)."""
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def exposition(jobs: JobsCollector, project_jobs: ProjectJobsCollector | None = None) -> bytes:
    """The text exposition: per-process metrics (aggregated in multiprocess mode, else labelled
    ``pid``), the shared-state metrics of ``jobs``, and ``project_jobs`` when given."""
    process = CollectorRegistry(auto_describe=False)
    if multiprocess_mode():
        multiprocess.MultiProcessCollector(process)
    else:
        process.register(_Labelled(REGISTRY))
    shared = CollectorRegistry(auto_describe=False)
    shared.register(jobs)
    if project_jobs is not None:
        shared.register(project_jobs)
    return generate_latest(process) + generate_latest(shared)


async def caller_project(request: Request) -> str | None:
    """The project whose numbers the caller may see: that of the API key presented (a bad key is a
    401, like on every route), the default project where keys are not required, else ``None``
    (an anonymous scrape in server mode; a 401 instead when ``metrics_require_key`` is set)."""
    from service.auth import unauthorized
    from service.routes import deps

    settings = request.app.state.settings
    if request.headers.get("authorization") is None and settings.auth_required:
        if settings.metrics_require_key:
            raise unauthorized("an API key is required: Authorization: Bearer <key>")
        return None
    credentials = await deps.bearer(request)
    return await deps.project(request, credentials)


async def metrics_response(request: Request) -> Response:
    """``GET /metrics``: the exposition for this caller (see the module docstring)."""
    from fastapi import Response
    from fastapi.concurrency import run_in_threadpool

    project = await caller_project(request)
    state = request.app.state
    project_jobs = ProjectJobsCollector(state.session_factory, project) if project is not None else None
    body = await run_in_threadpool(exposition, state.jobs_collector, project_jobs)
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")


class RequestMetrics:
    """ASGI middleware observing each HTTP request's latency under its route template (not its raw path)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            REQUEST_SECONDS.labels(scope["method"], template, str(status)).observe(
                time.perf_counter() - started
            )
