"""Schemas for reading complaints and correcting their labels."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from service.batches.schemas import SentimentPublic, TopicPublic

SentimentLabel = Literal["negative", "neutral", "positive"]


class ComplaintPublic(BaseModel):
    id: int
    external_id: str | None
    batch_id: str
    text: str = Field(description="Redacted text")
    redactions: list[str]
    channel: str | None
    service: str | None
    region: str | None
    received_at: datetime
    metadata: dict[str, Any]
    status: str
    language: str | None
    script: str | None
    language_mix: list[str]
    sentiment: SentimentPublic | None
    topics: list[TopicPublic]
    model_version: str | None
    corrected_sentiment: SentimentLabel | None = None
    corrected_topics: list[str] | None = None


class LabelCorrectionIn(BaseModel):
    sentiment: SentimentLabel | None = Field(default=None, description="The right sentiment")
    topics: list[str] | None = Field(
        default=None, max_length=20, description="The right topic ids (replaces the set)"
    )
    note: str | None = Field(default=None, max_length=1000)

    @model_validator(mode="after")
    def _needs_something(self) -> LabelCorrectionIn:
        if self.sentiment is None and self.topics is None:
            raise ValueError("give `sentiment`, `topics` or both")
        return self


class LabelCorrectionPublic(BaseModel):
    complaint_id: int
    sentiment: SentimentLabel | None
    topics: list[str] | None
    corrected_by: int = Field(description="API key id of the analyst")
    corrected_at: datetime
