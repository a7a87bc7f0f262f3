"""``taskgrouper demo``: the main job on one machine, no servers.

The default job (:data:`service.schemas.DEFAULT_METHODS`: ``tag_first_order``, one affinity run of the
all-task network, its tables allowing half-size single-task networks) on a built-in dataset goes
through the same path as an API submission (job row in the embedded database → in-process executor →
:func:`worker.runner.run_job`), then the groupings at every default budget (1 to n in steps of 0.5:
a half-size network costs 0.5) are solved and stored, printed as a table — per budget the networks,
the predicted objective and how far to trust it: the predicted gain over one all-task network, its
interval and win rate over resamples of the estimate — and written to a Markdown report. Progress is
printed while the job runs (a bar on a terminal, a line per tenth otherwise).

An affinity method's trust report resamples the run's epochs, so the demo trains it for at least
:data:`service.groupings.MIN_TRUST_EPOCHS` epochs (:data:`DEMO_EPOCHS` by default; fewer are refused).
``--method warm_start`` runs the warm-start table instead.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select
from tqdm import tqdm

from grouping.data import BUILTIN_DATASETS
from grouping.errors import InputError
from grouping.problem import parse_problem
from grouping.selection.solvers import DEFAULT_SOLVER
from service.db import make_engine, make_session_factory
from service.executor import InProcessExecutor
from service.groupings import (
    EXPLICIT_SINGLETONS,
    MIN_TRUST_EPOCHS,
    GroupingKey,
    complete_epochs,
    job_groupings,
    table_budgets,
)
from service.jobs import cancel_job, create_job
from service.migrate import upgrade
from service.models import AffinityResult, Job, NetworkTable
from service.report import Heatmap, grouping_table, write_report
from service.schemas import DEFAULT_METHODS, JOB_METHODS, WARM_START, JobCreate
from service.settings import Settings

#: a surrogate network and schedule that finish in well under a minute on one CPU core
DEMO_MODEL = {"hidden_units": 128, "hidden_layers": 2}
#: epochs of the all-task network: at least MIN_TRUST_EPOCHS, and early stopping (patience 5) runs at
#: least 6 of them, so an affinity run's trajectory always has the complete epochs trust resamples
DEMO_EPOCHS = 10
#: what the trust intervals cover, printed under the table and in the report
TRUST_NOTE = (
    "Gain intervals are 95% intervals over bootstrap resamples of the estimate (the validation "
    "examples of a warm_start table, the epochs of an affinity run): they cover the noise of the "
    "estimate, not the bias of the method (see bench/results/grouping_quality.md)."
)


def run_demo(
    *,
    dataset: str = "digits-attributes",
    method: str | None = None,
    epochs: int | None = None,
    out: str | None = None,
    as_json: bool = False,
) -> int:
    """Run the demo with ``method`` (default: the default job's, :data:`DEFAULT_METHODS`) for
    ``epochs`` (default :data:`DEMO_EPOCHS`); returns the exit code (0 when the job succeeded and the
    report was written). ``InputError`` naming ``--dataset``, ``--method`` or ``--epochs`` before any
    training: an unknown dataset or method, fewer than 1 epoch, or fewer than
    :data:`~service.groupings.MIN_TRUST_EPOCHS` for an affinity method (its trust report resamples
    the run's epochs). ``as_json``: the text goes to standard error and standard output gets one JSON
    object — the job id, method, dataset, report folder and the groupings by budget."""
    method = DEFAULT_METHODS[0] if method is None else method
    if dataset not in BUILTIN_DATASETS:
        raise InputError("--dataset", f"choose a built-in dataset: {', '.join(sorted(BUILTIN_DATASETS))}")
    if method not in JOB_METHODS:
        raise InputError("--method", f"choose one of {', '.join(JOB_METHODS)}")
    if epochs is not None and epochs < 1:
        raise InputError("--epochs", f"must be a whole number >= 1, got {epochs}")
    if method != WARM_START and epochs is not None and epochs < MIN_TRUST_EPOCHS:
        raise InputError("--epochs", f"{method} needs at least {MIN_TRUST_EPOCHS} epochs: the trust "
                         f"report resamples the affinity run's epochs (got {epochs})")
    say = functools.partial(print, file=sys.stderr if as_json else sys.stdout)
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
    what = (
        "warm-start table (the all-task network, then a copy fine-tuned on each task subset)"
        if method == WARM_START
        else f"{method} affinity (one run of the all-task network; selections may use half-size "
        "single-task networks)"
    )
    say(
        f"job {job.id}: {what} on {dataset!r}, {request.training.epochs} epochs "
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

    rule = EXPLICIT_SINGLETONS if method == WARM_START else "forbid"
    with sessions() as session:
        table = session.scalar(
            select(NetworkTable.problem).where(
                NetworkTable.job_id == job.id, NetworkTable.method == method, NetworkTable.singletons == rule
            )
        )
        result = session.scalar(
            select(AffinityResult).where(AffinityResult.job_id == job.id, AffinityResult.method == method)
        )
    key = GroupingKey(job.id, method, DEFAULT_SOLVER, rule)
    curve = [
        (b, s)
        for b, s, _ in job_groupings(
            sessions, key, table_budgets(table), project=job.project, skip_infeasible=True
        )
    ]
    tasks = list(table["tasks"])
    facts: dict[str, Any] = {"job": job.id, "dataset": dataset, "tasks": ", ".join(tasks), "method": method}
    if method == WARM_START:
        meta = table.get("metadata", {})
        objective = "predicted total relative loss"
        note = (
            "Predicted total relative loss: the sum over tasks of each task's validation loss in the "
            "network serving it, relative to the task's single-task network (1.0 per task = as good as "
            "training it alone; lower is better)."
        )
        heatmap = _pair_heatmap(table)
        facts |= {
            "epochs": f"{meta.get('base_epochs')} (all-task network), then {meta.get('finetune_epochs')} "
            "per subset",
            "networks trained": meta.get("networks_trained"),
            "compute": f"{meta.get('mtl_runs', {}).get('total', float('nan')):.2f} all-task training runs",
        }
    else:
        objective = "predicted score"
        halves = bool(table.get("half_singletons"))
        alone = (
            "a task served alone by a half-size network (cost 0.5) scores 0"
            if halves
            else "no task is served alone"
        )
        note = (
            f"Predicted score: total affinity onto each task from the others in the network serving it "
            f"({method}; {alone}; higher is better)."
        )
        heatmap = Heatmap(
            values=result.matrix,
            title=f"{method} affinity",
            caption="Row *i*, column *j*: the affinity onto task *i* from task *j* (positive: a step on "
            "*j* lowers *i*'s loss).",
            file="affinity.png",
        )
        facts["epochs"] = result.meta.get("epochs")
        facts["half-size singletons"] = "allowed (cost 0.5)" if halves else "not allowed"
        facts["compute"] = "1 all-task training run"
    if method == WARM_START:
        say(
            f"trained {facts['networks trained']} networks ({facts['compute']} of compute) in "
            f"{job.run_seconds:.1f} s",
            flush=True,
        )
    else:
        say(
            f"trained the all-task network once ({facts['epochs']} epochs, "
            f"{result.meta.get('affinity_steps')} measured steps) in {job.run_seconds:.1f} s",
            flush=True,
        )
    say(f"\nOptimal groupings by budget. {note}\n")
    say(grouping_table(curve, objective))
    if any(solution.get("trust") for _, solution in curve):
        say(f"\n{TRUST_NOTE}")
    elif result is not None and complete_epochs(result.trajectory) < MIN_TRUST_EPOCHS:
        say(f"\nNo trust report: the affinity run has {complete_epochs(result.trajectory)} complete "
              f"epochs; resampling needs at least {MIN_TRUST_EPOCHS}.")
    facts |= {
        "device": job.device,
        "training time": f"{job.run_seconds:.1f} s",
        "database": settings.resolved_database_url,
        "API": f"GET /groupings?job_id={job.id}&budget=2 (taskgrouper serve)",
    }
    report = write_report(
        Path(out) if out else settings.reports_dir / job.id,
        title=f"taskgrouper demo — {dataset}",
        facts=facts,
        tasks=tasks,
        heatmap=heatmap,
        curve=curve,
        objective=objective,
        objective_note=f"{note} {TRUST_NOTE}",
        curve_file="objective_vs_budget.png" if method == WARM_START else "score_vs_budget.png",
    )
    engine.dispose()
    say(f"\nreport: {report}\n(total {time.monotonic() - started:.0f} s)")
    if as_json:
        groupings = [{"budget": budget, **solution} for budget, solution in curve]
        print(json.dumps({"job": job.id, "dataset": dataset, "method": method, "tasks": tasks,
                          "report": str(report), "groupings": groupings}, indent=2))
    return 0


def _pair_heatmap(table: dict[str, Any]) -> Heatmap:
    """Each task's relative validation loss in the network fine-tuned on it and one other task."""
    problem = parse_problem(table)
    index = {task: k for k, task in enumerate(problem.tasks)}
    values: list[list[float | None]] = [[None] * len(index) for _ in index]
    for net in problem.networks:
        if net.size == "full" and len(net.tasks) <= 2:
            first, last = net.tasks[0], net.tasks[-1]
            values[index[first]][index[last]] = net.values.get(first)
            values[index[last]][index[first]] = net.values.get(last)
    return Heatmap(
        values=values,
        title="relative loss in pairs (warm start)",
        caption="Row *i*, column *j*: task *i*'s validation loss in the network fine-tuned on *i* and *j*, "
        "relative to its single-task network (below 1: training with *j* helps *i*; the diagonal is 1).",
        file="pair_losses.png",
        center=1.0,
        low_is_good=True,
    )


def _follow(sessions: object, job_id: str) -> Job:
    """Poll the job row until it ends: a progress bar on a terminal, else a line per tenth of progress
    (on standard error)."""
    tty = sys.stderr.isatty()
    printed = -1
    with tqdm(
        total=100,
        unit="%",
        bar_format="{l_bar}{bar}| {n:.0f}% [{elapsed}<{remaining}{postfix}]",
        disable=not tty,
        file=sys.stderr,
    ) as bar:
        while True:
            with sessions() as session:  # type: ignore[operator]
                job = session.get(Job, job_id)
            bar.n = round(100 * job.progress_fraction, 1)
            if job.epoch:
                bar.set_postfix_str(f"epoch {job.epoch}, step {job.step}/{job.total_steps}", refresh=False)
            bar.refresh()
            tenth = int(10 * job.progress_fraction + 1e-9)
            if not tty and job.status == "running" and tenth > printed:
                printed = tenth
                steps = f", step {job.step}/{job.total_steps}" if job.total_steps else ""
                eta = f", about {job.eta_seconds:.0f} s left" if job.eta_seconds is not None else ""
                print(f"progress {10 * tenth}%{steps}{eta}", file=sys.stderr, flush=True)
            if job.status in ("succeeded", "failed", "cancelled"):
                return job
            time.sleep(0.25)
