"""``taskgrouper jobs submit|list|status|logs|cancel|groupings``: a server's jobs from the command line
(options of :mod:`service.server_options`; the base install suffices).

    export TASKGROUPER_SERVER=http://host:8000 TASKGROUPER_API_KEY=tg_…
    taskgrouper jobs submit --dataset digits-attributes --epochs 5 --wait
    taskgrouper jobs list --status running
    taskgrouper jobs logs JOB_ID --follow
    taskgrouper jobs groupings JOB_ID --budgets 1:3:0.5 --json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from grouping.errors import InputError
from service.client import TERMINAL, TaskgrouperClient
from service.schemas import GroupingCurve, GroupingOut, JobLogEntry, JobOut, SolutionOut
from service.server_options import connect, emit, server_parent, to_jsonable

#: seconds between two polls of ``--wait`` and ``logs --follow``
POLL_SECONDS = 1.0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``jobs`` and its sub-commands."""
    jobs = subparsers.add_parser("jobs", help="submit, list, watch and cancel a server's jobs; read their "
                                 "logs and groupings (--server URL or $TASKGROUPER_SERVER)")
    sub = jobs.add_subparsers(dest="jobs_command", metavar="ACTION", required=True)
    parent = server_parent()

    submit = sub.add_parser("submit", parents=[parent], help="submit a job (prints it; --wait follows it)")
    submit.add_argument("--dataset", help="a built-in dataset name or an uploaded dataset's id")
    submit.add_argument("--spec", type=Path, metavar="JOB.json",
                        help="the whole request body as JSON (the options below override its fields)")
    submit.add_argument("--method", action="append", metavar="METHOD",
                        help="a method to run (repeat; default: the server's, tag_first_order)")
    submit.add_argument("--epochs", type=int, help="training epochs")
    submit.add_argument("--idempotency-key", help="retrying with the same key never creates a second job")
    submit.add_argument("--wait", action="store_true",
                        help="follow the job until it ends; exit 1 unless it succeeded")
    submit.set_defaults(handler=_submit)

    listing = sub.add_parser("list", parents=[parent], help="the project's jobs, newest first")
    listing.add_argument("--status", choices=("queued", "running", "succeeded", "failed", "cancelled"))
    listing.add_argument("--limit", type=int, default=20, help="jobs per page (1-500, default 20)")
    listing.add_argument("--offset", type=int, default=0)
    listing.set_defaults(handler=_list)

    status = sub.add_parser("status", parents=[parent], help="one job: status, progress, ETA, error")
    status.add_argument("job_id")
    status.set_defaults(handler=_status)

    logs = sub.add_parser("logs", parents=[parent],
                          help="a job's log (every attempt; a failure names its step)")
    logs.add_argument("job_id")
    logs.add_argument("--follow", action="store_true", help="keep printing new entries until the job ends")
    logs.set_defaults(handler=_logs)

    cancel = sub.add_parser("cancel", parents=[parent], help="ask a job to stop (a running one stops at its "
                            "next training step)")
    cancel.add_argument("job_id")
    cancel.set_defaults(handler=_cancel)

    groupings = sub.add_parser("groupings", parents=[parent], help="a finished job's optimal groupings")
    groupings.add_argument("job_id")
    which = groupings.add_mutually_exclusive_group()
    which.add_argument("--budget", type=float, help="one inference-cost budget (full-network units)")
    which.add_argument("--budgets", metavar="START:STOP:STEP",
                       help="a curve (default: the server's, from the cheapest covering to one "
                       "network per task)")
    groupings.add_argument("--method", help="the job's method whose table is solved (default: its first)")
    groupings.add_argument("--solver", help="the exact solver (default: the server's, auto)")
    groupings.add_argument("--singletons", choices=("forbid", "normalized"),
                           help="affinity tables: the singleton rule (default: the server's, forbid)")
    groupings.set_defaults(handler=_groupings)


def _submit(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {}
    if args.spec is not None:
        try:
            body = json.loads(args.spec.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError("--spec", f"cannot read {str(args.spec)!r} as JSON: {exc}") from None
        if not isinstance(body, dict):
            raise InputError("--spec", "must hold a JSON object (the request body of POST /jobs)")
    if args.dataset:
        body["dataset"] = args.dataset
    if args.method:
        body["methods"] = args.method
    if args.epochs is not None:
        body["training"] = {**(body.get("training") or {}), "epochs": args.epochs}
    if "dataset" not in body:
        raise InputError("--dataset", "required (or a --spec file with a dataset)")
    dataset = body.pop("dataset")
    with connect(args) as client:
        job = client.submit_job(dataset, idempotency_key=args.idempotency_key, **body)
        if not args.wait:
            emit(args, job, _describe(job))
            return 0
        if not args.json:
            print(f"submitted job {job.id}", file=sys.stderr)
        job = _follow(client, job.id, quiet=args.json)
    emit(args, job, _describe(job))
    return 0 if job.status == "succeeded" else 1


def _follow(client: TaskgrouperClient, job_id: str, *, quiet: bool) -> JobOut:
    """Poll the job until it ends, printing a progress line (stderr) whenever it changes."""
    shown = ""
    while True:
        job = client.job(job_id)
        line = f"{job.status} {_progress(job)}"
        if line != shown and not quiet:
            print(line, file=sys.stderr, flush=True)
            shown = line
        if job.status in TERMINAL:
            return job
        time.sleep(POLL_SECONDS)


def _list(args: argparse.Namespace) -> int:
    with connect(args) as client:
        page = client.jobs(status=args.status, limit=args.limit, offset=args.offset)
    rows = [(j.id, j.status, _progress(j), ",".join(j.methods), j.dataset,
             j.timings.created_at.strftime("%Y-%m-%d %H:%M:%S")) for j in page.items]
    shown = f"{page.offset + 1}-{page.offset + len(page.items)}" if page.items else "none"
    text = _table(("ID", "STATUS", "PROGRESS", "METHODS", "DATASET", "CREATED"), rows)
    emit(args, page, f"{text}\n({shown} of {page.total} jobs)" if rows else f"no jobs ({page.total} in all)")
    return 0


def _status(args: argparse.Namespace) -> int:
    with connect(args) as client:
        job = client.job(args.job_id)
    emit(args, job, _describe(job))
    return 0


def _logs(args: argparse.Namespace) -> int:
    with connect(args) as client:
        log = client.logs(args.job_id)
        if not args.follow:
            emit(args, log, "\n".join(_log_line(e) for e in log.entries) or "(no log entries yet)")
            return 0
        after = _print_entries(args, log.entries, None)
        while True:
            status = client.job(args.job_id).status
            log = client.logs(args.job_id, after=after)
            after = _print_entries(args, log.entries, after)
            if status in TERMINAL:
                return 0
            time.sleep(POLL_SECONDS)


def _print_entries(args: argparse.Namespace, entries: list[JobLogEntry], after: int | None) -> int | None:
    for entry in entries:
        print(json.dumps(to_jsonable(entry)) if args.json else _log_line(entry), flush=True)
    return entries[-1].id if entries else after


def _cancel(args: argparse.Namespace) -> int:
    with connect(args) as client:
        job = client.cancel(args.job_id)
    emit(args, job, _describe(job))
    return 0


def _groupings(args: argparse.Namespace) -> int:
    with connect(args) as client:
        options = {"method": args.method, "solver": args.solver, "singletons": args.singletons}
        if args.budget is not None:
            result: GroupingOut | GroupingCurve = client.groupings(args.job_id, args.budget, **options)
            curve: list[SolutionOut] = [result]
        else:
            result = client.grouping_curve(args.job_id, args.budgets, **options)
            curve = result.curve
    emit(args, result, "\n".join(_solution_line(s) for s in curve))
    return 0


# --- text output ----------------------------------------------------------------------------------


def _progress(job: JobOut) -> str:
    text = f"{100 * job.progress.fraction:.0f}%"
    if job.status == "running" and job.progress.eta_seconds is not None:
        text += f" (ETA {job.progress.eta_seconds:.0f} s)"
    return text


def _describe(job: JobOut) -> str:
    lines = [f"job {job.id}: {job.status}, {_progress(job)}",
             f"  dataset {job.dataset}, methods {', '.join(job.methods)}, attempts {job.attempts}"]
    if job.progress.epoch is not None:
        lines.append(f"  epoch {job.progress.epoch}, step {job.progress.step}/{job.progress.total_steps}")
    if job.timings.run_seconds is not None:
        lines.append(f"  ran {job.timings.run_seconds:.1f} s on {job.device or '?'}")
    if job.error is not None:
        field = f" (field {job.error.field})" if job.error.field else ""
        lines.append(f"  error{field}: {job.error.reason}")
    return "\n".join(lines)


def _log_line(entry: JobLogEntry) -> str:
    step = f" [{entry.step}]" if entry.step else ""
    when = entry.time.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{when} #{entry.attempt} {entry.level:<7}{step} {entry.message}"


def _solution_line(solution: SolutionOut) -> str:
    head = f"budget {solution.budget:g}: {solution.status}"
    if solution.objective is None:
        return head
    networks = "; ".join(
        f"{'+'.join(n.trains)} -> {'+'.join(n.serves)} ({n.size or 'full'}, cost {n.cost:g})"
        for n in solution.networks
    )
    trust = ""
    gain = solution.trust.gain if solution.trust is not None else None
    if gain is not None:
        trust = f", gain {gain.value:.4g} [{gain.low:.4g}, {gain.high:.4g}]"
        if solution.trust.win_rate is not None:
            trust += f", win rate {solution.trust.win_rate:.2f}"
    return f"{head}, objective {solution.objective:.6g}{trust}\n  {networks}"


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
                     for row in [header, *rows])
