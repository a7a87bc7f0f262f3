"""The FastAPI application factory (``uvicorn --factory service.app:create_app``).

Embedded mode (no broker configured): the SQLite schema is upgraded at start-up, jobs run in a
thread pool of this process, and jobs a previous process left unfinished are resumed. Server mode:
jobs are published to Celery; the schema is upgraded by ``taskgrouper migrate``; API keys are
required and rate-limited in Redis (see ``service.auth``, ``service.ratelimit``, ``service.limits``).
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from service.auth import KeyVerifier
from service.dashboard.docs import install_docs
from service.dashboard.routes import install_dashboard
from service.db import make_engine, make_read_session_factory, make_session_factory
from service.errors import CatchAll, install_error_handlers, problem_responses
from service.executor import CeleryExecutor, InProcessExecutor, JobExecutor
from service.limits import BodyLimit
from service.metrics import JobsCollector, RequestMetrics
from service.migrate import upgrade
from service.ratelimit import RateLimiter
from service.routes import affinity_runs, datasets, groupings, health, jobs, logs
from service.routes.studies import router as studies_router
from service.settings import Settings
from service.upload_parsing import UploadLimits, UploadReader

DESCRIPTION = """Submit runs that estimate how tasks train together (by default `tag_first_order`
affinity from one training run of the all-task network, its stored network tables allowing half-size
single-task networks at cost 0.5; other affinity methods and `warm_start` by name), watch them, and
read the optimal task grouping at any inference budget, with a trust report (the predicted gain over
one all-task network, its interval and win rate over resamples of the estimate). Errors are
`application/problem+json` naming the offending `field`. In server mode every resource route needs
`Authorization: Bearer <API key>` and sees only the key's project."""


#: answers any route may give besides its own (authentication, rate limit, body size)
COMMON_RESPONSES = problem_responses(
    {
        400: "the request body could not be decoded (not UTF-8, broken multipart)",
        401: "missing, malformed, unknown or revoked API key",
        413: "request body over the size limit",
        422: "invalid input: `field` names it, `reason` says why",
        429: "rate limit exceeded; Retry-After says when to retry",
    }
)


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
        url = settings.resolved_rate_limit_url
        app.state.rate_limiter = (
            RateLimiter(url, settings.rate_limit_requests, settings.rate_limit_window)
            if url and settings.rate_limit_requests
            else None
        )
        # Everything imported so far (torch, numpy, the web stack) lives as long as the process: move it out
        # of the collector's reach so full collections stay short and do not stretch request latency.
        gc.freeze()
        try:
            yield
        finally:
            if app.state.rate_limiter is not None:
                await app.state.rate_limiter.close()
            app.state.executor.close()
            engine.dispose()

    app = FastAPI(
        title="taskgrouper",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # offline copies instead: service.dashboard.docs
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.session_factory = session_factory
    app.state.read_session_factory = make_read_session_factory(engine)
    app.state.jobs_collector = JobsCollector(session_factory, settings)
    app.state.key_verifier = KeyVerifier(session_factory)
    app.state.upload_reader = UploadReader(UploadLimits.from_settings(settings))
    app.state.rate_limiter = None
    install_error_handlers(app)
    app.add_middleware(CatchAll)  # innermost: the metrics see its 500s
    app.add_middleware(BodyLimit, settings=settings)
    app.add_middleware(RequestMetrics)
    for router in (jobs.router, logs.router, groupings.router, affinity_runs.router, datasets.router):
        app.include_router(router, responses=COMMON_RESPONSES)
    app.include_router(studies_router, responses=COMMON_RESPONSES)
    app.include_router(health.router)
    install_docs(app)
    install_dashboard(app)
    return app
