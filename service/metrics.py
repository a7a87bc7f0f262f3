"""Prometheus metrics: request latency and solve time (per process), jobs by status and job
duration (read from the database at scrape time, so every API process reports the same truth).

With ``PROMETHEUS_MULTIPROC_DIR`` set (several uvicorn workers), the per-process metrics of all
workers are aggregated by prometheus-client's multiprocess collector.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

from prometheus_client import REGISTRY, CollectorRegistry, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.models import JOB_STATUSES, Job

REQUEST_SECONDS = Histogram(
    "taskgrouper_http_request_duration_seconds",
    "HTTP request latency by route template",
    ["method", "route", "status"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
SOLVE_SECONDS = Histogram(
    "taskgrouper_solve_duration_seconds",
    "Time to solve one grouping",
    ["solver"],
    buckets=(0.001, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0),
)
#: upper bounds (seconds) of the job-duration histogram buckets
JOB_DURATION_BUCKETS = (10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 12 * 3600.0, 24 * 3600.0)


class JobsCollector(Collector):
    """``taskgrouper_jobs{status}`` and ``taskgrouper_job_duration_seconds`` (finished jobs), read
    from the jobs table."""

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self.session_factory = session_factory

    def collect(self) -> Iterator[GaugeMetricFamily | HistogramMetricFamily]:
        jobs = GaugeMetricFamily("taskgrouper_jobs", "Jobs by status", labels=["status"])
        bucket_columns = [
            func.sum(case((Job.run_seconds <= bound, 1), else_=0)) for bound in JOB_DURATION_BUCKETS
        ]
        with self.session_factory() as session:
            counts = dict(session.execute(select(Job.status, func.count()).group_by(Job.status)).all())
            total, seconds, *buckets = session.execute(
                select(func.count(), func.coalesce(func.sum(Job.run_seconds), 0.0), *bucket_columns).where(
                    Job.status.in_(("succeeded", "failed")), Job.run_seconds.is_not(None)
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


def exposition(jobs: JobsCollector) -> bytes:
    """The text exposition of every metric (multiprocess-aware)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        process_metrics = generate_latest(registry)
    else:
        process_metrics = generate_latest(REGISTRY)
    own = CollectorRegistry(auto_describe=False)
    own.register(jobs)
    return process_metrics + generate_latest(own)


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
