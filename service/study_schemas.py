"""Request and response bodies of the study routes (``/studies``, ask and tell on ``/trials``).

A value a trial reports is a finite number of magnitude at most :data:`MAX_VALUE` (the bound of a
posted problem's numbers), keyed by the task it was measured on.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from grouping.training import ModelConfig
from service.schemas import JobTraining, Name, ResourceId, Seed, SolutionOut

STUDY_STRATEGIES = ("exhaustive", "pairwise", "esa", "adaptive")
#: the largest magnitude of a reported value
MAX_VALUE = 1e6
#: most tasks a study may have (the pairwise strategy's bound; the others accept fewer)
MAX_STUDY_TASKS = 40

Value = Annotated[float, Field(ge=-MAX_VALUE, le=MAX_VALUE, allow_inf_nan=False)]
Cost = Annotated[float, Field(gt=0, le=1000, allow_inf_nan=False)]
Budget = Annotated[float, Field(gt=0, le=1e6, allow_inf_nan=False)]
TrialState = Literal["waiting", "running", "succeeded", "failed"]


class StudyCosts(BaseModel):
    """Inference cost of each network size, in any unit the budgets use."""

    model_config = ConfigDict(extra="forbid")

    full: Cost = 1.0
    half: Cost = 0.5


class StudyCreate(BaseModel):
    """A study: the networks its ``strategy`` picks on ``tasks`` (``exhaustive``: every task set;
    ``pairwise``: singles and pairs, 3+-task networks predicted by Standley's HOA; ``esa``: every task
    set for ``esa_epochs``; ``adaptive``: pairs first, then in rounds the networks its selections at
    ``budgets`` rely on), trained by callers who ask for trials and tell their values
    (``execution: external``), or trained by the workers (``builtin``: each trial a task on the training
    queue, the surrogate ``model`` trained with ``training`` on the built-in ``dataset``, every network
    seeded with ``seed``). ``value_kind``: ``loss`` (minimised) or ``score`` (maximised, e.g. gains)."""

    model_config = ConfigDict(extra="forbid")

    name: Name = "study"
    tasks: list[Name] = Field(min_length=1, max_length=MAX_STUDY_TASKS)
    strategy: Literal["exhaustive", "pairwise", "esa", "adaptive"] = "exhaustive"
    execution: Literal["external", "builtin"] = "external"
    dataset: Name | None = Field(None, description="builtin only: the built-in dataset to train on")
    dataset_options: dict[str, Any] | None = Field(
        None, description="builtin only: the built-in dataset's options (e.g. synthetic's n_clusters)")
    model: ModelConfig | None = Field(None, description="builtin only (default: the library's)")
    training: JobTraining | None = Field(None, description="builtin only (its seed is the study's)")
    value_kind: Literal["loss", "score"] = "loss"
    costs: StudyCosts = Field(default_factory=StudyCosts)
    half_singletons: bool = Field(False, description="add a half-size single-task network per task")
    budgets: list[Budget] | None = Field(
        None, min_length=1, description="budgets the adaptive strategy aims at (default 1, 2, … n full "
        "networks' cost, in halves with half_singletons); at most max_budgets")
    seed: Seed = 0
    esa_epochs: int | None = Field(None, ge=1, le=10_000, description="epochs of each esa trial")
    lease_seconds: float = Field(300.0, ge=1, le=86_400, allow_inf_nan=False,
                                 description="how long an asked trial stays leased without a heartbeat")
    max_attempts: int = Field(3, ge=1, le=20, description="leases a trial may lose before it fails")


class StudyProgress(BaseModel):
    waiting: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    total: int = 0


class StudyOut(BaseModel):
    id: str
    name: str
    tasks: list[str]
    strategy: str
    execution: str
    value_kind: str
    costs: StudyCosts
    half_singletons: bool
    budgets: list[float]
    seed: int
    lease_seconds: float
    max_attempts: int
    state: Literal["running", "complete"] = Field(
        description="complete: every trial ended and the strategy wants no more")
    rounds: int = Field(description="rounds of trials the strategy has planned (1 except for adaptive)")
    progress: StudyProgress
    created_at: datetime
    finished_at: datetime | None = None
    links: dict[str, str]


class StudyPage(BaseModel):
    items: list[StudyOut]
    total: int
    limit: int
    offset: int
    next: str | None = Field(None, description="the URL of the next page, if any")


class TrialOut(BaseModel):
    id: str
    study_id: str
    number: int
    round: int
    tasks: list[str] = Field(description="the tasks the network trains on, in the study's order")
    size: Literal["full", "half"]
    seed: int
    epochs: int | None = Field(None, description="epochs to train (esa), else the caller's own")
    state: TrialState
    attempts: int
    lease: str | None = Field(None, description="the current lease (only in the answer to ask): "
                              "send it with heartbeat and tell")
    lease_expires_at: datetime | None = None
    worker: str | None = None
    val: dict[str, float] | None = None
    test: dict[str, float] | None = None
    epochs_run: int | None = None
    cost: float | None = None
    seconds: float | None = None
    error: dict | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    checkpoint_epoch: int | None = Field(None, description="builtin: the epoch of the trial's stored "
                                         "checkpoint (removed when the trial ends)")
    resumed_from_epoch: int | None = Field(None, description="builtin: the epoch the current (or last) "
                                           "attempt resumed from, after a lost attempt's checkpoint")


class TrialPage(BaseModel):
    items: list[TrialOut]
    total: int
    limit: int
    offset: int
    next: str | None = None


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    worker: Name | None = Field(None, description="who trains the trial (shown in the trial)")


class LeaseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lease: ResourceId = Field(description="the lease the ask answer carried")


class TellRequest(LeaseRequest):
    """A trial's result: per-task values on the validation split (``val``, what selection uses) and
    optionally the test split, each with exactly the tasks the network serves."""

    val: dict[str, Value] = Field(min_length=1, max_length=MAX_STUDY_TASKS,
                                  description="per task the network serves, its value")
    test: dict[str, Value] | None = Field(None, min_length=1, max_length=MAX_STUDY_TASKS)
    epochs_run: int | None = Field(None, ge=0, le=1_000_000)
    cost: float | None = Field(None, ge=0, le=1e6, allow_inf_nan=False,
                               description="measured cost (defaults to the study's cost of its size)")
    seconds: float | None = Field(None, ge=0, le=1e9, allow_inf_nan=False)


class StudyGroupingOut(SolutionOut):
    """A study's optimal grouping at one budget, solved on the trials measured so far."""

    study_id: str
    strategy: str
    solver: str
    trials: int = Field(description="the succeeded trials the answer rests on (the rest of its networks, "
                        "if any, are the strategy's predictions)")
    ended: int = Field(description="the ended trials (succeeded or failed) of the measured set it rests on")
    current: bool = Field(description="whether no trial ended since; else a newer answer is being solved")


class StudyGroupingCurve(BaseModel):
    study_id: str
    strategy: str
    solver: str
    trials: int
    ended: int
    current: bool
    curve: list[SolutionOut]
