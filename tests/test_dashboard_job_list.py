"""The job list the dashboard pages through (``GET /jobs``): keyset pages (``next`` carries the page's
last job as ``after``) in both modes, every job once and newest first, equal ``created_at`` broken by
id, per status, ``offset`` as the page's position, an unknown cursor a 404 naming ``after``; the
dashboard's pages and the offline docs are served and kept out of the OpenAPI schema."""

from __future__ import annotations

from datetime import timedelta

from conftest import stored_job
from sqlalchemy import update

from service.db import transaction
from service.models import Job, utcnow


def seed(client, count: int) -> list[str]:
    """``count`` jobs of the client's project (some sharing a creation time), newest first."""
    sessions = client.app.state.session_factory
    project = client.app.state.settings.default_project
    base = utcnow()
    ids = []
    for i in range(count):
        job_id = stored_job(sessions, project, status=("succeeded", "failed", "queued")[i % 3])
        created = base - timedelta(seconds=i // 2)  # pairs share created_at: the id breaks the tie
        with transaction(sessions) as session:
            session.execute(update(Job).where(Job.id == job_id).values(created_at=created))
        ids.append((created, job_id))
    return [job_id for _, job_id in sorted(ids, key=lambda pair: (pair[0], pair[1]), reverse=True)]


def walk(client, url: str) -> tuple[list[str], list[int]]:
    seen, offsets = [], []
    while url:
        page = client.get(url).json()
        seen += [job["id"] for job in page["items"]]
        offsets.append(page["offset"])
        url = page["next"]
    return seen, offsets


def test_keyset_pages_cover_every_job_once_newest_first(api_client) -> None:
    newest_first = seed(api_client, 23)
    seen, offsets = walk(api_client, "/jobs?limit=5")
    assert seen == newest_first
    assert offsets == [0, 5, 10, 15, 20]
    first = api_client.get("/jobs?limit=5").json()
    assert first["total"] == 23 and f"after={newest_first[4]}" in first["next"]

    failed = [j for j in newest_first if api_client.get(f"/jobs/{j}").json()["status"] == "failed"]
    seen, _ = walk(api_client, "/jobs?limit=3&status=failed")
    assert seen == failed

    skip = api_client.get(f"/jobs?limit=2&after={newest_first[3]}&offset=2").json()
    assert [j["id"] for j in skip["items"]] == newest_first[6:8] and skip["offset"] == 6


def test_an_unknown_cursor_is_a_404_naming_after(api_client) -> None:
    response = api_client.get("/jobs?after=no-such-job")
    assert response.status_code == 404 and response.json()["field"] == "after"


def test_dashboard_and_docs_are_served_outside_the_schema(embedded_client) -> None:
    root = embedded_client.get("/", follow_redirects=False)
    assert root.status_code == 307 and root.headers["location"] == "/dashboard"
    for path in ("/dashboard", "/dashboard/jobs/abc", "/dashboard/compare", "/docs", "/redoc"):
        page = embedded_client.get(path)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html"), path
        assert "https://" not in page.text and "cdn." not in page.text, path
    assets = ("/dashboard/static/job.js", "/dashboard/vendor/plotly.min.js")
    for asset in assets + ("/docs/assets/swagger-ui-bundle.js", "/docs/assets/redoc.standalone.js"):
        response = embedded_client.get(asset, headers={"Accept-Encoding": "gzip"})
        assert response.status_code == 200, asset
    assert embedded_client.get("/dashboard/vendor/plotly.min.js").headers["content-encoding"] == "gzip"
    paths = embedded_client.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p in ("/", "/docs", "/redoc") or p.startswith("/dashboard")]
