"""The job runner: executes one job from its row to its results. One function for both the
Celery task (``worker.tasks``) and the embedded in-process executor (``service.executor``).

A job runs its methods: the affinity methods together in one affinity run
(:func:`grouping.affinity.compute_affinity`; per method an affinity row and a network table per
singleton rule, each allowing half-size single-task networks, see :func:`_write_results`), then
``warm_start`` (:func:`grouping.tables.warm_start_table` with the job's model, training and
``warm_start`` options; its candidates always include every single task and the all-task set, see
:func:`service.limits.warm_start_plan`). The warm-start table is stored as the explicit
``min_loss`` problem of its validation losses with ``"normalize": "stl"`` and singletons ``"none"``,
its bootstrap draws under ``metadata.val_draws`` (what the groupings' trust reports are computed
from). Progress is one fraction over both parts, weighted by their planned training compute; the
warm-start part reports per network trained and every few steps of each, and a cancel or stop is
honoured before every step. A warm-start part interrupted by a stop is trained anew by the next
attempt (only affinity runs checkpoint their epochs).

Contract of :func:`run_job`:

* the job row is the source of truth; the runner *claims* it with a conditional update: a
  ``queued`` row, or a ``running`` row whose heartbeat is older than ``stale_after`` (its worker
  died; a duplicate message for a job another worker is running finds a fresh heartbeat and does
  nothing). A job in a terminal state is never run again. Each claim increments ``attempts``,
  the attempt's fencing token: every later write of the attempt only applies while the row still
  carries it (see :class:`worker.progress.JobProgress`);
* the claim reads the epoch the job's checkpoint reached (``resumed_from_epoch``) and appends an
  entry to ``history`` (attempt, worker, time, epoch resumed from; later its first step and outcome);
* a heartbeat thread refreshes ``heartbeat_at`` every ``heartbeat_interval`` seconds; progress is
  written at most once per ``progress_interval``; cancellation is read at the same pace and stops
  training at the next step;
* results are written in the same transaction that marks the job ``succeeded`` — only if the attempt
  still owns the job and no cancel was asked — replacing any rows of an earlier attempt, so readers
  never see half a result, a rerun never duplicates one and a cancelled job publishes nothing;
* results, trajectories and metadata are stored as standard JSON (:func:`service.jsonsafe.json_safe`:
  a NaN, e.g. the trajectory point of an epoch with no measured step, becomes ``null``). Should the
  results still fail to be written (after one retry when the database connection failed), the job
  ends ``failed`` with the reason instead of staying ``running``;
* bad input (an ``InputError``, or a stored request that no longer validates) ends the job
  ``failed`` with ``error = {field, reason}``; an unexpected exception ends it ``failed`` with the
  exception's type and message (the traceback goes to the log). Either way one structured log line
  names the job, the field and the reason (:func:`log_job_failure`);
* the attempt cap: a job that lost its previous attempt (a ``running`` row with a stale heartbeat,
  or a ``queued`` row whose last attempt recorded no outcome, as an embedded restart leaves it)
  and was already claimed ``max_attempts`` times is set ``failed`` instead of being claimed
  (:func:`worker.reaper.attempts_exhausted`, the rule the reaper applies too);
* a process stop (``stop`` set: the worker got SIGTERM, or the API is shutting down) ends the
  current step and puts the job back to ``queued`` (status ``"queued"`` is returned so the caller
  can requeue its message); the epoch checkpoints in ``checkpoint_dir`` let the next attempt resume
  from the last finished epoch.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import shutil
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError
from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import OperationalError, StatementError
from sqlalchemy.orm import Session, sessionmaker

from grouping.affinity import AffinityRun, compute_affinity
from grouping.data import Dataset as LoadedDataset
from grouping.data import DatasetSpec, load_dataset
from grouping.errors import InputError
from grouping.tables import NetworkTable as WarmStartTable
from grouping.tables import candidate_subsets, warm_start_table
from grouping.training import Cancelled, Progress
from grouping.training.checkpoint import FILENAME as CHECKPOINT_FILENAME
from grouping.training.loop import resolve_device
from service.affinity_runs import affinity_tables
from service.db import transaction
from service.errors import field_path
from service.groupings import EXPLICIT_SINGLETONS
from service.jsonsafe import json_safe
from service.limits import warm_start_plan
from service.locations import allowed_location
from service.logs import job_context
from service.models import AffinityResult, Dataset, Grouping, Job, NetworkTable, utcnow
from service.schemas import WARM_START, JobCreate
from service.settings import Settings, get_settings
from worker.heartbeat import Heartbeat
from worker.job_log import JobLog
from worker.progress import JobProgress
from worker.reaper import attempts_exhausted, exhausted_error

log = logging.getLogger(__name__)

@dataclass
class JobResults:
    """What a job's methods produced: the affinity run (affinity methods) and the warm-start table."""

    affinity: AffinityRun | None = None
    table: WarmStartTable | None = None
    device: str | None = None


def run_job(
    job_id: str,
    session_factory: sessionmaker[Session],
    *,
    settings: Settings | None = None,
    worker: str | None = None,
    stop: threading.Event | None = None,
) -> str:
    """Run job ``job_id`` to a final state and return its status (see the module docstring)."""
    settings = settings or get_settings()
    job = _claim(job_id, session_factory, settings, worker or socket.gethostname())
    if job is None:
        with session_factory() as session:
            return session.scalar(select(Job.status).where(Job.id == job_id)) or "missing"
    attempt = job.attempts
    with JobLog(job_id, attempt, session_factory, limit=settings.job_log_entries) as job_log:
        resumed = f", resuming after epoch {job.resumed_from_epoch}" if job.resumed_from_epoch else ""
        with job_context(step="claim"):
            job_log.write(logging.INFO, "attempt %d claimed by %s%s", attempt, job.worker, resumed)
        status = _run_claimed(job, session_factory, settings, job_log, stop)
        job_log.write(logging.INFO, "attempt %d ended: %s", attempt, status, outcome=status)
        return status


def _run_claimed(
    job: Job,
    session_factory: sessionmaker[Session],
    settings: Settings,
    job_log: JobLog,
    stop: threading.Event | None,
) -> str:
    """Run a claimed job's steps (each logged in ``job_log``) and finish it; its final status."""
    job_id, attempt = job.id, job.attempts
    progress = JobProgress(
        job_id,
        session_factory,
        attempt=attempt,
        interval=settings.progress_interval,
        stop=stop,
        start_fraction=0.0 if job.resumed_from_epoch is None else None,
    )
    finish = _Finisher(job_id, attempt, session_factory)
    with Heartbeat(progress.beat, settings.heartbeat_interval):
        try:
            with job_log.step("validate_request"):
                request = JobCreate.model_validate(job.spec)
            with job_log.step("load_dataset"):
                spec = dataset_spec(request, job, session_factory, settings)
                dataset = load_dataset(spec)
            plan = None
            if request.warm_start is not None:  # checked before any training
                with job_log.step("plan_warm_start"):
                    plan = warm_start_plan(dataset.task_names, request.warm_start, settings)
            parts = _parts(request, dataset, plan, job_log.epochs(progress.report))
            results = JobResults()
            if request.affinity_methods:
                with job_log.step("affinity"):
                    results.affinity = compute_affinity(
                        dataset,
                        request.affinity_methods,
                        request.model,
                        request.training,
                        progress=parts.pop(0),
                        should_cancel=progress.should_cancel,
                        checkpoint_dir=Path(job.checkpoint_dir or settings.checkpoints_dir / job_id),
                    )
                results.device = str(results.affinity.metadata.get("device") or "") or None
            if request.warm_start is not None and plan is not None:
                subsets, extra = plan
                options = request.warm_start
                with job_log.step("warm_start"):
                    results.table = warm_start_table(
                        spec,
                        request.model,
                        request.training,
                        finetune_epochs=options.finetune_epochs,
                        subsets=subsets,
                        extra_subsets=extra,
                        half_singletons=options.half_singletons,
                        val_draws=options.val_draws,
                        workers=1,
                        progress=parts.pop(0),
                        should_cancel=progress.should_cancel,
                    )
                results.table.metadata["dataset"] = request.dataset  # not the server's file path
                results.device = results.device or str(resolve_device(request.training.device))
        except Cancelled:
            if progress.lost:
                job_log.write(logging.WARNING, "attempt %d superseded: the job was given to another attempt",
                              attempt)
                return "superseded"
            if not progress.cancel_requested:
                job_log.write(logging.INFO, "stopping: the process is shutting down; the job is requeued")
                return finish.requeue()
            job_log.write(logging.INFO, "cancelled at the user's request")
            return finish("cancelled")
        except InputError as exc:
            error = {"field": exc.field, "reason": exc.reason}
            log_job_failure(job_log, error)
            return finish("failed", error=error)
        except ValidationError as exc:  # a request stored before a validation rule tightened
            first = exc.errors()[0] if exc.errors() else {}
            error = {"field": field_path(first.get("loc", ())), "reason": str(first.get("msg", exc))}
            log_job_failure(job_log, error)
            return finish("failed", error=error)
        except Exception as exc:
            error = {"field": None, "reason": f"internal error: {type(exc).__name__}: {exc}"}
            log_job_failure(job_log, error, exc_info=True)
            return finish("failed", error=error)
        with job_log.step("store_results"):
            status = finish("succeeded", run=results)
        if status == "failed":
            log_job_failure(job_log, finish.error or {"reason": "the results could not be stored"})
        return status


def _parts(
    request: JobCreate,
    dataset: LoadedDataset,
    plan: tuple[list[list[str]] | None, list[list[str]]] | None,
    report: Callable[[Progress], None],
) -> list[Callable[[Progress], None]]:
    """One progress callback per part of the job (the affinity run, then the warm-start table), each
    mapping its part's fraction onto the job's: parts weigh their planned training compute in
    all-task runs (an affinity run 1; a warm-start table its base runs plus its fine-tuning steps)."""
    weights: list[float] = []
    if request.affinity_methods:
        weights.append(1.0)
    options = request.warm_start
    if options is not None and plan is not None:
        steps_per_epoch = max(1, math.ceil(len(dataset.train) / request.training.batch_size))
        run = steps_per_epoch * request.training.epochs
        finetune = math.floor(options.finetune_epochs * steps_per_epoch + 0.5) / run
        tasks = dataset.task_names
        n_subsets = len(candidate_subsets(tasks, *plan))
        halves = 0.5 * (1 + len(tasks) * finetune) if options.half_singletons else 0.0
        weights.append(1.0 + n_subsets * finetune + halves)
    total = sum(weights) or 1.0
    callbacks = []
    start = 0.0
    for weight in weights:
        callbacks.append(_scaled(report, start / total, weight / total))
        start += weight
    return callbacks


def _scaled(report: Callable[[Progress], None], start: float, width: float) -> Callable[[Progress], None]:
    """``report`` of a part spanning ``[start, start + width]`` of the job's progress."""

    last = start + width >= 1.0 - 1e-9

    def scaled(progress: Progress) -> None:
        done = last and progress.fraction >= 1.0  # the job's last report: exactly 1
        fraction = 1.0 if done else min(start + width * progress.fraction, 1.0)
        report(dataclasses.replace(progress, fraction=fraction))

    return scaled


def log_job_failure(job_log: JobLog, error: dict[str, Any], *, exc_info: bool = False) -> None:
    """Log a job that failed, as one line of ``key=value`` pairs —
    ``job failed job_id=<id> step=<step> field=<field> reason="<reason>"`` (the reason JSON-quoted, so
    the line stays one line; ``step``: the step that failed) — with ``job_id``, ``step``, ``field`` and
    ``reason`` also set as attributes of the record for structured handlers; stored in the job's log.
    With ``exc_info`` the traceback follows."""
    field, reason = error.get("field"), str(error.get("reason", ""))
    step = job_log.failed_step or "-"
    with job_context(step=job_log.failed_step):
        job_log.write(
            logging.WARNING,
            "job failed job_id=%s step=%s field=%s reason=%s",
            job_log.job_id,
            step,
            field or "-",
            json.dumps(reason, ensure_ascii=False),
            exc_info=exc_info,
            field=field,
            reason=reason,
            failed_step=job_log.failed_step,
        )


def dataset_spec(
    request: JobCreate, job: Job, session_factory: sessionmaker[Session], settings: Settings
) -> DatasetSpec:
    """The library's dataset spec for a job: a built-in name, or the stored file of a registered
    dataset — which must still lie in the upload folder or a configured dataset root."""
    source = request.dataset
    if job.dataset_id is not None:
        with session_factory() as session:
            row = session.get(Dataset, job.dataset_id)
            if row is None:
                raise InputError("dataset", f"dataset {job.dataset_id} no longer exists")
            roots = [settings.datasets_dir, *settings.dataset_roots]
            source = str(allowed_location(row.path, roots, field="dataset"))
    return DatasetSpec(source=source, features=request.features, tasks=request.tasks, split=request.split)


def _claim(
    job_id: str, session_factory: sessionmaker[Session], settings: Settings, worker: str
) -> Job | None:
    """The job, claimed for this attempt (see the module docstring), or ``None`` when it is not to
    run: missing, finished, claimed by another worker, over the attempt cap (set ``failed``), or
    asked to cancel — then set ``cancelled`` and its checkpoint folder (an earlier attempt's epochs)
    removed once that commits."""
    cancelled = _cancel_at_claim(job_id, session_factory, settings)
    if cancelled is not None:
        shutil.rmtree(cancelled, ignore_errors=True)
        return None
    now = utcnow()
    with transaction(session_factory) as session:
        job = session.get(Job, job_id)
        if job is None or job.status not in ("queued", "running"):
            return None
        stale = now - timedelta(seconds=settings.stale_after)
        claimable = (
            Job.id == job_id,
            Job.attempts == job.attempts,
            or_(
                Job.status == "queued",
                (Job.status == "running") & or_(Job.heartbeat_at.is_(None), Job.heartbeat_at < stale),
            ),
        )
        if _lost_last_attempt(job, stale) and attempts_exhausted(job.attempts, settings):
            failed = session.execute(
                update(Job)
                .where(*claimable)
                .values(
                    status="failed",
                    error=exhausted_error(job.attempts, settings),
                    finished_at=now,
                    eta_seconds=None,
                    history=_outcome(job.history, "lost"),
                )
            ).rowcount
            if failed:
                log.warning("job %s failed: lost on %d attempts", job_id, job.attempts)
                if job.checkpoint_dir:
                    shutil.rmtree(job.checkpoint_dir, ignore_errors=True)
            return None
        checkpoint_dir = job.checkpoint_dir or str(settings.checkpoints_dir / job_id)
        resumed = checkpoint_epoch(Path(checkpoint_dir))
        entry = {"attempt": job.attempts + 1, "worker": worker, "claimed_at": now.isoformat()}
        claimed = session.execute(
            update(Job)
            .where(*claimable)
            .values(
                status="running",
                worker=worker,
                attempts=job.attempts + 1,
                heartbeat_at=now,
                started_at=job.started_at or now,
                checkpoint_dir=checkpoint_dir,
                resumed_from_epoch=resumed,
                history=[*(job.history or []), {**entry, "resumed_from_epoch": resumed}],
            )
        ).rowcount
        if not claimed:
            return None
        session.refresh(job)
        return job


def _cancel_at_claim(
    job_id: str, session_factory: sessionmaker[Session], settings: Settings
) -> Path | None:
    """Set a job that was asked to cancel and that this worker could claim (``queued``, or ``running``
    with a heartbeat older than ``stale_after``: its worker is gone) ``cancelled``, conditionally on
    the row being unchanged; its checkpoint folder when it did, for the caller to remove, else
    ``None``. A job another worker is running with a fresh heartbeat is left to that worker, which
    reads the cancel at its next step (and removes the folder itself)."""
    now = utcnow()
    stale = now - timedelta(seconds=settings.stale_after)
    with transaction(session_factory) as session:
        job = session.get(Job, job_id)
        if job is None or job.status not in ("queued", "running") or not job.cancel_requested:
            return None
        done = session.execute(
            update(Job)
            .where(
                Job.id == job_id,
                Job.attempts == job.attempts,
                Job.cancel_requested.is_(True),
                or_(
                    Job.status == "queued",
                    (Job.status == "running") & or_(Job.heartbeat_at.is_(None), Job.heartbeat_at < stale),
                ),
            )
            .values(status="cancelled", finished_at=now, eta_seconds=None)
        ).rowcount
        folder = Path(job.checkpoint_dir or settings.checkpoints_dir / job_id)
    return folder if done else None


def _lost_last_attempt(job: Job, stale: datetime) -> bool:
    """Whether the job's last attempt was lost: it still looks ``running`` with a heartbeat older
    than ``stale``, or it is ``queued`` but that attempt ended without recording an outcome."""
    if job.attempts == 0:
        return False
    if job.status == "running":
        return job.heartbeat_at is None or job.heartbeat_at < stale
    last = (job.history or [{}])[-1]
    return job.status == "queued" and "outcome" not in last


def checkpoint_epoch(directory: Path) -> int | None:
    """The number of epochs the checkpoint in ``directory`` has finished (``None``: no checkpoint, or
    an unreadable one — the library then reports it). Memory-mapped: the weights are not read."""
    path = directory / CHECKPOINT_FILENAME
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return int(state["state"]["epoch"])
    except Exception:
        return None


class _Finisher:
    """The end of one attempt: every write is fenced by the attempt number (see the module docstring)."""

    def __init__(self, job_id: str, attempt: int, session_factory: sessionmaker[Session]) -> None:
        self.job_id = job_id
        self.attempt = attempt
        self.session_factory = session_factory
        #: the error the job was failed with when its results could not be stored
        self.error: dict[str, Any] | None = None

    def _owned(self, session: Session) -> Job | None:
        job = session.get(Job, self.job_id, with_for_update=True, populate_existing=True)
        if job is None or job.attempts != self.attempt or job.status != "running":
            return None
        return job

    def __call__(self, status: str, error: dict[str, Any] | None = None, run: Any = None) -> str:
        """Move the job to its final ``status``; with ``run``, write its results in the same
        transaction — unless a cancel was asked meanwhile, which makes the job ``cancelled``.

        If the results cannot be written (once more when the database connection failed), the job
        ends ``failed`` with the reason rather than staying ``running``; only when even that write
        fails does the exception propagate (the reaper then finds the job without a heartbeat)."""
        if run is None:
            return self._finish(status, error)
        try:
            try:
                return self._finish(status, error, run)
            except OperationalError:
                log.warning("job %s: results not written, retrying once", self.job_id, exc_info=True)
                return self._finish(status, error, run)
        except Exception as exc:
            log.exception("job %s: results could not be stored", self.job_id)
            self.error = {"field": None, "reason": f"the results could not be stored: {_describe(exc)}"}
            return self._finish("failed", self.error)

    def _finish(self, status: str, error: dict[str, Any] | None, run: Any = None) -> str:
        with transaction(self.session_factory) as session:
            job = self._owned(session)
            if job is None:
                return "superseded"
            if run is not None and job.cancel_requested:
                status, run = "cancelled", None
            if run is not None:
                _write_results(session, self.job_id, run)
                job.device = run.device or job.device
                job.progress_fraction = 1.0
            now = utcnow()
            job.status, job.error, job.finished_at, job.eta_seconds = status, error, now, None
            job.run_seconds = (now - job.started_at).total_seconds() if job.started_at else None
            job.history = _outcome(job.history, status)
            checkpoint_dir = job.checkpoint_dir
        if checkpoint_dir:
            shutil.rmtree(checkpoint_dir, ignore_errors=True)
        return status

    def requeue(self) -> str:
        """Back to ``queued`` (the process is stopping); the checkpoint stays for the next attempt."""
        with transaction(self.session_factory) as session:
            job = self._owned(session)
            if job is None:
                return "superseded"
            job.status, job.eta_seconds, job.enqueued_at = "queued", None, utcnow()
            job.history = _outcome(job.history, "requeued")
        return "queued"


def _outcome(history: list[Any] | None, outcome: str) -> list[Any]:
    """``history`` with ``outcome`` recorded on its last (this attempt's) entry."""
    if not history:
        return [{"outcome": outcome}]
    return [*history[:-1], {**history[-1], "outcome": outcome}]


def _write_results(session: Session, job_id: str, results: JobResults) -> None:
    """Replace the job's affinity rows and network tables, dropping groupings solved from an earlier
    attempt's tables (idempotent across attempts). Every document is :func:`json_safe` (NaN → null).

    An affinity network table is stored per singleton rule the matrix admits
    (:func:`service.affinity_runs.affinity_tables`: ``normalized`` needs positive self-affinities);
    the tables differ only in their ``singletons`` key. Each carries ``"half_singletons": true``
    (:data:`service.affinity_runs.HALF_SINGLETONS`): ``GET /groupings`` solves it with half-size
    single-task networks as candidates and its default budgets step by 0.5. Tables stored before
    this default keep what they were stored with (no ``half_singletons`` key: no halves), and so do
    the groupings solved from them. The warm-start table is stored once, singletons
    :data:`EXPLICIT_SINGLETONS` (see the module docstring).
    """
    session.execute(delete(AffinityResult).where(AffinityResult.job_id == job_id))
    session.execute(delete(NetworkTable).where(NetworkTable.job_id == job_id))
    session.execute(delete(Grouping).where(Grouping.job_id == job_id))
    if results.table is not None:
        problem = json_safe(results.table.problem_document("val", normalize="stl"))
        session.add(
            NetworkTable(job_id=job_id, method=WARM_START, singletons=EXPLICIT_SINGLETONS, problem=problem)
        )
    run = results.affinity
    if run is None:
        return
    for method, matrix in run.matrices.items():
        session.add(
            AffinityResult(
                job_id=job_id,
                method=method,
                tasks=list(run.tasks),
                matrix=json_safe(matrix),
                trajectory=json_safe(list(run.trajectories.get(method, []))),
                meta=json_safe({**run.metadata, "method": method}),
            )
        )
        for rule, problem in affinity_tables(run, method).items():
            session.add(NetworkTable(job_id=job_id, method=method, singletons=rule, problem=problem))


def _describe(exc: BaseException, limit: int = 500) -> str:
    """``Type: message`` of an exception, for a job's error: a database error is described by the
    driver's first line (SQLAlchemy's own text repeats the statement and its parameters)."""
    cause = exc.orig if isinstance(exc, StatementError) and exc.orig is not None else exc
    lines = str(cause).strip().splitlines()
    text = f"{type(cause).__name__}: {lines[0] if lines else ''}"
    return text if len(text) <= limit else text[: limit - 1] + "…"
