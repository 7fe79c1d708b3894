"""What `GET /v1/trends` (and the drill-down that shares its filters) accepts and answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum

from pydantic import BaseModel, Field


class Granularity(StrEnum):
    day = "day"
    week = "week"  # ISO weeks: Monday to Sunday
    month = "month"  # calendar months


SENTIMENTS = ("negative", "neutral", "positive")
# Dimensions a query may filter on besides tenant, topic, sentiment and dates.
FILTER_DIMENSIONS = ("service", "region", "channel", "language")
GROUP_DIMENSIONS = ("tenant", "topic", "sentiment", "language", "service", "region", "channel")


@dataclass(frozen=True)
class TrendFilters:
    """Validated filters, shared by trends, alerts, reports and the drill-down.

    `tenant_ids` None reads every tenant (analysts, admins); empty tuples mean "no filter".
    Missing service / region / channel values are stored as "" and cannot be filtered on.
    """

    tenant_ids: tuple[int, ...] | None = None
    service: tuple[str, ...] = ()
    region: tuple[str, ...] = ()
    channel: tuple[str, ...] = ()
    language: tuple[str, ...] = ()
    topic: tuple[str, ...] = ()
    sentiment: tuple[str, ...] = ()
    date_from: date | None = None
    date_to: date | None = None

    def values(self, dimension: str) -> tuple[str, ...]:
        values: tuple[str, ...] = getattr(self, dimension)
        return values


@dataclass(frozen=True)
class TrendQuery:
    filters: TrendFilters
    granularity: Granularity = Granularity.week
    group_by: tuple[str, ...] = field(default_factory=tuple)


class SentimentShares(BaseModel):
    negative: float
    neutral: float
    positive: float


class Counts(BaseModel):
    """Counts behind every number: shares and the index are computed from them."""

    count: int = Field(description="Complaints (or complaint-topic pairs, see `unit`)")
    negative: int
    neutral: int
    positive: int
    shares: SentimentShares | None = Field(
        description="Share of each sentiment (sums to 1); null when count is 0"
    )
    experience_index: float | None = Field(
        description="Share positive minus share negative, in [-1, 1]; null when count is 0"
    )


class TrendPoint(Counts):
    period: date = Field(description="First day of the period (a Monday for weeks)")
    group: dict[str, str | None] = Field(
        default_factory=dict,
        description="The group's value per `group_by` dimension; null = not given at upload",
    )


class GroupTotal(Counts):
    group: dict[str, str | None]


class EchoedFilters(BaseModel):
    tenant: str | None
    service: list[str]
    region: list[str]
    channel: list[str]
    language: list[str]
    topic: list[str]
    sentiment: list[str]


class TrendsResponse(BaseModel):
    granularity: Granularity
    date_from: date | None = Field(alias="from")
    date_to: date | None = Field(alias="to")
    filters: EchoedFilters
    group_by: list[str]
    unit: str = Field(
        description="`complaints`, or `complaint_topics` when grouped by topic (a complaint "
        "with two topics counts once in each)"
    )
    source: str = Field(description="Which rollup answered: `cube:<level>` or `rollups`")
    periods: list[date] = Field(description="Every period of the range, empty ones included")
    series: list[TrendPoint] = Field(description="Non-empty (period, group) cells, in order")
    groups: list[GroupTotal] = Field(description="Totals per group over the range, largest first")
    totals: Counts
