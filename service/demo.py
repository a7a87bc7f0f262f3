"""``taskgrouper demo``: the main job on one machine, no servers.

An affinity job on a built-in dataset goes through the same path as an API submission (job row in
the embedded database → in-process executor → :func:`worker.runner.run_job`), then the groupings
at every budget are solved and stored, printed as a table and written to a Markdown report.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from sqlalchemy import select
from tqdm import tqdm

from grouping.data import BUILTIN_DATASETS
from grouping.errors import InputError
from service.db import make_engine, make_session_factory
from service.executor import InProcessExecutor
from service.groupings import GroupingKey, default_budgets, job_groupings
from service.jobs import cancel_job, create_job
from service.migrate import upgrade
from service.models import AffinityResult, Job
from service.report import grouping_table, write_report
from service.schemas import JobCreate
from service.settings import Settings

#: a surrogate network and schedule that finish in well under a minute on one CPU core
DEMO_MODEL = {"hidden_units": 128, "hidden_layers": 2}
DEMO_EPOCHS = 10


def run_demo(
    *,
    dataset: str = "digits-attributes",
    method: str = "tag",
    epochs: int | None = None,
    out: str | None = None,
) -> int:
    """Run the demo; returns the exit code (0 when the job succeeded and the report was written)."""
    if dataset not in BUILTIN_DATASETS:
        raise InputError("--dataset", f"choose a built-in dataset: {', '.join(sorted(BUILTIN_DATASETS))}")
    settings = Settings(broker_url=None)
    request = JobCreate.model_validate(
        {
            "dataset": dataset,
            "methods": [method],
            "model": DEMO_MODEL,
            "training": {"epochs": epochs or DEMO_EPOCHS},
        }
    )
    started = time.monotonic()
    upgrade(settings.resolved_database_url)
    engine = make_engine(settings.resolved_database_url)
    sessions = make_session_factory(engine)
    executor = InProcessExecutor(settings, sessions)
    job, _ = create_job(sessions, request, project=settings.default_project)
    print(
        f"job {job.id}: {method} affinity on {dataset!r}, {request.training.epochs} epochs "
        f"(database {settings.resolved_database_url})",
        flush=True,
    )
    try:
        executor.submit(job.id)
        job = _follow(sessions, job.id)
    except KeyboardInterrupt:
        cancel_job(sessions, job.id, settings.default_project)
        raise
    finally:
        executor.close()
    if job.status != "succeeded":
        reason = job.error["reason"] if job.error else job.status
        print(f"taskgrouper demo: job {job.status}: {reason}", file=sys.stderr)
        return 1

    with sessions() as session:
        result = session.scalar(
            select(AffinityResult).where(AffinityResult.job_id == job.id, AffinityResult.method == method)
        )
    key = GroupingKey(job.id, method, "bip", "forbid")
    curve = [
        (b, s)
        for b, s, _ in job_groupings(
            sessions, key, default_budgets(len(result.tasks)), project=job.project, skip_infeasible=True
        )
    ]
    print(
        f"\nOptimal groupings (predicted score = total affinity onto each task from the others in "
        f"the network "
        f"serving it; {method}, singletons forbidden):\n"
    )
    print(grouping_table(curve))
    facts = {
        "job": job.id,
        "dataset": dataset,
        "tasks": ", ".join(result.tasks),
        "method": method,
        "epochs": result.meta.get("epochs"),
        "device": job.device,
        "training time": f"{job.run_seconds:.1f} s",
        "database": settings.resolved_database_url,
        "API": f"GET /groupings?job_id={job.id}&budget=2 (taskgrouper serve)",
    }
    report = write_report(
        Path(out) if out else settings.reports_dir / job.id,
        title=f"taskgrouper demo — {dataset}",
        facts=facts,
        tasks=result.tasks,
        matrix=result.matrix,
        method=method,
        curve=curve,
    )
    engine.dispose()
    print(f"\nreport: {report}\n(total {time.monotonic() - started:.0f} s)")
    return 0


def _follow(sessions: object, job_id: str) -> Job:
    """Poll the job row until it ends, drawing a progress bar on a terminal."""
    with tqdm(
        total=100,
        unit="%",
        bar_format="{l_bar}{bar}| {n:.0f}% [{elapsed}<{remaining}{postfix}]",
        disable=not sys.stderr.isatty(),
        file=sys.stderr,
    ) as bar:
        while True:
            with sessions() as session:  # type: ignore[operator]
                job = session.get(Job, job_id)
            bar.n = round(100 * job.progress_fraction, 1)
            if job.epoch:
                bar.set_postfix_str(f"epoch {job.epoch}, step {job.step}/{job.total_steps}", refresh=False)
            bar.refresh()
            if job.status in ("succeeded", "failed", "cancelled"):
                return job
            time.sleep(0.25)
