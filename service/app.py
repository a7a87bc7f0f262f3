"""The FastAPI application factory (``uvicorn --factory service.app:create_app``).

Embedded mode (no broker configured): the SQLite schema is upgraded at start-up, jobs run in a
thread pool of this process, and jobs a previous process left unfinished are resumed. Server mode:
jobs are published to Celery; the schema is upgraded by ``taskgrouper migrate``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from service.db import make_engine, make_read_session_factory, make_session_factory
from service.errors import install_error_handlers
from service.executor import CeleryExecutor, InProcessExecutor, JobExecutor
from service.metrics import JobsCollector, RequestMetrics
from service.migrate import upgrade
from service.routes import datasets, groupings, health, jobs
from service.settings import Settings

DESCRIPTION = """Submit task-affinity runs, watch them, and read the optimal task grouping at any
inference budget. Errors are `application/problem+json` naming the offending `field`."""


def create_app(settings: Settings | None = None, executor: JobExecutor | None = None) -> FastAPI:
    """Build the app for ``settings`` (default: from the environment)."""
    settings = settings or Settings()
    engine = make_engine(settings.resolved_database_url)
    session_factory = make_session_factory(engine)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.embedded:
            upgrade(settings.resolved_database_url)
        app.state.executor = executor or (
            InProcessExecutor(settings, session_factory) if settings.embedded else CeleryExecutor(settings)
        )
        if isinstance(app.state.executor, InProcessExecutor):
            app.state.executor.resume_pending()
        try:
            yield
        finally:
            app.state.executor.close()
            engine.dispose()

    app = FastAPI(title="taskgrouper", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    app.state.settings = settings
    app.state.session_factory = session_factory
    app.state.read_session_factory = make_read_session_factory(engine)
    app.state.jobs_collector = JobsCollector(session_factory)
    install_error_handlers(app)
    app.add_middleware(RequestMetrics)
    for router in (jobs.router, groupings.router, datasets.router, health.router):
        app.include_router(router)
    return app
