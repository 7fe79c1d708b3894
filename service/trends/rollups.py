"""Set-based rollup maintenance: one INSERT ... SELECT ... ON CONFLICT per chunk."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Date, Select, cast, delete, func, literal, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from service.complaints.models import Analysis, AnalysisTopic, Complaint
from service.trends.cube import apply_cube, rebuild_cube
from service.trends.models import ALL_TOPICS, NONE, Rollup

KEY_COLUMNS = ("tenant_id", "day", "topic", "sentiment", "language", "service", "region", "channel")
VALUE_COLUMNS = ("count", "positive_score_sum", "negative_score_sum")


def _day(session: Session) -> ColumnElement[Any]:
    if session.get_bind().dialect.name == "sqlite":
        return func.date(Complaint.received_at)
    return cast(func.timezone("UTC", Complaint.received_at), Date)


def _score(label: str) -> ColumnElement[Any]:
    if_json = Analysis.sentiment_scores[label]
    return func.coalesce(if_json.as_float(), 0.0)


def _grouped(session: Session, topic: Any, with_topics: bool) -> Select[Any]:
    day = _day(session)
    dims = [
        Complaint.tenant_id,
        day,
        topic,
        Analysis.sentiment,
        Analysis.language,
        func.coalesce(Complaint.service, NONE),
        func.coalesce(Complaint.region, NONE),
        func.coalesce(Complaint.channel, NONE),
    ]
    query = select(
        *dims,
        func.count(),
        func.sum(_score("positive")),
        func.sum(_score("negative")),
    ).join(Complaint, Complaint.id == Analysis.complaint_id)
    if with_topics:
        query = query.join(AnalysisTopic, AnalysisTopic.analysis_id == Analysis.id)
    # Ordered by the key, so concurrent workers take row locks in one order (no deadlocks).
    return query.group_by(*dims).order_by(*dims)


def _upsert(session: Session, query: Select[Any]) -> None:
    dialect = session.get_bind().dialect.name
    insert_fn = sqlite.insert if dialect == "sqlite" else postgresql.insert
    statement = insert_fn(Rollup).from_select([*KEY_COLUMNS, *VALUE_COLUMNS], query)
    statement = statement.on_conflict_do_update(
        index_elements=list(KEY_COLUMNS),
        set_={
            name: getattr(Rollup, name) + getattr(statement.excluded, name)
            for name in VALUE_COLUMNS
        },
    )
    session.execute(statement)


def apply_rollups(session: Session, analysis_ids: Sequence[int]) -> None:
    """Add freshly written analyses to the rollups, in the transaction that wrote them."""
    if not analysis_ids:
        return
    ids = list(analysis_ids)
    totals = _grouped(session, literal(ALL_TOPICS), with_topics=False).where(Analysis.id.in_(ids))
    per_topic = _grouped(session, AnalysisTopic.topic, with_topics=True).where(Analysis.id.in_(ids))
    _upsert(session, totals)
    _upsert(session, per_topic)
    apply_cube(session, ids)


def rebuild_rollups(session: Session, *, tenant_id: int) -> None:
    """Recount a tenant's rollups from its analyses (after a purge, or to verify)."""
    session.execute(delete(Rollup).where(Rollup.tenant_id == tenant_id))
    latest = (
        select(func.max(Analysis.id))
        .where(Analysis.tenant_id == tenant_id)
        .group_by(Analysis.complaint_id)
        .scalar_subquery()
    )
    _upsert(
        session,
        _grouped(session, literal(ALL_TOPICS), with_topics=False).where(Analysis.id.in_(latest)),
    )
    _upsert(
        session,
        _grouped(session, AnalysisTopic.topic, with_topics=True).where(Analysis.id.in_(latest)),
    )
    rebuild_cube(session, tenant_id=tenant_id)
