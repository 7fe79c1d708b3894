"""One `Settings` object for the whole service, read from `SAWT_*` environment variables."""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Self

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[2]
DEV_SECRET = "development-secret-change-me"


class Environment(StrEnum):
    development = "development"
    test = "test"
    production = "production"


class JobRunnerKind(StrEnum):
    inprocess = "inprocess"
    celery = "celery"


class EncoderBackend(StrEnum):
    onnx_int8 = "onnx-int8"
    onnx_fp32 = "onnx-fp32"
    torch = "torch"
    none = "none"


class Settings(BaseSettings):
    """Embedded defaults (SQLite file, in-process worker, shipped models) need no variable set."""

    model_config = SettingsConfigDict(env_prefix="SAWT_", env_file=".env", extra="ignore")

    environment: Environment = Environment.development
    database_url: str = Field(
        default=f"sqlite:///{REPO_ROOT / 'var' / 'sawt.db'}",
        description="SQLAlchemy URL; postgresql+psycopg://... in production",
    )
    secret_key: str = Field(
        default=DEV_SECRET,
        description="Pepper mixed into API-key hashes; must be set in production",
    )
    model_dir: Path | None = Field(
        default=None, description="Model registry root; default: the shipped models/artifacts"
    )
    cache_dir: Path = Field(default=REPO_ROOT / ".cache", description="Rebuilt encoder lives here")
    encoder: EncoderBackend = Field(
        default=EncoderBackend.onnx_int8,
        description="Serving backend of the multilingual encoder; `none` stores no embeddings",
    )
    encoder_threads: int | None = Field(default=None, ge=1, description="Default: all cores")
    encoder_parallel_batches: bool = Field(
        default=True,
        description=(
            "ONNX: run length buckets side by side, one core each (more texts/s for batches); "
            "false runs one at a time on every core (a one-text request a few ms faster)"
        ),
    )
    job_runner: JobRunnerKind = JobRunnerKind.inprocess
    broker_url: str = "redis://127.0.0.1:6379/0"
    result_backend_url: str | None = Field(
        default=None, description="Celery result backend; default: the broker URL"
    )
    broker_visibility_timeout: int = Field(
        default=300,
        ge=2,
        description="Seconds before a chunk taken by a worker that died is redelivered "
        "(Redis transport); must exceed the slowest chunk's processing time",
    )
    worker_chunk_size: int = Field(default=256, ge=1, le=10_000)
    worker_nice: int = Field(
        default=10,
        ge=0,
        le=19,
        description="Niceness a `sawt worker` adds to itself at start: on shared cores the "
        "kernel then serves interactive reads (API, database) before background analysis",
    )
    trends_cache_seconds: float = Field(
        default=30.0,
        ge=0,
        description="Longest an API process reuses a computed `/v1/trends` body; a body is "
        "recomputed as soon as its tenants' data revision changes (every analysed chunk, every "
        "purge), this bounds staleness from any other change; 0 turns the cache off",
    )
    max_upload_bytes: int = Field(default=100 * 1024 * 1024, ge=1024)
    max_batch_rows: int = Field(default=100_000, ge=1)
    max_analyze_texts: int = Field(default=100, ge=1)
    results_page_max: int = Field(default=1000, ge=1)
    rate_limit_per_minute: int = Field(
        default=600, ge=0, description="Requests per minute per API key; 0 turns limits off"
    )
    rate_limit_burst: int = Field(
        default=120, ge=1, description="Requests a key may send at once before being paced"
    )
    cors_origins: list[str] = Field(default_factory=list, description="CORS closed by default")
    auto_migrate: bool = Field(
        default=True,
        description="Create/upgrade an embedded SQLite schema at start (development only)",
    )
    log_level: str = "INFO"
    log_format: str = Field(default="json", pattern="^(json|text)$", description="json | text")

    @model_validator(mode="after")
    def _refuse_unsafe_defaults(self) -> Self:
        if self.environment == Environment.production:
            if self.secret_key == DEV_SECRET:
                raise ValueError("SAWT_SECRET_KEY must be set to a secret value in production")
            if self.auto_migrate:
                self.auto_migrate = False
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    return Settings()
