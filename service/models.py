"""The persisted state: SQLAlchemy 2 models (schema changes go through ``migrations/``).

The job row is the source of truth for a job; queue messages carry only its id. Results are
keyed so that writing them twice is harmless (``uq_*`` constraints): affinity per (job, method),
network tables per (job, method, singletons), groupings per (job, method, solver, singletons,
budget) — or, for an affinity run measured elsewhere and uploaded (``affinity_runs``), per (run,
method, solver, singletons, budget): a grouping belongs to exactly one job or one run. Every owned
row carries ``project`` so that tenants can be isolated; an API key belongs to one project and is
stored as the SHA-256 of its secret only.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: JSON documents: JSONB on PostgreSQL, JSON (text) elsewhere
JSONDocument = JSON().with_variant(JSONB(), "postgresql")

JOB_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend (SQLite drops the zone; this restores it)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime")
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def utcnow() -> datetime:
    """Now, timezone-aware UTC."""
    return datetime.now(UTC)


def new_id() -> str:
    """A new random resource id."""
    return str(uuid.uuid4())


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSONDocument, list[Any]: JSONDocument, datetime: UTCDateTime}


class Dataset(Base):
    """An uploaded table (Parquet, CSV or NPZ) stored under ``TASKGROUPER_HOME/datasets``."""

    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    project: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(255))
    format: Mapped[str] = mapped_column(String(16))
    path: Mapped[str] = mapped_column(Text)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    n_rows: Mapped[int] = mapped_column(Integer)
    columns: Mapped[list[Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Job(Base):
    """A run of the job's methods (warm-start table, affinity methods): its request, lifecycle,
    progress and timings."""

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("project", "idempotency_key", name="uq_jobs_project_idempotency_key"),
        # the job list's keyset pages, newest first, with and without a status (service.jobs.list_jobs)
        Index("ix_jobs_project_created_id", "project", "created_at", "id"),
        Index("ix_jobs_project_status_created_id", "project", "status", "created_at", "id"),
        Index("ix_jobs_status_heartbeat", "status", "heartbeat_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    project: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    spec: Mapped[dict[str, Any]] = mapped_column()
    spec_hash: Mapped[str] = mapped_column(String(64))
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    dataset_id: Mapped[str | None] = mapped_column(ForeignKey("datasets.id", ondelete="RESTRICT"))
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    progress_fraction: Mapped[float] = mapped_column(Float, default=0.0)
    epoch: Mapped[int | None] = mapped_column(Integer)
    step: Mapped[int | None] = mapped_column(Integer)
    total_steps: Mapped[int | None] = mapped_column(Integer)
    eta_seconds: Mapped[float | None] = mapped_column(Float)
    losses: Mapped[dict[str, Any] | None] = mapped_column()
    device: Mapped[str | None] = mapped_column(String(64))
    worker: Mapped[str | None] = mapped_column(String(255))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    checkpoint_dir: Mapped[str | None] = mapped_column(Text)
    resumed_from_epoch: Mapped[int | None] = mapped_column(Integer)
    history: Mapped[list[Any] | None] = mapped_column()
    error: Mapped[dict[str, Any] | None] = mapped_column()
    run_seconds: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column()
    heartbeat_at: Mapped[datetime | None] = mapped_column()
    enqueued_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()


class AffinityResult(Base):
    """One method's affinity matrix of a job (``onto_row_from_column``) and its per-epoch trajectory."""

    __tablename__ = "affinity_results"
    __table_args__ = (UniqueConstraint("job_id", "method", name="uq_affinity_results_job_method"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    method: Mapped[str] = mapped_column(String(32))
    tasks: Mapped[list[Any]] = mapped_column()
    matrix: Mapped[list[Any]] = mapped_column()
    trajectory: Mapped[list[Any]] = mapped_column()
    meta: Mapped[dict[str, Any]] = mapped_column("metadata")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class NetworkTable(Base):
    """The selection problem (issue-2 problem JSON) built from a job's affinity for one singleton rule."""

    __tablename__ = "network_tables"
    __table_args__ = (
        UniqueConstraint("job_id", "method", "singletons", name="uq_network_tables_job_method_singletons"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    method: Mapped[str] = mapped_column(String(32))
    singletons: Mapped[str] = mapped_column(String(16))
    problem: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AffinityRunRecord(Base):
    """An affinity run measured elsewhere (``grouping.affinity.AffinityTracker`` in the user's own
    training) and uploaded: its tasks, one matrix per method (``onto_row_from_column``), each
    method's per-epoch trajectory, and metadata (the run's own, plus what the upload added)."""

    __tablename__ = "affinity_runs"
    __table_args__ = (Index("ix_affinity_runs_project_created", "project", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    project: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255))
    tasks: Mapped[list[Any]] = mapped_column()
    methods: Mapped[list[Any]] = mapped_column()
    epochs: Mapped[int] = mapped_column(Integer)
    steps: Mapped[int | None] = mapped_column(Integer)
    matrices: Mapped[dict[str, Any]] = mapped_column()
    trajectories: Mapped[dict[str, Any]] = mapped_column()
    meta: Mapped[dict[str, Any]] = mapped_column("metadata")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Grouping(Base):
    """A solved grouping (issue-2 solution JSON) at one budget of a job's network table, or of an
    uploaded affinity run's (exactly one of ``job_id`` and ``run_id``)."""

    __tablename__ = "groupings"
    __table_args__ = (
        UniqueConstraint(
            "job_id", "method", "solver", "singletons", "budget", name="uq_groupings_job_method_solver_budget"
        ),
        UniqueConstraint(
            "run_id", "method", "solver", "singletons", "budget", name="uq_groupings_run_method_solver_budget"
        ),
        CheckConstraint("(job_id IS NULL) <> (run_id IS NULL)", name="ck_groupings_one_source"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project: Mapped[str] = mapped_column(String(64))
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    run_id: Mapped[str | None] = mapped_column(
        ForeignKey("affinity_runs.id", ondelete="CASCADE", name="fk_groupings_run_id"), index=True
    )
    method: Mapped[str] = mapped_column(String(32))
    solver: Mapped[str] = mapped_column(String(32))
    singletons: Mapped[str] = mapped_column(String(16))
    budget: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16))
    objective: Mapped[float | None] = mapped_column(Float)
    solve_seconds: Mapped[float] = mapped_column(Float)
    solution: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class JobLogRecord(Base):
    """One entry of a job's log (``GET /jobs/{id}/logs``), written by the attempt that ran it; bounded
    per attempt by ``job_log_entries`` (``service.job_logs``)."""

    __tablename__ = "job_logs"
    __table_args__ = (Index("ix_job_logs_job_id_id", "job_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                    autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(Integer)
    level: Mapped[str] = mapped_column(String(16))
    step: Mapped[str | None] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    """An API key of a project: ``tg_<key_id>_<secret>``; only the secret's SHA-256 is stored."""

    __tablename__ = "api_keys"

    key_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    project: Mapped[str] = mapped_column(String(64), index=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column()


class Study(Base):
    """Candidate networks to train on ``tasks`` (``grouping.studies``): its strategy, where trials run
    (``builtin``: Celery workers train ``config``'s model on its dataset; ``external``: callers ask
    for trials and tell their values), the value kind (``loss`` minimised, ``score`` maximised), the
    cost of each network size, the budgets adaptive rounds aim at, and trial leases and attempts."""

    __tablename__ = "studies"
    __table_args__ = (Index("ix_studies_project_created", "project", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    project: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255))
    tasks: Mapped[list[Any]] = mapped_column()
    strategy: Mapped[str] = mapped_column(String(32))
    execution: Mapped[str] = mapped_column(String(16))
    value_kind: Mapped[str] = mapped_column(String(16))
    costs: Mapped[dict[str, Any]] = mapped_column()
    half_singletons: Mapped[bool] = mapped_column(Boolean)
    budgets: Mapped[list[Any]] = mapped_column()
    config: Mapped[dict[str, Any]] = mapped_column()
    seed: Mapped[int] = mapped_column(BigInteger)
    lease_seconds: Mapped[float] = mapped_column(Float)
    max_attempts: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default="running")
    rounds: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()


class Trial(Base):
    """One network of a study (task subset, size, seed, epochs for ESA): its state, attempts, lease
    (``lease_id`` of the current holder, ``lease_expires_at``, extended by heartbeats), per-task
    values on both splits, epochs run, cost and timings. Unique per (study, tasks, size)."""

    __tablename__ = "trials"
    __table_args__ = (
        UniqueConstraint("study_id", "network", name="uq_trials_study_network"),
        Index("ix_trials_study_state_number", "study_id", "state", "number"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    study_id: Mapped[str] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    round: Mapped[int] = mapped_column(Integer, default=1)
    network: Mapped[str] = mapped_column(Text)
    tasks: Mapped[list[Any]] = mapped_column()
    size: Mapped[str] = mapped_column(String(8))
    seed: Mapped[int] = mapped_column(BigInteger)
    epochs: Mapped[int | None] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default="waiting")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_id: Mapped[str | None] = mapped_column(String(36))
    lease_expires_at: Mapped[datetime | None] = mapped_column()
    heartbeat_at: Mapped[datetime | None] = mapped_column()
    worker: Mapped[str | None] = mapped_column(String(255))
    val: Mapped[dict[str, Any] | None] = mapped_column()
    test: Mapped[dict[str, Any] | None] = mapped_column()
    epochs_run: Mapped[int | None] = mapped_column(Integer)
    cost: Mapped[float | None] = mapped_column(Float)
    seconds: Mapped[float | None] = mapped_column(Float)
    error: Mapped[dict[str, Any] | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    checkpoint_epoch: Mapped[int | None] = mapped_column(Integer)
    resumed_from_epoch: Mapped[int | None] = mapped_column(Integer)


class TrialCheckpoint(Base):
    """The newest epoch-end checkpoint of a builtin trial (``worker.trials``): the serialised training
    state of the run ``fingerprint`` after ``epoch`` epochs, written only by the trial's lease holder
    and removed when the trial ends."""

    __tablename__ = "trial_checkpoints"

    trial_id: Mapped[str] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"), primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer)
    fingerprint: Mapped[str] = mapped_column(String(64))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class StudyAnswer(Base):
    """A study's answer at one budget under one solver (``service.study_answers``): a solution, or an
    ``infeasible`` or ``unserved`` one, solved on the measured set of ``ended`` ended trials, of which
    ``measured`` succeeded. Told values never change, so ``ended`` identifies the set."""

    __tablename__ = "study_answers"
    __table_args__ = (
        UniqueConstraint("study_id", "solver", "ended", "budget", name="uq_study_answers_version_budget"),
        Index("ix_study_answers_study_solver_budget", "study_id", "solver", "budget"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                    autoincrement=True)
    study_id: Mapped[str] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    solver: Mapped[str] = mapped_column(String(32))
    ended: Mapped[int] = mapped_column(Integer)
    measured: Mapped[int] = mapped_column(Integer)
    budget: Mapped[float] = mapped_column(Float)
    solution: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class StudyRefresh(Base):
    """The claim of the one solve of a study's answers in flight: ``token`` (null when none), the
    measured set it was asked for, and when it may be taken over (its solver was lost)."""

    __tablename__ = "study_refreshes"

    study_id: Mapped[str] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), primary_key=True)
    token: Mapped[str | None] = mapped_column(String(36))
    ended: Mapped[int] = mapped_column(Integer)
    requested_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column()
