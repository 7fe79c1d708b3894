"""The drill-down: analysed complaints matching the trends' filters, newest first, a page at a
time (keyset pagination, so page 1,000 costs what page 1 costs)."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.orm import Session

from service.complaints.models import Analysis, AnalysisTopic, Complaint
from service.trends.schemas import TrendFilters


class BadCursor(ValueError):
    pass


@dataclass(frozen=True)
class Cursor:
    """Where a page ended: the last row's (received_at, id)."""

    received_at: datetime
    complaint_id: int

    def encode(self) -> str:
        raw = f"{self.received_at.isoformat()}|{self.complaint_id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
            stamp, complaint_id = raw.rsplit("|", 1)
            received = datetime.fromisoformat(stamp)
            return cls(
                received if received.tzinfo else received.replace(tzinfo=UTC), int(complaint_id)
            )
        except (ValueError, UnicodeDecodeError, binascii.Error) as exc:
            raise BadCursor("invalid cursor: pass back `next_cursor` exactly as received") from exc


@dataclass(frozen=True)
class ListedComplaint:
    complaint: Complaint
    analysis: Analysis


def day_start(day: Any) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def filtered_complaints(filters: TrendFilters) -> Any:
    """SELECT complaint, latest analysis WHERE the trends' filters hold (no order, no limit)."""
    latest = (
        select(func.max(Analysis.id))
        .where(Analysis.complaint_id == Complaint.id)
        .correlate(Complaint)
        .scalar_subquery()
    )
    query = select(Complaint, Analysis).join(Analysis, Analysis.id == latest)
    if filters.tenant_ids is not None:
        query = query.where(Complaint.tenant_id.in_(filters.tenant_ids))
    if filters.date_from is not None:
        query = query.where(Complaint.received_at >= day_start(filters.date_from))
    if filters.date_to is not None:
        query = query.where(Complaint.received_at < day_start(filters.date_to + timedelta(days=1)))
    for name in ("service", "region", "channel"):
        if filters.values(name):
            query = query.where(getattr(Complaint, name).in_(filters.values(name)))
    if filters.language:
        query = query.where(Analysis.language.in_(filters.language))
    if filters.sentiment:
        query = query.where(Analysis.sentiment.in_(filters.sentiment))
    if filters.topic:
        query = query.where(
            exists().where(
                AnalysisTopic.analysis_id == Analysis.id, AnalysisTopic.topic.in_(filters.topic)
            )
        )
    return query


def list_complaints(
    session: Session,
    *,
    filters: TrendFilters,
    limit: int = 50,
    after: Cursor | None = None,
) -> tuple[list[ListedComplaint], Cursor | None]:
    """One page, newest first; the cursor is None on the last page."""
    query = filtered_complaints(filters)
    if after is not None:
        query = query.where(
            or_(
                Complaint.received_at < after.received_at,
                and_(
                    Complaint.received_at == after.received_at,
                    Complaint.id < after.complaint_id,
                ),
            )
        )
    query = query.order_by(Complaint.received_at.desc(), Complaint.id.desc()).limit(limit + 1)
    rows = [ListedComplaint(c, a) for c, a in session.execute(query).all()]
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last = rows[-1].complaint
    return rows, Cursor(last.received_at, last.id)
