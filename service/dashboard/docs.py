"""``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) rendered from assets of an installed package
(``fastapi_offline``'s copies, MIT-licensed), so they work on a machine without internet. The app
is created with ``docs_url=None, redoc_url=None``; these routes replace FastAPI's, which load their
scripts from a CDN."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.routing import Mount

from service.dashboard.assets import DOCS, static_files

#: where the docs' scripts, style sheet and icon are served
ASSETS = "/docs/assets"
#: what the ReDoc page may load: everything from this server, no image from elsewhere
REDOC_POLICY = "img-src 'self' data: blob:"


def install_docs(app: FastAPI) -> None:
    """Add ``/docs``, ``/redoc`` and their assets to ``app`` (404 without ``fastapi_offline``)."""
    if DOCS is None or app.openapi_url is None:
        return
    openapi_url = app.openapi_url
    title = app.title

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} — API docs",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        page = get_redoc_html(
            openapi_url=openapi_url,
            title=f"{title} — API reference",
            redoc_js_url=f"{ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS}/favicon.png",
            with_google_fonts=False,
        )
        # ReDoc's menu shows its maker's logo from their CDN: images from elsewhere are not loaded
        page.headers["Content-Security-Policy"] = REDOC_POLICY
        return page

    app.router.routes.append(Mount(ASSETS, app=static_files(DOCS)))
