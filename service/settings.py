"""Configuration from the environment (``TASKGROUPER_*``), read with pydantic-settings.

With nothing set, taskgrouper runs *embedded*: a SQLite file under :attr:`Settings.home` and an
in-process job runner. Setting ``TASKGROUPER_BROKER_URL`` switches job execution to Celery workers
(server mode); ``TASKGROUPER_DATABASE_URL`` points persistence at PostgreSQL.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

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
    max_upload_bytes: int = Field(512 * 1024 * 1024, ge=1)
    solve_time_limit: float = Field(60.0, gt=0, description="seconds a single grouping solve may take")
    default_project: str = "default"

    @field_validator("database_url", "broker_url", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def embedded(self) -> bool:
        """True when jobs run in-process (no broker configured)."""
        return self.broker_url is None

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
