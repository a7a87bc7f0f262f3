"""Configuration from the environment (``TASKGROUPER_*``), read with pydantic-settings.

With nothing set, taskgrouper runs *embedded*: a SQLite file under :attr:`Settings.home` and an
in-process job runner. Setting ``TASKGROUPER_BROKER_URL`` switches job execution to Celery workers
(server mode); ``TASKGROUPER_DATABASE_URL`` points persistence at PostgreSQL.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_home() -> Path:
    return Path(platformdirs.user_data_dir("taskgrouper", appauthor=False))


class Settings(BaseSettings):
    """Every knob of the service; each field is read from ``TASKGROUPER_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="TASKGROUPER_", extra="ignore")

    home: Path = Field(
        default_factory=_default_home, description="embedded DB, uploads, checkpoints, reports"
    )
    database_url: str | None = Field(None, description="SQLAlchemy URL; default: SQLite under home")
    broker_url: str | None = Field(None, description="Celery broker (Redis) URL; unset: in-process runner")
    training_queue: str = "training"
    solve_queue: str = "solve"
    embedded_workers: int = Field(1, ge=1, description="threads running jobs in embedded mode")
    progress_interval: float = Field(1.0, ge=0.0, description="seconds between progress writes of a job")
    visibility_timeout: int = Field(
        12 * 3600, ge=60, description="seconds before Redis redelivers an unacked job"
    )
    max_upload_bytes: int = Field(512 * 1024 * 1024, ge=1, description="largest dataset upload (413 above)")
    max_body_bytes: int = Field(
        1024 * 1024, ge=1024, description="largest request body other than an upload (413 above)"
    )
    max_dataset_rows: int = Field(
        10_000_000, ge=1, description="most rows of an uploaded dataset, read from its metadata (413 above)"
    )
    max_dataset_columns: int = Field(
        4096, ge=1, description="most columns of an uploaded dataset, read from its metadata (413 above)"
    )
    max_dataset_bytes: int = Field(
        1 << 30,
        ge=1,
        description="most bytes an uploaded dataset may decode to (numbers at their width, text at its "
        "length plus 8), estimated from its metadata before decoding (413 above)",
    )
    upload_parse_memory_bytes: int = Field(
        4 << 30,
        ge=64 << 20,
        description="address space the child process reading an upload may add after its imports "
        "(an upload that needs more is a 413 naming memory)",
    )
    upload_parse_seconds: float = Field(
        300.0,
        gt=0,
        description="seconds the child process reading an upload may run before it is killed "
        "(413 naming seconds)",
    )
    upload_parse_concurrency: int = Field(
        2, ge=1, description="upload-reading child processes one API process runs at a time (more wait)"
    )
    metrics_require_key: bool = Field(
        False,
        description="GET /metrics needs an API key where keys are required (else an anonymous scrape "
        "sees the global totals only)",
    )
    max_tasks: int = Field(64, ge=2, description="most tasks in a job, and rows of a problem's matrix")
    max_networks: int = Field(20_000, ge=1, description="most candidate networks in a posted problem")
    max_warm_start_networks: int = Field(
        265,
        ge=3,
        description="most networks a warm_start job trains (its base runs and fine-tuned copies); the "
        "default fits every subset of 8 tasks with half-size singletons (2 + 255 + 8)",
    )
    dataset_roots: list[Path] = Field(
        default_factory=list, description="directories besides the uploads a dataset file may live in"
    )
    solve_time_limit: float = Field(60.0, gt=0, description="seconds a single grouping solve may take")
    trial_checkpoint_every: int = Field(
        1, ge=1, description="a builtin study's trial stores its checkpoint every this many epochs"
    )
    trial_checkpoint_max_bytes: int = Field(
        64 * 2**20, ge=0, description="largest trial checkpoint stored (a larger one is skipped: that trial "
        "then restarts from scratch after a lost worker)"
    )
    max_budgets: int = Field(
        100, ge=1, description="most budgets one request may ask for (start:stop:step or a list)"
    )
    request_solve_seconds: float = Field(
        120.0,
        gt=0,
        description="seconds of solve time one request may use: its budgets' time limits sum to at most this",
    )
    default_project: str = Field("default", description="the project of requests without an API key")
    require_api_keys: bool | None = Field(
        None, description="unset: required in server mode (a broker or a non-SQLite database), not embedded"
    )
    rate_limit_requests: int = Field(
        1200, ge=0, description="requests per key per rate_limit_window (0: no limit); needs Redis"
    )
    rate_limit_window: int = Field(60, ge=1, description="seconds of one rate-limit window")
    rate_limit_url: str | None = Field(None, description="Redis URL of the rate limiter (default: broker)")
    heartbeat_interval: float = Field(10.0, gt=0, description="seconds between a running job's heartbeats")
    stale_after: float = Field(
        120.0, gt=0, description="a running job without a heartbeat for this long is re-enqueued"
    )
    reap_interval: float = Field(30.0, gt=0, description="seconds between a worker's stale-job sweeps")
    requeue_queued_after: float = Field(
        3600.0,
        gt=0,
        description="a job queued this long is published again (a message lost by the broker); after a "
        "restart of a Redis broker, the jobs queued before it are published again at the next sweep",
    )
    max_attempts: int = Field(
        3, ge=1, description="a job lost (worker died) on its n-th attempt fails instead of being rerun"
    )
    log_format: Literal["json", "text"] = Field(
        "json", description="the API's and the workers' log lines: one JSON object each, or plain text"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="least level logged")
    job_log_entries: int = Field(
        1000,
        ge=10,
        description="most log entries one attempt of a job stores (GET /jobs/{id}/logs); warnings and "
        "errors have a reserve of a tenth more",
    )

    @field_validator("database_url", "broker_url", "rate_limit_url", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def embedded(self) -> bool:
        """True when jobs run in-process (no broker configured)."""
        return self.broker_url is None

    @property
    def auth_required(self) -> bool:
        """Whether requests need an API key: ``require_api_keys`` when set, else server mode (a broker
        or a database other than SQLite)."""
        if self.require_api_keys is not None:
            return self.require_api_keys
        return not self.embedded or not self.resolved_database_url.startswith("sqlite")

    @property
    def resolved_rate_limit_url(self) -> str | None:
        """The Redis of the rate limiter: ``rate_limit_url``, else the broker's (None: no limiting)."""
        url = self.rate_limit_url or self.broker_url
        return url if url and url.startswith(("redis://", "rediss://", "unix://")) else None

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to ``sqlite:///HOME/taskgrouper.sqlite3``; a plain
        ``postgresql://`` URL is given the psycopg 3 driver."""
        url = self.database_url or f"sqlite:///{self.home / 'taskgrouper.sqlite3'}"
        for prefix in ("postgresql://", "postgres://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url[len(prefix) :]
        return url

    @property
    def datasets_dir(self) -> Path:
        return self.home / "datasets"

    @property
    def checkpoints_dir(self) -> Path:
        return self.home / "checkpoints"

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
