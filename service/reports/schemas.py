"""The manager summary report, as JSON (the HTML page renders the same object)."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field

from service.alerts.schemas import Alert
from service.trends.schemas import Counts


class ReportPeriod(BaseModel):
    kind: str = Field(description="month or week")
    label: str = Field(description="As asked: 2025-03 or 2025-W10")
    start: date
    end: date
    previous_start: date
    previous_end: date


class ThemeLine(Counts):
    topic: str
    label: str = Field(description="The topic's name in the report's language")
    share_of_complaints: float | None = Field(
        description="Share of the period's complaints that carry this topic"
    )
    previous_count: int
    change: int = Field(description="count - previous_count")
    change_ratio: float | None = Field(description="change / previous_count; null when it was 0")
    experience_index_change: float | None


class ServiceLine(Counts):
    service: str | None = Field(description="null: not given at upload")
    label: str
    previous_experience_index: float | None


class ReportAlert(Alert):
    topic_label: str = Field(description="The topic's name in the report's language")


class SummaryReport(BaseModel):
    lang: str
    dir: str = Field(description="ltr, or rtl for Arabic")
    labels: dict[str, str] = Field(description="UI strings in `lang`")
    tenant: str | None
    period: ReportPeriod
    generated_at: datetime
    totals: Counts
    previous_totals: Counts
    top_themes: list[ThemeLine]
    biggest_movers: list[ThemeLine]
    experience_by_service: list[ServiceLine]
    alerts: list[ReportAlert]
    alert_methods: dict[str, str]
