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

A job's ``methods`` default to :data:`DEFAULT_METHODS` (``tag_first_order``: one affinity run of the
all-task network, whose tables allow half-size single-task networks); a stored job keeps the methods
it was submitted with (``service.jobs.create_job`` pins them), so changing the default never changes
what an earlier job ran.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from grouping.affinity import AFFINITY_METHODS
from grouping.data import SplitSpec, TaskSpec
from grouping.data.spec import LOSSES_BY_TYPE
from grouping.selection import SOLVERS
from grouping.selection.solvers import DEFAULT_SOLVER
from grouping.training import ModelConfig, TrainingConfig
from grouping.training.config import MAX_PARAMETERS

#: the warm-start subset fine-tuning method (``grouping.tables.warm_start_table``): an explicit table
WARM_START = "warm_start"
#: every method a job may run: the warm-start table and the affinity methods
JOB_METHODS = (WARM_START, *AFFINITY_METHODS)
#: the methods of a job that does not name any: TAG's first-order affinity (Transference §3.2), one
#: all-task training run, solved with half-size singletons allowed — the lowest regret among methods
#: costing at most three training runs in ``bench/results/grouping_quality.md`` (``warm_start`` and
#: ``tag`` stay available by name)
DEFAULT_METHODS: tuple[str, ...] = ("tag_first_order",)

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
Method = Literal[JOB_METHODS]  # type: ignore[valid-type]
Solver = Literal[SOLVERS]  # type: ignore[valid-type]
Singletons = Literal["forbid", "normalized"]
#: most bootstrap draws of the validation losses a warm-start job stores (bounds the stored table)
MAX_JOB_VAL_DRAWS = 200
#: most fine-tuning epochs of a warm-start job's subsets
MAX_JOB_FINETUNE_EPOCHS = 10.0

#: characters no text input may hold: C0 controls (NUL first of all), DEL, lone UTF-16 surrogates
_FORBIDDEN = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")
#: the same rule as a JSON Schema (ECMA 262) pattern, stated in the OpenAPI document. Lone surrogates
#: are left out of it: they are no Unicode characters, so a JSON document holding one (as a ``\\ud800``
#: escape) is no valid Unicode text to begin with, and regex engines working on characters (Rust's,
#: which schema validators use) refuse a pattern that names them; the server refuses them all the same
TEXT_PATTERN = "^[^\\u0000-\\u001f\\u007f]*$"
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


def _text(max_length: int, pattern: str = TEXT_PATTERN, mismatch: str = "") -> Any:
    """A constrained text type: 1 to ``max_length`` characters without control characters or lone
    surrogates (:func:`text_problem`) that, where ``pattern`` is narrower than :data:`TEXT_PATTERN`,
    match it (else the error says ``mismatch``); the schema states ``pattern``."""
    narrower = re.compile(pattern) if pattern != TEXT_PATTERN else None

    def check(value: str) -> str:
        reason = text_problem(value)
        if reason is None and narrower is not None and not narrower.match(value):
            reason = mismatch
        if reason is not None:
            raise ValueError(reason)
        return value

    return Annotated[
        str,
        Field(min_length=1, max_length=max_length, json_schema_extra={"pattern": pattern}),
        AfterValidator(check),
    ]


#: a text input: 1-255 characters, no control characters or lone surrogates (see the module docstring)
Name = _text(MAX_TEXT)
#: a longer text input (a server path, a budget list): 1-4096 characters, the same characters as a Name
LongText = _text(MAX_LONG_TEXT)
#: a non-negative decimal number in a budget list or range (1, 2.5, .5, 1e3), spaces around it allowed
_BUDGET_NUMBER = r" *\+?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)? *"
#: ``budgets``: ``START:STOP:STEP`` or a comma-separated list of numbers
BUDGETS_PATTERN = (
    f"^(?:{_BUDGET_NUMBER}:{_BUDGET_NUMBER}:{_BUDGET_NUMBER}|{_BUDGET_NUMBER}(?:,{_BUDGET_NUMBER})*)$"
)
#: budgets as a range ``START:STOP:STEP`` or a list ``B1,B2,...`` (:data:`BUDGETS_PATTERN`); how many
#: a range holds, and whether STOP >= START and STEP > 0, is checked by the route
Budgets = _text(
    MAX_LONG_TEXT, BUDGETS_PATTERN,
    "expected START:STOP:STEP (e.g. 1:5:0.5) or a comma-separated list (e.g. 1,2,4) of non-negative numbers",
)
#: what the id of a job or a dataset is made of (the API issues UUIDs): letters, digits, '-' and '_' —
#: nothing a URL path would have to percent-encode
ID_PATTERN = "^[A-Za-z0-9_-]+$"
#: longest id of a job or a dataset
MAX_ID = 64
#: the id of a job or a dataset in a URL path: 1-64 letters, digits, '-' or '_'
ResourceId = _text(
    MAX_ID, ID_PATTERN, "an id is made of letters, digits, '-' and '_' (as the API issues them)"
)
#: a random seed: every generator seeded from it (numpy, torch, CUDA) accepts 0 .. 2**32 - 1
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]


class JobTask(TaskSpec):
    """A task of a job (the library's ``TaskSpec``, with :data:`Name` text). Its schema states the
    losses each type allows (``LOSSES_BY_TYPE``; the loss defaults to the first)."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {
                    "properties": {
                        "type": {"const": kind},
                        "loss": {"anyOf": [{"enum": list(losses)}, {"type": "null"}]},
                    }
                }
                for kind, losses in LOSSES_BY_TYPE.items()
            ]
        }
    )

    name: Name
    column: Name | None = Field(None, description="the target column (default: the task's name)")
    loss: Name | None = Field(
        None,
        description="binary: bce; multiclass: cross_entropy; regression: mse or l1 (default: the first)",
    )


#: a share of the rows: strictly between 0 and 1
Fraction = Annotated[float, Field(gt=0, lt=1)]


class JobSplit(SplitSpec):
    """The split of a job (the library's ``SplitSpec``, with a :data:`Name` column and a :data:`Seed`)."""

    column: Name | None = None
    fractions: tuple[Fraction, Fraction, Fraction] = Field(
        (0.7, 0.15, 0.15), description="train, val and test shares of a random split; they sum to 1"
    )
    seed: Seed = 0


class JobTraining(TrainingConfig):
    """The training schedule of a job (the library's ``TrainingConfig``, with a :data:`Seed`). Its
    schema states that a non-zero ``momentum`` needs optimizer ``momentum``."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": ["optimizer"], "properties": {"optimizer": {"const": "momentum"}}},
                {"properties": {"momentum": {"anyOf": [{"const": 0}, {"type": "null"}]}}},
            ]
        }
    )

    seed: Seed = 0


class WarmStartOptions(BaseModel):
    """How a job's ``warm_start`` table is trained (``grouping.tables.warm_start_table``): the all-task
    network is trained with the job's ``training``, then a copy is fine-tuned on each candidate subset."""

    model_config = ConfigDict(extra="forbid")

    finetune_epochs: float = Field(
        0.5,
        ge=0,
        le=MAX_JOB_FINETUNE_EPOCHS,
        allow_inf_nan=False,
        description="passes over the training split each subset's copy is fine-tuned for (fractions "
        "allowed, rounded to whole steps; 0 measures the all-task network itself)",
    )
    half_singletons: bool = Field(
        True,
        description="also train a half-size all-task network and fine-tune a copy on each single task "
        "(Standley's half-size networks, cost 0.5)",
    )
    val_draws: int = Field(
        100,
        ge=0,
        le=MAX_JOB_VAL_DRAWS,
        description="bootstrap draws of every network's validation losses stored with the table; "
        "groupings report their trust from them (0: no trust report)",
    )
    subsets: list[Annotated[list[Name], Field(min_length=1)]] | None = Field(
        None,
        min_length=1,
        description="candidate task subsets (default: every subset for up to 6 tasks, else every task "
        "and pair); every single task and the all-task set are always added",
    )


class JobCreate(BaseModel):
    """A run that estimates how tasks help each other. Only ``dataset`` is required; everything else
    has the library's defaults, and ``methods`` :data:`DEFAULT_METHODS`. Its schema states that
    ``warm_start`` options come only with the ``warm_start`` method."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [
                {"required": ["methods"], "properties": {"methods": {"contains": {"const": WARM_START}}}},
                {"properties": {"warm_start": {"type": "null"}}},
            ]
        },
    )

    dataset: Name = Field(description="a built-in dataset name or the id of an uploaded dataset")
    tasks: list[JobTask] | None = Field(
        None,
        min_length=1,
        description="tasks to learn, at least one, each name once (default: the built-in dataset's "
        "tasks; required for uploads)",
    )
    features: list[Name] | None = Field(
        None,
        min_length=1,
        json_schema_extra={"uniqueItems": True},
        description="input columns, each once (default: every column that is not a target or the split "
        "column)",
    )
    split: JobSplit = Field(default_factory=JobSplit)
    methods: list[Method] = Field(
        default_factory=lambda: list(DEFAULT_METHODS),
        json_schema_extra={"default": list(DEFAULT_METHODS), "uniqueItems": True},
        min_length=1,
        description="affinity methods computed in one affinity run (the default: tag_first_order, "
        "its tables allowing half-size single-task networks) and/or warm_start (a network table from "
        "warm-start subset fine-tuning)",
    )
    model: ModelConfig = Field(
        default_factory=ModelConfig,
        description=f"the network trained: its hidden layers hold at most {MAX_PARAMETERS:,} "
        "parameters ((hidden_layers - 1) x (hidden_units x sqrt(width))^2 for the MLP backbone), and "
        "so does the whole network once the data's shape is known",
    )
    training: JobTraining = Field(default_factory=JobTraining)
    warm_start: WarmStartOptions | None = Field(
        None,
        validate_default=True,
        description="options of the warm_start method (its defaults when it runs and this is unset)",
    )

    @field_validator("methods")
    @classmethod
    def _distinct_methods(cls, methods: list[str]) -> list[str]:
        if len(set(methods)) != len(methods):
            raise ValueError("a method is listed twice")
        return methods

    @field_validator("warm_start")
    @classmethod
    def _warm_start_options(
        cls, options: WarmStartOptions | None, info: ValidationInfo
    ) -> WarmStartOptions | None:
        """Options of warm_start only with that method; its defaults filled in when it runs."""
        methods = info.data.get("methods")
        if methods is None:  # methods were invalid: reported on their own
            return options
        if WARM_START in methods:
            return options or WarmStartOptions()
        if options is not None:
            raise ValueError(f"warm_start options are given but methods do not include {WARM_START!r}")
        return None

    @property
    def affinity_methods(self) -> list[str]:
        """The job's affinity methods (computed together in one affinity run), in request order."""
        return [m for m in self.methods if m != WARM_START]

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


class JobLogEntry(BaseModel):
    id: int = Field(description="increasing within the job: pass it as `after` to read only newer entries")
    time: datetime
    attempt: int = Field(description="the attempt (1, 2, … as workers claim the job) that wrote it")
    level: str = Field(description="DEBUG, INFO, WARNING, ERROR or CRITICAL")
    step: str | None = Field(None, description="the runner's step the entry belongs to (e.g. load_dataset)")
    message: str


class JobLogOut(BaseModel):
    """A job's log: each attempt stores at most ``job_log_entries`` entries (warnings and errors have a
    reserve beyond it, so the entry naming a failure is kept; an entry says where some were dropped)."""

    job_id: str
    entries: list[JobLogEntry] = Field(description="oldest first")
    more: bool = Field(description="more entries follow: read again with `after` = the last entry's id")


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


class IntervalOut(BaseModel):
    """A predicted value under the estimate the solver saw, and its central interval over the samples."""

    value: float
    low: float
    high: float


class TrustOut(BaseModel):
    """How far to trust a grouping's predicted values (``grouping.selection.trust.selection_trust``):
    the fixed selection re-evaluated under bootstrap samples of its estimate — the validation examples
    of a warm_start table, the measured epochs of an affinity run. The intervals cover that noise
    only, not the bias of the method that produced the estimate (``bench/results/grouping_quality.md``
    measures that)."""

    samples: int = Field(description="samples of the estimate the selection was re-evaluated under")
    level: float = Field(description="coverage of every interval (central percentile interval)")
    networks: list[IntervalOut] = Field(
        description="per network of the grouping, in its order: the sum over the tasks it serves"
    )
    objective: IntervalOut = Field(description="the grouping's predicted objective")
    all_task: IntervalOut | None = Field(
        None, description="the same for one full-size network training and serving every task"
    )
    gain: IntervalOut | None = Field(
        None,
        description="predicted gain over that all-task network, positive = the grouping is better "
        "(all_task - objective for losses, objective - all_task for scores)",
    )
    win_rate: float | None = Field(None, description="share of the samples in which the gain is positive")


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
    trust: TrustOut | None = Field(
        None,
        description="the spread of the predicted values under samples of the estimate; null where "
        "there are none (affinity runs with fewer than 2 complete epochs, tables without draws, "
        "an infeasible budget, a problem posted without metadata.val_draws)",
    )


class GroupingOut(SolutionOut):
    """A stored grouping of a job: the solution plus which table and solver produced it."""

    job_id: str
    method: str
    solver: str
    singletons: str = Field(description="the affinity table's singleton rule; 'none' for warm_start tables")
    stored: bool = Field(description="true when read back from the database rather than solved now")


class GroupingCurve(BaseModel):
    job_id: str | None = None
    method: str | None = None
    solver: str
    singletons: str | None = None
    curve: list[SolutionOut]


def _number(**bounds: float) -> dict[str, Any]:
    """A JSON number of a posted problem: finite and at most ``MAX_PROBLEM_MAGNITUDE`` in magnitude."""
    return {
        "type": "number",
        "minimum": -MAX_PROBLEM_MAGNITUDE,
        "maximum": MAX_PROBLEM_MAGNITUDE,
        **bounds,
    }


#: largest magnitude of a number in a posted problem (``service.limits.MAX_MAGNITUDE``)
MAX_PROBLEM_MAGNITUDE = 1e6
_TEXT = {"type": "string", "pattern": TEXT_PATTERN}
_TASKS = {
    "type": "array",
    "minItems": 1,
    "uniqueItems": True,
    "items": {"type": "string", "minLength": 1, "pattern": TEXT_PATTERN},
    "description": "the task names, each once (at most max_tasks)",
}
_VALUES = {
    "anyOf": [
        {"type": "object", "propertyNames": {"pattern": TEXT_PATTERN}, "additionalProperties": _number()},
        {"type": "null"},
    ]
}
_NETWORK = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "tasks": {**_TASKS, "description": "the tasks the network trains on"},
        "cost": {"anyOf": [_number(minimum=0), {"type": "null"}], "description": "default: by size"},
        "size": {"anyOf": [{"enum": ["full", "half"]}, {"type": "null"}], "description": "default: by cost"},
        "loss": {**_VALUES, "description": "per served task its loss (objective min_loss)"},
        "score": {**_VALUES, "description": "per served task its score (objective max_score)"},
        "name": {"anyOf": [_TEXT, {"type": "null"}]},
    },
    "required": ["tasks"],
}
_EXPLICIT = {
    "tasks": _TASKS,
    "normalize": {"enum": ["none", "stl"]},
    "networks": {"type": "array", "minItems": 1, "items": _NETWORK},
}
#: the JSON Schema of a posted problem (``grouping.problem.parse_problem``): the explicit form
#: (``objective`` ``min_loss`` or ``max_score``, the default when there is no ``affinity``) or the
#: affinity form (``objective`` ``max_affinity``, the default when ``affinity`` is given); members
#: of neither form (``metadata``) are ignored
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "the problem JSON read by `taskgrouper solve`. The explicit form lists candidate "
    "`networks`, each training `tasks` with a `loss` (objective min_loss, the default) or `score` "
    "(max_score) per served task; the affinity form has `affinity.onto_row_from_column`, a square "
    "matrix with one row and column per task (objective max_affinity, the default when `affinity` is "
    "given). Every number is finite and at most 1e6 in magnitude, every string printable. Checked "
    "by the server beyond this schema: the matrix is n x n; networks name known tasks, each serves "
    "tasks it trains, every task is served, no network is listed twice; at most max_tasks tasks and "
    "max_networks networks.",
    "anyOf": [
        {
            "title": "explicit",
            "properties": {"objective": {"enum": ["min_loss", "max_score"]}, **_EXPLICIT},
            "required": ["objective", "tasks", "networks"],
        },
        {
            "title": "explicit (objective min_loss by default)",
            "properties": _EXPLICIT,
            "required": ["tasks", "networks"],
            "not": {"anyOf": [{"required": ["objective"]}, {"required": ["affinity"]}]},
        },
        {
            "title": "affinity",
            "properties": {
                "objective": {"const": "max_affinity"},
                "tasks": _TASKS,
                "affinity": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "onto_row_from_column": {
                            "type": "array",
                            "items": {"type": "array", "items": _number()},
                            "description": "row i, column j: the affinity onto task i from task j",
                        }
                    },
                    "required": ["onto_row_from_column"],
                },
                "singletons": {"enum": ["forbid", "normalized"]},
                "network_cost": _number(exclusiveMinimum=0),
                "half_singletons": {"type": "boolean"},
            },
            "required": ["tasks", "affinity"],
        },
    ],
}


class SolveRequest(BaseModel):
    """``POST /groupings``: a problem in the selection JSON and exactly one of ``budget`` (one budget)
    and ``budgets`` (a range or a list)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "oneOf": [
                {"required": ["budget"], "properties": {"budget": {"type": "number"}}},
                {"required": ["budgets"], "properties": {"budgets": {"type": "string"}}},
            ]
        },
    )
    problem: dict[str, Any] = Field(json_schema_extra=PROBLEM_SCHEMA)
    budget: float | None = Field(
        None, gt=0, allow_inf_nan=False, description="one budget (exactly one of budget and budgets)"
    )
    budgets: Budgets | None = Field(
        None,
        description="start:stop:step (e.g. 1:5:0.5) or a comma-separated list (e.g. 1,2,4); at most "
        "max_budgets budgets in either form (exactly one of budget and budgets)",
        examples=["1:5:0.5"],
    )
    solver: Solver = Field(DEFAULT_SOLVER, description="'auto' picks the exact method per problem (explicit "
                           "tables: subset_dp where it fits, else bip); the solution's proved_by names it")
    time_limit: float | None = Field(None, gt=0, le=600, allow_inf_nan=False)


#: one affinity score of an uploaded run: finite and at most ``MAX_PROBLEM_MAGNITUDE`` in magnitude (what
#: the solvers handle reliably, as for a posted problem)
Score = Annotated[
    float, Field(ge=-MAX_PROBLEM_MAGNITUDE, le=MAX_PROBLEM_MAGNITUDE, allow_inf_nan=False)
]
_METHOD_NAMES = {"propertyNames": {"enum": list(AFFINITY_METHODS)}}


class AffinityRunCreate(BaseModel):
    """``POST /affinity-runs``: an affinity run measured elsewhere — ``AffinityRun.to_dict()`` of
    ``grouping.affinity`` (``AffinityTracker.result()``) plus a ``name``; ``metadata`` is free (model
    name, optimizer, …). Checked by the server beyond this schema: every matrix (and every epoch of a
    trajectory) is n x n for the n ``tasks``; a trajectory belongs to a method with a matrix; at most
    ``max_tasks`` tasks and :data:`service.limits.MAX_RUN_EPOCHS` epochs."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    tasks: list[Name] = Field(
        min_length=2, json_schema_extra={"uniqueItems": True}, description="the task names, each once"
    )
    matrices: dict[Name, list[list[Score]]] = Field(
        min_length=1,
        json_schema_extra=_METHOD_NAMES,
        description="per affinity method (tag, tag_first_order, grad_cosine), the training-level matrix: "
        "row i, column j is the affinity onto task i from task j",
    )
    trajectories: dict[Name, list[list[list[Score | None]]]] = Field(
        default_factory=dict,
        json_schema_extra=_METHOD_NAMES,
        description="per method, one matrix per epoch (null entries: an epoch without a measured step); "
        "two or more complete epochs give groupings a trust report",
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="how the run was measured: model, optimizer, steps, …"
    )


class AffinityRunOut(BaseModel):
    """A stored affinity run (without its matrices: ``GET /affinity-runs/{id}`` has them)."""

    id: str
    name: str
    tasks: list[str]
    methods: list[str] = Field(
        description="the methods it has a matrix of; GET /groupings' default is the first"
    )
    epochs: int = Field(description="epochs of its longest trajectory")
    steps: int | None = Field(None, description="measured steps (metadata.affinity_steps), if known")
    metadata: dict[str, Any]
    created_at: datetime
    links: dict[str, str]


class AffinityRunDetail(AffinityRunOut):
    matrices: dict[str, list[list[float]]]
    trajectories: dict[str, list[list[list[float | None]]]]


class AffinityRunPage(BaseModel):
    items: list[AffinityRunOut]
    total: int
    limit: int
    offset: int
    next: str | None = Field(None, description="the URL of the next page, if any")


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str] = {}
