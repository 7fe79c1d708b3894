"""Pydantic schemas at the batch API's edge."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class RowErrorPublic(BaseModel):
    row: int | None = Field(
        description="1-based data row (CSV line after the header, JSON array index + 1, JSONL "
        "line); null for an error about the whole upload or its header"
    )
    field: str | None = Field(description="The offending field or column, when there is one")
    message: str = Field(description="What is wrong and how to fix it")


class BatchAccepted(BaseModel):
    id: str = Field(description="Batch id, for GET /v1/batches/{id}")
    status: str = Field(description="queued | processing | done")
    rows_received: int = Field(description="Rows found in the upload, valid or not")
    accepted: int = Field(description="Valid rows stored for analysis (duplicates included)")
    rejected: int = Field(description="Rows refused; each has an entry in `errors`")
    duplicates: int = Field(
        description="Accepted rows whose (tenant, external id) already existed: linked, not copied"
    )
    errors: list[RowErrorPublic] = Field(description="Per-row and header errors")
    replayed: bool = Field(
        default=False, description="True when an Idempotency-Key matched an earlier POST"
    )


class BatchProgress(BaseModel):
    total: int = Field(description="Complaints in the batch (accepted rows)")
    done: int = Field(description="Analysed")
    failed: int = Field(description="Analysis failed; see results for each error")
    pending: int = Field(description="Waiting for analysis")


class BatchStatusPublic(BaseModel):
    id: str
    status: str = Field(description="queued | processing | done")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    source_format: str = Field(description="json | jsonl | csv")
    rows_received: int
    accepted: int
    rejected: int
    duplicates: int
    progress: BatchProgress
    errors: list[RowErrorPublic] = Field(description="Per-row errors found at upload")


class SentimentPublic(BaseModel):
    label: str = Field(description="negative | neutral | positive")
    scores: dict[str, float] = Field(description="Calibrated probability per label")


class TopicPublic(BaseModel):
    id: str = Field(description="Taxonomy topic id, e.g. delays")
    score: float = Field(description="Score in [0, 1]; topics are listed above their threshold")


class ResultRow(BaseModel):
    row: int = Field(description="The row of the upload")
    complaint_id: int
    external_id: str | None
    status: str = Field(description="pending | analysed | failed")
    duplicate: bool
    text: str = Field(description="Redacted text (the raw text is never stored)")
    redactions: list[str] = Field(description="Kinds of personal data redacted")
    language: str | None = Field(description="ar | ary | ary-Latn | fr | en | zgh | und")
    script: str | None = Field(description="Arab | Latn | Tfng | Zyyy")
    language_mix: list[str] = Field(description="Languages present when code-switched")
    sentiment: SentimentPublic | None
    topics: list[TopicPublic]
    model_version: str | None
    error: str | None = Field(description="Why the analysis failed, when it did")


class ResultsPage(BaseModel):
    items: list[ResultRow]
    next_after: int | None = Field(description="Pass as `after` for the next page; null at the end")
