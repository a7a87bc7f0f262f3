"""The API's request and response bodies (pydantic v2).

Job requests reuse the library's own models (:class:`~grouping.data.TaskSpec`,
:class:`~grouping.training.ModelConfig`, :class:`~grouping.training.TrainingConfig`), so the API,
the CLI and the library validate a run identically and share their defaults.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from grouping.affinity import AFFINITY_METHODS
from grouping.data import SplitSpec, TaskSpec
from grouping.selection import SOLVERS
from grouping.training import ModelConfig, TrainingConfig

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
Method = Literal[AFFINITY_METHODS]  # type: ignore[valid-type]
Solver = Literal[SOLVERS]  # type: ignore[valid-type]
Singletons = Literal["forbid", "normalized"]


class JobCreate(BaseModel):
    """An affinity run. Only ``dataset`` is required; everything else has the library's defaults."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(
        min_length=1, max_length=255, description="a built-in dataset name or the id of an uploaded dataset"
    )
    tasks: list[TaskSpec] | None = Field(
        None, description="tasks to learn (default: the built-in dataset's tasks; required for uploads)"
    )
    features: list[str] | None = Field(None, description="input columns (default: every non-target column)")
    split: SplitSpec = Field(default_factory=SplitSpec)
    methods: list[Method] = Field(
        default_factory=lambda: ["tag"], min_length=1, description="affinity methods computed in the run"
    )
    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)

    @field_validator("methods")
    @classmethod
    def _distinct_methods(cls, methods: list[str]) -> list[str]:
        if len(set(methods)) != len(methods):
            raise ValueError("a method is listed twice")
        return methods

    @field_validator("tasks")
    @classmethod
    def _distinct_tasks(cls, tasks: list[TaskSpec] | None) -> list[TaskSpec] | None:
        if tasks is not None:
            if not tasks:
                raise ValueError("at least one task is needed (or leave tasks out)")
            names = [task.name for task in tasks]
            if len(set(names)) != len(names):
                raise ValueError("a task name is listed twice")
        return tasks


class Progress(BaseModel):
    fraction: float = Field(description="0..1 of the run's training steps")
    epoch: int | None = None
    step: int | None = None
    total_steps: int | None = None
    eta_seconds: float | None = Field(None, description="estimated seconds until the run finishes")
    losses: dict[str, float] | None = None


class Timings(BaseModel):
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    queued_seconds: float | None = None
    run_seconds: float | None = None


class JobError(BaseModel):
    field: str | None = Field(None, description="the input field at fault, when the job's input was bad")
    reason: str


class JobOut(BaseModel):
    id: str
    status: JobStatus
    dataset: str
    methods: list[str]
    spec: dict[str, Any] = Field(description="the validated request, defaults filled in")
    progress: Progress
    timings: Timings
    device: str | None = None
    attempts: int = Field(0, description="times a worker has started the job (1 unless it was resumed)")
    resumed_from_epoch: int | None = Field(
        None, description="epochs the latest attempt found checkpointed (and did not run again)"
    )
    history: list[dict[str, Any]] = Field(
        default_factory=list,
        description="per attempt: worker, claimed_at, resumed_from_epoch, first_step, outcome",
    )
    cancel_requested: bool = False
    error: JobError | None = None
    links: dict[str, str]


class JobPage(BaseModel):
    items: list[JobOut]
    total: int
    limit: int
    offset: int
    next: str | None = Field(None, description="the URL of the next page, if any")


class ColumnInfo(BaseModel):
    name: str
    dtype: str
    shape: list[int] = Field(description="shape of the column (rows first); NPZ arrays may have more axes")
    n_missing: int = 0
    n_unique: int | None = None
    suggested_type: Literal["binary", "multiclass", "regression"] | None = Field(
        None, description="the task type this column could serve as, if any"
    )


class DatasetOut(BaseModel):
    id: str
    name: str
    format: Literal["parquet", "csv", "npz"]
    size_bytes: int
    sha256: str
    n_rows: int
    columns: list[ColumnInfo]
    created_at: datetime
    links: dict[str, str]


class NetworkOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    trains: list[str]
    serves: list[str]
    size: str | None = None
    cost: float


class SolutionOut(BaseModel):
    """A grouping in the selection JSON (``taskgrouper solve``), plus the budget it answers."""

    model_config = ConfigDict(extra="allow")
    budget: float
    status: str
    objective: float | None = None
    bound: float | None = None
    networks: list[NetworkOut] = []
    per_task: dict[str, float] = {}
    solve_seconds: float | None = None


class GroupingOut(SolutionOut):
    """A stored grouping of a job: the solution plus which table and solver produced it."""

    job_id: str
    method: str
    solver: str
    singletons: str
    stored: bool = Field(description="true when read back from the database rather than solved now")


class GroupingCurve(BaseModel):
    job_id: str | None = None
    method: str | None = None
    solver: str
    singletons: str | None = None
    curve: list[SolutionOut]


class SolveRequest(BaseModel):
    """``POST /groupings``: a problem in the selection JSON and one budget or a budget range."""

    model_config = ConfigDict(extra="forbid")
    problem: dict[str, Any] = Field(description="the problem JSON read by `taskgrouper solve`")
    budget: float | None = Field(None, gt=0, allow_inf_nan=False)
    budgets: str | None = Field(None, description="start:stop:step, e.g. 1:5:0.5", examples=["1:5:0.5"])
    solver: Solver = "bip"
    time_limit: float | None = Field(None, gt=0, le=600, allow_inf_nan=False)


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str] = {}
