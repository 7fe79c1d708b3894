"""What `GET /v1/alerts` answers: each alert with the numbers and complaints behind it."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from service.trends.schemas import Granularity


class AlertKind(StrEnum):
    volume_spike = "volume_spike"
    sentiment_drop = "sentiment_drop"
    new_theme = "new_theme"


class SampleComplaint(BaseModel):
    id: int
    text: str = Field(description="Redacted text")
    received_at: datetime
    sentiment: str | None
    language: str | None


class HistoryPoint(BaseModel):
    period: date
    count: int
    negative: int


class Evidence(BaseModel):
    count: int = Field(description="Complaints in the period (for the topic, or all)")
    negative: int | None = Field(description="Negative complaints in the period")
    history: list[HistoryPoint] = Field(description="The periods compared against, oldest first")
    history_count: int
    history_negative: int
    samples: list[SampleComplaint] = Field(description="Up to 5 complaints behind the alert")
    keywords: list[str] = Field(default_factory=list, description="new_theme: its top words")
    theme_id: str | None = Field(default=None, description="new_theme: discovery's theme id")
    suggested_topic: str | None = Field(
        default=None, description="new_theme: the nearest taxonomy topic, or 'new'"
    )


class Alert(BaseModel):
    kind: AlertKind
    tenant: str | None
    topic: str | None = Field(description="Taxonomy topic id; null = all complaints")
    period: date = Field(description="First day of the period tested")
    period_end: date
    observed: float = Field(description="volume_spike: count; sentiment_drop: share negative")
    expected: float = Field(description="The history's mean count, or its share negative")
    p_value: float | None
    z: float | None = Field(default=None, description="sentiment_drop: the z statistic")
    method: str
    evidence: Evidence


class AlertsResponse(BaseModel):
    granularity: Granularity
    period: date | None = Field(description="The period tested; null when there is no data")
    period_end: date | None
    history_periods: int
    sensitivity: float = Field(description="Chance of any false alarm in this answer")
    tests_run: int
    per_test_threshold: float = Field(description="sensitivity / tests_run (Bonferroni)")
    methods: dict[str, str]
    alerts: list[Alert] = Field(description="Most significant first")
