"""Where the dashboard's and the docs' static files are: this package's ``static/`` folder and the
folders of the installed packages that ship plotly.js, Swagger UI and ReDoc (found without importing
them). An asset folder whose package is not installed is ``None``: its routes then answer 404."""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

from starlette.middleware.gzip import GZipMiddleware
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

#: the dashboard's own pages, scripts and style sheet
STATIC = Path(__file__).parent / "static"


def package_folder(package: str, folder: str) -> Path | None:
    """``folder`` inside the installed ``package`` (not imported), or ``None`` when either is missing."""
    spec = find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / folder
    return path if path.is_dir() else None


#: plotly.min.js (``plotly`` package data)
PLOTLY = package_folder("plotly", "package_data")
#: swagger-ui-bundle.js, swagger-ui.css, redoc.standalone.js, favicon.png (``fastapi_offline``)
DOCS = package_folder("fastapi_offline", "static")


def static_files(folder: Path) -> ASGIApp:
    """An app serving the files of ``folder``, gzip-compressed for clients that accept it (plotly.js
    is 4.8 MB, 1.5 MB compressed)."""
    return GZipMiddleware(StaticFiles(directory=folder), minimum_size=1024)
