"""The trend cube: rollups re-aggregated so that dashboard queries read thousands of rows, not
millions.

The detail `rollups` table keeps every dimension, so at 1M complaints it holds about one row per
complaint (2.2M rows in the bench) and a year of one tenant means scanning hundreds of thousands
of rows. The cube keeps, per tenant × topic × period, the counts at five dimension levels: none
(`""`) and each single dimension (`language`, `service`, `region`, `channel`, its value in
`value`), sentiment pivoted into columns; and at three grains: days, ISO weeks and calendar
months (`day` holds the period's first day; `level` is `"service"` for days, `"week:service"`,
`"month:service"` for the others). A query that filters or groups on at most one of those
dimensions reads one level, whole weeks or months from their own grain and partial ones from
days; other queries fall back to `rollups` (see `service.trends.service`).

Maintained like the rollups: `apply_cube` in the transaction that writes a chunk's analyses,
`rebuild_cube` from the rollups after a purge.

Each tenant also has one revision row (`level` `"revision"`, its `count` the revision), bumped
by both in the same transaction as the counts, so readers can tell cheaply (one primary-key
read) whether anything a tenant's trends are computed from changed: `/v1/trends` reuses a
computed body until it does (`service.trends.cache`). Queries read levels by name, never this one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import (
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Select,
    String,
    Subquery,
    case,
    cast,
    delete,
    func,
    inspect,
    literal,
    select,
    union_all,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from service.complaints.models import Analysis, AnalysisTopic, Complaint
from service.core.db import Base
from service.trends.models import ALL_TOPICS, NONE, Rollup

NO_DIMENSION = ""
CUBE_DIMENSIONS = ("language", "service", "region", "channel")
DIMENSION_LEVELS = (NO_DIMENSION, *CUBE_DIMENSIONS)
GRAINS = ("day", "week", "month")
SENTIMENTS = ("negative", "neutral", "positive")
KEY_COLUMNS = ("tenant_id", "level", "value", "topic", "day")
VALUE_COLUMNS = ("count", "negative", "neutral", "positive")
REVISION_LEVEL = "revision"
REVISION_DAY = date(1970, 1, 1)


class TrendCube(Base):
    __tablename__ = "trend_cube"
    __table_args__ = (
        # Topic before value: serves "one topic (or all), any value"; the primary key serves
        # "one value, any topic". Count columns ride along so both are index-only reads.
        Index(
            "ix_trend_cube_topic",
            "tenant_id",
            "level",
            "topic",
            "value",
            "day",
            "count",
            "negative",
            "neutral",
            "positive",
        ),
        # PostgreSQL keeps rows in a heap: give the primary-key order a covering index too
        # (SQLite stores this table WITHOUT ROWID, so its primary key already covers).
        Index(
            "ix_trend_cube_value",
            "tenant_id",
            "level",
            "value",
            "topic",
            "day",
            "count",
            "negative",
            "neutral",
            "positive",
        ).ddl_if(dialect="postgresql"),
        {"sqlite_with_rowid": False},
    )

    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    level: Mapped[str] = mapped_column(String(16), primary_key=True)
    value: Mapped[str] = mapped_column(String(100), primary_key=True)
    topic: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
    negative: Mapped[int] = mapped_column(Integer, default=0)
    neutral: Mapped[int] = mapped_column(Integer, default=0)
    positive: Mapped[int] = mapped_column(Integer, default=0)


def level_name(grain: str, dimension: str) -> str:
    """`service` (days), `week:service`, `month:service`; `""`, `week:`, `month:` for none."""
    return dimension if grain == "day" else f"{grain}:{dimension}"


def bucket_start(dialect: str, day: Any, grain: str) -> Any:
    """SQL for the first day of the week (ISO, Monday) or month holding `day`."""
    if grain == "day":
        return day
    if dialect == "sqlite":
        if grain == "week":
            # 'weekday 0' moves forward to Sunday (or stays), -6 days is that week's Monday.
            return func.date(day, "weekday 0", "-6 days")
        return func.date(day, "start of month")
    return cast(func.date_trunc(grain, cast(day, DateTime(timezone=False))), Date)


def _levels() -> Subquery:
    rows = [
        select(
            literal(level_name(grain, dimension)).label("level"),
            literal(grain).label("grain"),
            literal(dimension).label("dimension"),
        )
        for grain in GRAINS
        for dimension in DIMENSION_LEVELS
    ]
    return union_all(*rows).subquery("cube_levels")


def _level_value(levels: Subquery, columns: dict[str, Any]) -> Any:
    return case(
        *((levels.c.dimension == name, columns[name]) for name in CUBE_DIMENSIONS),
        else_=literal(NO_DIMENSION),
    )


def _level_day(dialect: str, levels: Subquery, day: Any) -> Any:
    return case(
        (levels.c.grain == "week", bucket_start(dialect, day, "week")),
        (levels.c.grain == "month", bucket_start(dialect, day, "month")),
        else_=day,
    )


def _day(dialect: str) -> ColumnElement[Any]:
    if dialect == "sqlite":
        return func.date(Complaint.received_at)
    return cast(func.timezone("UTC", Complaint.received_at), Date)


def _from_analyses(dialect: str, ids: list[int], *, per_topic: bool) -> Select[Any]:
    levels = _levels()
    value = _level_value(
        levels,
        {
            "language": Analysis.language,
            "service": func.coalesce(Complaint.service, NONE),
            "region": func.coalesce(Complaint.region, NONE),
            "channel": func.coalesce(Complaint.channel, NONE),
        },
    )
    topic = AnalysisTopic.topic if per_topic else literal(ALL_TOPICS)
    day = _level_day(dialect, levels, _day(dialect))
    keys = [Complaint.tenant_id, levels.c.level, value, topic, day]
    query = (
        select(
            *keys,
            func.count(),
            *(func.sum(case((Analysis.sentiment == s, 1), else_=0)) for s in SENTIMENTS),
        )
        .select_from(Analysis)
        .join(Complaint, Complaint.id == Analysis.complaint_id)
        .join(levels, literal(True))
    )
    if per_topic:
        query = query.join(AnalysisTopic, AnalysisTopic.analysis_id == Analysis.id)
    return query.where(Analysis.id.in_(ids)).group_by(*keys)


def _upsert(session: Session, query: Select[Any]) -> None:
    dialect = session.get_bind().dialect.name
    insert_fn = sqlite.insert if dialect == "sqlite" else postgresql.insert
    statement = insert_fn(TrendCube).from_select([*KEY_COLUMNS, *VALUE_COLUMNS], query)
    statement = statement.on_conflict_do_update(
        index_elements=list(KEY_COLUMNS),
        set_={
            name: getattr(TrendCube, name) + getattr(statement.excluded, name)
            for name in VALUE_COLUMNS
        },
    )
    session.execute(statement)


def apply_cube(session: Session, analysis_ids: Sequence[int]) -> None:
    """Add freshly written analyses to the cube, in the transaction that wrote them (call it
    next to `apply_rollups`)."""
    if not analysis_ids:
        return
    dialect = session.get_bind().dialect.name
    ids = list(analysis_ids)
    _upsert(session, _from_analyses(dialect, ids, per_topic=False))
    _upsert(session, _from_analyses(dialect, ids, per_topic=True))
    _bump_revisions(session, select(Analysis.tenant_id).where(Analysis.id.in_(ids)).distinct())


def rebuild_cube(session: Session, *, tenant_id: int) -> None:
    """Recount a tenant's cube from its rollups (call it after `rebuild_rollups`)."""
    session.execute(
        delete(TrendCube).where(TrendCube.tenant_id == tenant_id, TrendCube.level != REVISION_LEVEL)
    )
    dialect = session.get_bind().dialect.name
    levels = _levels()
    value = _level_value(levels, {name: getattr(Rollup, name) for name in CUBE_DIMENSIONS})
    day = _level_day(dialect, levels, Rollup.day)
    keys = [Rollup.tenant_id, levels.c.level, value, Rollup.topic, day]
    query = (
        select(
            *keys,
            func.sum(Rollup.count),
            *(func.sum(case((Rollup.sentiment == s, Rollup.count), else_=0)) for s in SENTIMENTS),
        )
        .select_from(Rollup)
        .join(levels, literal(True))
        .where(Rollup.tenant_id == tenant_id)
        .group_by(*keys)
    )
    _upsert(session, query)
    _bump_revisions(session, select(literal(tenant_id, Integer)))


def _bump_revisions(session: Session, tenant_ids: Select[Any]) -> None:
    """Add 1 to the revision of each (distinct) tenant id `tenant_ids` selects, creating it at 1.
    Called last in a writing transaction, so the row stays locked only until its commit."""
    query = select(
        tenant_ids.subquery("revised").c[0],
        literal(REVISION_LEVEL),
        literal(NO_DIMENSION),
        literal(NO_DIMENSION),
        literal(REVISION_DAY, Date),
        literal(1),
        literal(0),
        literal(0),
        literal(0),
    ).where(literal(True))  # SQLite reads `INSERT ... SELECT ... ON CONFLICT` only with a WHERE
    _upsert(session, query)


def data_revision(session: Session, tenant_ids: Sequence[int]) -> tuple[int, ...]:
    """The (tenant id, revision) pairs of `tenant_ids`, flattened: any write to their rollups
    changes it. A tenant without data has no pair. One primary-key read per tenant."""
    statement = select(TrendCube.tenant_id, TrendCube.count).where(
        TrendCube.tenant_id.in_(tenant_ids), TrendCube.level == REVISION_LEVEL
    )
    pairs = sorted((int(t), int(c)) for t, c in session.execute(statement))
    return tuple(value for pair in pairs for value in pair)


def cube_exists(bind: Engine | Connection) -> bool:
    """Whether the database has the cube table (its migration may not have run yet)."""
    return inspect(bind).has_table(TrendCube.__tablename__)
