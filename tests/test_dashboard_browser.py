"""The dashboard and the offline API docs in a real headless Chromium (Debian's ``chromium``, driven by
Playwright; no browser is downloaded), against a real ``taskgrouper serve``:

* embedded mode, a real job (two affinity methods, three epochs so that groupings carry trust) and
  an uploaded affinity run: the list shows both; the job's page draws the heatmap, trajectory and
  score-versus-budget curve with the job's task names and a grouping diagram that follows the budget
  slider (checked against the API's grouping at that budget); the comparison page shows both methods,
  and the job against the uploaded run; ``/docs`` and ``/redoc`` render with every request answered
  by the server itself (no CDN). Screenshots go to a temporary folder, or to the folder
  ``TASKGROUPER_SCREENSHOTS`` names (``bench/results`` refreshes the committed ones).
* server mode (PostgreSQL, Redis, API keys): the dashboard asks for a key, refuses a wrong one, and
  then shows that key's project's jobs only; a failed job's page shows its error and its log's entry
  naming the failing step.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from child_processes import Processes, free_port, running_in
from conftest import make_key, service_env, stored_job
from playwright import sync_api as playwright

from service.settings import Settings

pytestmark = [pytest.mark.slow]

CHROMIUM = os.environ.get("TASKGROUPER_CHROMIUM", "/usr/bin/chromium")
#: seconds a page may take to show what is waited for (a loaded 2-core machine, plotly.js is 4.8 MB)
PAGE_SECONDS = 90
JOB = {
    "dataset": "digits-attributes",
    "methods": ["tag_first_order", "tag"],
    "model": {"hidden_units": 16, "hidden_layers": 1, "representation": 8},
    "training": {"epochs": 3, "batch_size": 128},
}


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    yield from running_in(tmp_path)


@pytest.fixture
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the pages' screenshots go: ``TASKGROUPER_SCREENSHOTS`` if set, else a temporary folder
    (a test run does not rewrite the committed ones)."""
    chosen = os.environ.get("TASKGROUPER_SCREENSHOTS")
    return Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")


@pytest.fixture
def browser() -> Iterator:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install -y chromium (.ci/run does)")
    with playwright.sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def serve(processes: Processes, env: dict[str, str]) -> str:
    """Start ``taskgrouper serve`` with ``env`` on a free port; its base URL once it answers."""
    port = free_port()
    process = processes.start("serve", ["taskgrouper", "serve", "--port", str(port)], env=env)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert process.poll() is None, "taskgrouper serve exited"
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return base
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise AssertionError("taskgrouper serve did not answer within 180 s")


def new_page(browser, base: str, requests: list[str]) -> tuple:
    """A page recording into ``requests`` the URL of every request it makes, except those its
    Content-Security-Policy blocks (never sent); ``(page, uncaught script errors)``."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(PAGE_SECONDS * 1000)
    page.on("request", lambda request: requests.append(request.url))
    page.on("requestfailed", lambda r: "csp" in (r.failure or "").lower() and requests.remove(r.url))
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    return page, errors


def plot_text(page, selector: str) -> list[str]:
    """The tick labels plotly drew in ``selector`` (SVG text of both axes)."""
    return page.eval_on_selector_all(
        f"{selector} .xtick text, {selector} .ytick text", "els => els.map(e => e.textContent)"
    )


def diagram(page) -> list[list[list[str]]]:
    """The grouping diagram as ``[trains, serves]`` per network box."""
    return page.eval_on_selector_all(
        "#diagram .network",
        """boxes => boxes.map(b => [[...b.querySelectorAll('.chip')].map(c => c.dataset.task),
                                    [...b.querySelectorAll('.chip.serves')].map(c => c.dataset.task)])""",
    )


def networks_of(solution: dict) -> list[list[list[str]]]:
    return [[n["trains"], n["serves"]] for n in solution["networks"]]


def test_dashboard_embedded_job(browser, processes: Processes, tmp_path: Path, screenshots: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKGROUPER_")}
    env["TASKGROUPER_HOME"] = str(tmp_path / "home")
    base = serve(processes, env)
    api = httpx.Client(base_url=base, timeout=60)
    job = api.post("/jobs", json=JOB).raise_for_status().json()
    deadline = time.monotonic() + 600
    while (status := api.get(f"/jobs/{job['id']}").json()["status"]) in ("queued", "running"):
        assert time.monotonic() < deadline, "the job did not finish within 600 s"
        time.sleep(0.5)
    assert status == "succeeded", api.get(f"/jobs/{job['id']}").json()
    affinity = api.get(f"/jobs/{job['id']}/affinity").json()
    tasks = affinity["tasks"]
    tag = affinity["methods"]["tag"]
    uploaded = {"name": "my-cnn", "tasks": tasks, "matrices": {"tag": tag["onto_row_from_column"]},
                "trajectories": {"tag": tag["trajectory"]}, "metadata": {"model": "the user's own CNN"}}
    run = api.post("/affinity-runs", json=uploaded).raise_for_status().json()
    query = {"job_id": job["id"], "budgets": f"1:{len(tasks)}:0.5"}
    curve = api.get("/groupings", params=query).json()["curve"]
    feasible = [s for s in curve if s["networks"]]
    low, high = feasible[0], feasible[-1]
    assert networks_of(low) != networks_of(high), "the test needs two budgets with different groupings"

    requests: list[str] = []
    page, errors = new_page(browser, base, requests)
    page.goto(base + "/")
    assert page.url == base + "/dashboard"
    page.wait_for_selector(f"tr[data-job='{job['id']}']")
    assert "succeeded" in page.inner_text(f"tr[data-job='{job['id']}']")
    page.wait_for_selector(f"tr[data-run='{run['id']}']")
    page.screenshot(path=screenshots / "dashboard_jobs.png", full_page=True)

    page.click(f"tr[data-job='{job['id']}'] a")
    page.wait_for_selector("#diagram .network")
    page.wait_for_selector("#heatmap .xtick text")
    heat = plot_text(page, "#heatmap")
    assert sorted(set(heat)) == sorted(tasks) and len(heat) == 2 * len(tasks)
    colour_bar = page.eval_on_selector("#heatmap .colorbar", "el => el.textContent")
    assert "affinity onto row task" in colour_bar
    assert page.eval_on_selector("#heatmap", "el => el.data[0].z.every((row, i) => row[i] === null)")
    trajectory_names = page.eval_on_selector("#trajectory", "el => el.data.map(t => t.name)")
    assert trajectory_names == tasks
    curve_budgets = page.eval_on_selector("#curve", "el => el.data.find(t => t.mode === 'lines+markers').x")
    assert curve_budgets == [s["budget"] for s in feasible]
    assert page.eval_on_selector("#curve", "el => el.data.some(t => t.fill === 'tonexty')"), "no trust band"
    chips = {task for trains, _ in diagram(page) for task in trains}
    assert chips == set(tasks)

    page.fill("#budget", str(low["budget"]))
    assert diagram(page) == networks_of(low)
    page.fill("#budget", str(high["budget"]))
    assert diagram(page) == networks_of(high)
    page.fill("#budget", "2.5")
    assert diagram(page) == networks_of(next(s for s in curve if s["budget"] == 2.5))
    downloads = page.eval_on_selector_all("#downloads a", "links => links.map(a => a.download)")
    assert sum(name.endswith(".csv") for name in downloads) == 3 and len(downloads) == 6
    page.screenshot(path=screenshots / "dashboard_job.png", full_page=True)

    page.goto(f"{base}/dashboard/compare?a={job['id']}")
    page.wait_for_selector("#diagram-b .network")
    assert page.inner_text("#title-a").startswith(f"A: tag_first_order · job {job['id'][:8]}")
    assert page.inner_text("#title-b").startswith(f"B: tag · job {job['id'][:8]}")
    assert sorted(set(plot_text(page, "#heatmap-b"))) == sorted(tasks)

    page.goto(f"{base}/dashboard/runs/{run['id']}")  # the uploaded run's page, then against the job
    page.wait_for_selector("#diagram .network")
    assert sorted(set(plot_text(page, "#heatmap"))) == sorted(tasks)
    page.goto(f"{base}/dashboard/compare?a={job['id']}:tag_first_order&b={run['id']}:tag")
    page.wait_for_selector("#diagram-b .network")
    assert page.inner_text("#title-b") == "B: tag · uploaded run my-cnn"
    page.screenshot(path=screenshots / "dashboard_compare.png", full_page=True)

    page.goto(base + "/docs")
    page.wait_for_selector(".opblock-summary-path")
    assert "/jobs" in page.inner_text(".swagger-ui")
    page.screenshot(path=screenshots / "dashboard_docs.png")
    page.goto(base + "/redoc")
    page.locator("h2", has_text="Submit Job").first.wait_for()
    assert not errors, errors
    outside = [url for url in requests if not url.startswith(base) and not url.startswith(("data:", "blob:"))]
    assert not outside, f"requests leaving the server: {outside}"


def test_dashboard_asks_for_an_api_key(browser, processes: Processes, server_settings: Settings,
                                        screenshots: Path) -> None:
    from service.db import make_engine, make_session_factory, transaction
    from service.models import JobLogRecord

    project = server_settings.default_project
    engine = make_engine(server_settings.resolved_database_url, pool_size=1)
    sessions = make_session_factory(engine)
    mine = stored_job(sessions, project)
    theirs = stored_job(sessions, f"other-{uuid.uuid4().hex[:8]}")
    reason = "column 'nope' not found in the dataset"
    failed = stored_job(sessions, project, status="failed", attempts=1,
                        error={"field": "dataset.features", "reason": reason})
    with transaction(sessions) as session:
        message = f"job failed step=load_dataset field=dataset.features reason={reason}"
        session.add(JobLogRecord(job_id=failed, attempt=1, level="ERROR", step="load_dataset",
                                 message=message))
    engine.dispose()
    key = make_key(server_settings, project)
    base = serve(processes, service_env(server_settings))

    requests: list[str] = []
    page, errors = new_page(browser, base, requests)
    page.goto(base + "/dashboard")
    page.wait_for_selector("dialog#login[open]")
    page.fill("dialog#login input", "tg_aaaaaaaaaaaa_wrong")
    page.click("dialog#login button")
    page.wait_for_selector("dialog#login[open] >> text=refused")
    page.fill("dialog#login input", key)
    page.click("dialog#login button")
    page.wait_for_selector(f"tr[data-job='{mine}']")
    assert page.locator(f"tr[data-job='{theirs}']").count() == 0
    assert page.evaluate("sessionStorage.getItem('taskgrouper.apiKey')") == key
    page.goto(f"{base}/dashboard/jobs/{mine}")  # the key stays for this tab
    page.wait_for_selector("#head h1 .badge.succeeded")
    assert page.locator("dialog#login[open]").count() == 0

    page.goto(f"{base}/dashboard/jobs/{failed}")  # a failed job: its error and the log naming the step
    page.wait_for_selector("#log .ERROR")
    assert reason in page.inner_text("#head .error") and "dataset.features" in page.inner_text("#head .error")
    assert "[load_dataset]" in page.inner_text("#log .ERROR")
    page.screenshot(path=screenshots / "dashboard_failed_job.png", full_page=True)
    assert not errors, errors
