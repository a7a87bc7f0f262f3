"""The dashboard's routes (none in the OpenAPI schema): ``/`` redirects to ``/dashboard``, the list of
jobs and uploaded affinity runs; ``/dashboard/jobs/{id}`` is a job's page and ``/dashboard/runs/{id}``
an uploaded run's (the same page); ``/dashboard/compare?a=ID:METHOD&b=ID:METHOD`` compares two runs.
Pages and scripts are static (see :mod:`service.dashboard`)."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from starlette.routing import Mount

from service.dashboard.assets import PLOTLY, STATIC, static_files

router = APIRouter(include_in_schema=False)


def _page(name: str) -> FileResponse:
    return FileResponse(STATIC / name, media_type="text/html", headers={"Cache-Control": "no-cache"})


@router.get("/")
async def root() -> RedirectResponse:
    return RedirectResponse("/dashboard", status_code=307)


@router.get("/dashboard")
async def job_list() -> FileResponse:
    return _page("index.html")


@router.get("/dashboard/jobs/{job_id}")
@router.get("/dashboard/runs/{run_id}")
async def results_page() -> FileResponse:
    return _page("job.html")


@router.get("/dashboard/compare")
async def compare_page() -> FileResponse:
    return _page("compare.html")


def install_dashboard(app: FastAPI) -> None:
    """Add the dashboard's pages and its assets (``/dashboard/static``, ``/dashboard/vendor``) to ``app``."""
    app.include_router(router)
    app.router.routes.append(Mount("/dashboard/static", app=static_files(STATIC)))
    if PLOTLY is not None:
        app.router.routes.append(Mount("/dashboard/vendor", app=static_files(PLOTLY)))
