"""Liveness, readiness (database and queue reachable) and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import text

from service.errors import problem_responses
from service.metrics import metrics_response
from service.schemas import Health

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The process is up."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
def readyz(request: Request) -> Response:
    """200 when the database answers and jobs can be queued (broker reachable), else 503 naming
    the failing check."""
    checks: dict[str, str] = {}
    try:
        with request.app.state.session_factory() as session:
            session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"unavailable: {type(exc).__name__}"
    try:
        request.app.state.executor.check()
        checks["queue"] = "ok"
    except Exception as exc:
        checks["queue"] = f"unavailable: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    body = Health(status="ok" if ready else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


@router.get(
    "/metrics",
    response_class=Response,
    responses=problem_responses({401: "an API key was presented but is not valid (or one is required)"}),
)
async def metrics(request: Request) -> Response:
    """Prometheus text exposition: jobs by status, job duration, running jobs and live workers,
    queue lengths (the same from every API process); request latency and solve time (per process);
    the caller's project's jobs when an API key is presented (see :mod:`service.metrics`)."""
    return await metrics_response(request)
