"""The API's request and response bodies (pydantic v2).

Job requests reuse the library's own models (:class:`~grouping.data.TaskSpec`,
:class:`~grouping.training.ModelConfig`, :class:`~grouping.training.TrainingConfig`), so the API,
the CLI and the library validate a run identically and share their defaults. Where a request goes
further than the library checks — into the database, a file name, a random generator — the API's
subclasses narrow the field:

* every text input (names, ids, column names, keys, file names) is a :data:`Name`: 1 to 255
  characters, none of them a control character (U+0000 NUL first of all, which PostgreSQL cannot
  store) or a lone UTF-16 surrogate (not encodable as UTF-8). Routes use the same type for path,
  query, header and form parameters, and :func:`text_problem` states the rule where no model applies
  it (an upload's file name and column names, a problem's strings);
* seeds are :data:`Seed` values, 0 to 2**32 - 1 (what every random generator a run seeds accepts).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from grouping.affinity import AFFINITY_METHODS
from grouping.data import SplitSpec, TaskSpec
from grouping.selection import SOLVERS
from grouping.training import ModelConfig, TrainingConfig

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
Method = Literal[AFFINITY_METHODS]  # type: ignore[valid-type]
Solver = Literal[SOLVERS]  # type: ignore[valid-type]
Singletons = Literal["forbid", "normalized"]

#: characters no text input may hold: C0 controls (NUL first of all), DEL, lone UTF-16 surrogates
_FORBIDDEN = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")
#: the same rule as a JSON Schema (ECMA 262) pattern, stated in the OpenAPI document
TEXT_PATTERN = "^[^\\u0000-\\u001f\\u007f\\ud800-\\udfff]*$"
#: longest text input (names, ids, columns)
MAX_TEXT = 255
#: longest long text input (a dataset location, a budget list)
MAX_LONG_TEXT = 4096


def text_problem(value: str) -> str | None:
    """Why ``value`` is not acceptable text (see :data:`Name`), or ``None`` when it is."""
    found = _FORBIDDEN.search(value)
    if found is None:
        return None
    char = found.group()
    kind = (
        "a NUL character"
        if char == "\x00"
        else ("a lone surrogate" if "\ud800" <= char <= "\udfff" else "a control character")
    )
    return f"contains {kind} (U+{ord(char):04X}) at position {found.start()}; text must be printable"


def _printable(value: str) -> str:
    reason = text_problem(value)
    if reason is not None:
        raise ValueError(reason)
    return value


#: a text input: 1-255 characters, no control characters or lone surrogates (see the module docstring)
Name = Annotated[
    str,
    Field(min_length=1, max_length=MAX_TEXT, json_schema_extra={"pattern": TEXT_PATTERN}),
    AfterValidator(_printable),
]
#: a longer text input (a server path, a budget list): 1-4096 characters, the same characters as a Name
LongText = Annotated[
    str,
    Field(min_length=1, max_length=MAX_LONG_TEXT, json_schema_extra={"pattern": TEXT_PATTERN}),
    AfterValidator(_printable),
]
#: a random seed: every generator seeded from it (numpy, torch, CUDA) accepts 0 .. 2**32 - 1
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]


class JobTask(TaskSpec):
    """A task of a job (the library's ``TaskSpec``, with :data:`Name` text)."""

    name: Name
    column: Name | None = Field(None, description="the target column (default: the task's name)")
    loss: Name | None = None


class JobSplit(SplitSpec):
    """The split of a job (the library's ``SplitSpec``, with a :data:`Name` column and a :data:`Seed`)."""

    column: Name | None = None
    seed: Seed = 0


class JobTraining(TrainingConfig):
    """The training schedule of a job (the library's ``TrainingConfig``, with a :data:`Seed`)."""

    seed: Seed = 0


class JobCreate(BaseModel):
    """An affinity run. Only ``dataset`` is required; everything else has the library's defaults."""

    model_config = ConfigDict(extra="forbid")

    dataset: Name = Field(description="a built-in dataset name or the id of an uploaded dataset")
    tasks: list[JobTask] | None = Field(
        None, description="tasks to learn (default: the built-in dataset's tasks; required for uploads)"
    )
    features: list[Name] | None = Field(
        None,
        min_length=1,
        description="input columns (default: every column that is not a target or the split column)",
    )
    split: JobSplit = Field(default_factory=JobSplit)
    methods: list[Method] = Field(
        default_factory=lambda: ["tag"], min_length=1, description="affinity methods computed in the run"
    )
    model: ModelConfig = Field(default_factory=ModelConfig)
    training: JobTraining = Field(default_factory=JobTraining)

    @field_validator("methods")
    @classmethod
    def _distinct_methods(cls, methods: list[str]) -> list[str]:
        if len(set(methods)) != len(methods):
            raise ValueError("a method is listed twice")
        return methods

    @field_validator("features")
    @classmethod
    def _distinct_features(cls, features: list[str] | None) -> list[str] | None:
        if features is not None and len(set(features)) != len(features):
            raise ValueError("a feature column is listed twice")
        return features

    @field_validator("tasks")
    @classmethod
    def _distinct_tasks(cls, tasks: list[JobTask] | None) -> list[JobTask] | None:
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
    budgets: LongText | None = Field(
        None,
        description="start:stop:step (e.g. 1:5:0.5) or a comma-separated list (e.g. 1,2,4); at most "
        "max_budgets budgets in either form",
        examples=["1:5:0.5"],
    )
    solver: Solver = "bip"
    time_limit: float | None = Field(None, gt=0, le=600, allow_inf_nan=False)


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str] = {}
