"""Trend queries over the rollups: one SQL GROUP BY per request, never a scan of complaints.

Each query is answered by the smallest table that holds what it needs (an aggregate navigator):
the cube level for the one dimension it filters or groups on, else the detail `rollups`.
Periods are computed in SQL with each dialect's own date functions (ISO weeks, calendar months).
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, replace
from datetime import date, timedelta
from functools import lru_cache
from typing import Any, NamedTuple

from sqlalchemy import Engine, Select, case, func, literal, select, union_all
from sqlalchemy.orm import Session

from service.tenants.models import Tenant
from service.trends.cube import (
    CUBE_DIMENSIONS,
    NO_DIMENSION,
    TrendCube,
    bucket_start,
    cube_exists,
    data_revision,
    level_name,
)
from service.trends.models import ALL_TOPICS, NONE, Rollup
from service.trends.schemas import (
    SENTIMENTS,
    Counts,
    Granularity,
    GroupTotal,
    TrendFilters,
    TrendQuery,
)

MAX_POINTS = 20_000


class TooManyPoints(ValueError):
    """The answer would be too large; the message says how to narrow the query."""


class Cell(NamedTuple):
    """One aggregated row: a period, the group's values, and sentiment counts."""

    period: date
    group: tuple[str | None, ...]
    negative: int
    neutral: int
    positive: int

    @property
    def total(self) -> int:
        return self.negative + self.neutral + self.positive


# --- periods -------------------------------------------------------------------------------


def period_start(day: date, granularity: Granularity) -> date:
    if granularity == Granularity.week:
        return day - timedelta(days=day.weekday())
    if granularity == Granularity.month:
        return day.replace(day=1)
    return day


def next_period(start: date, granularity: Granularity) -> date:
    if granularity == Granularity.week:
        return start + timedelta(days=7)
    if granularity == Granularity.month:
        return date(start.year + start.month // 12, start.month % 12 + 1, 1)
    return start + timedelta(days=1)


def period_end(start: date, granularity: Granularity) -> date:
    return next_period(start, granularity) - timedelta(days=1)


def previous_period(start: date, granularity: Granularity) -> date:
    return period_start(start - timedelta(days=1), granularity)


def periods_between(first: date, last: date, granularity: Granularity) -> list[date]:
    out, current = [], period_start(first, granularity)
    while current <= last:
        out.append(current)
        current = next_period(current, granularity)
    return out


def period_sql(dialect: str, day: Any, granularity: Granularity) -> Any:
    """First day of the period containing `day`, computed by the database."""
    return bucket_start(dialect, day, granularity.value)


@lru_cache(maxsize=8192)
def _parse_day(text: str) -> date:
    return date.fromisoformat(text[:10])


def as_date(value: Any) -> date:
    """SQLite answers dates as text, PostgreSQL as dates."""
    if isinstance(value, date):
        return value
    return _parse_day(str(value))


# --- counts --------------------------------------------------------------------------------


def counts_fields(negative: int, neutral: int, positive: int) -> dict[str, Any]:
    """Counts, their shares (summing to 1) and the experience index; plain JSON-ready values."""
    total = negative + neutral + positive
    if total == 0:
        shares, index = None, None
    else:
        shares = {
            "negative": round(negative / total, 4),
            "neutral": round(neutral / total, 4),
            "positive": round(positive / total, 4),
        }
        index = round((positive - negative) / total, 4)
    return {
        "count": total,
        "negative": negative,
        "neutral": neutral,
        "positive": positive,
        "shares": shares,
        "experience_index": index,
    }


def make_counts(negative: int, neutral: int, positive: int) -> Counts:
    return Counts(**counts_fields(negative, neutral, positive))


# --- the navigator ------------------------------------------------------------------------

_cube_ready: weakref.WeakKeyDictionary[Engine, bool] = weakref.WeakKeyDictionary()
_cube_lock = threading.Lock()


def cube_available(session: Session) -> bool:
    """Checked once per engine: the cube table exists once its migration has run."""
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    with _cube_lock:
        ready = _cube_ready.get(engine)
    if ready is None:
        ready = cube_exists(engine)
        with _cube_lock:
            _cube_ready[engine] = ready
    return ready


def forget_cube_state() -> None:
    """Tests and migrations: make the next query look for the cube table again."""
    with _cube_lock:
        _cube_ready.clear()


def used_dimensions(query: TrendQuery) -> list[str]:
    return [d for d in CUBE_DIMENSIONS if query.filters.values(d) or d in query.group_by]


def source_for(query: TrendQuery, *, cube: bool) -> str:
    """`cube:<level>` when one cube level answers the query, else `rollups`."""
    used = used_dimensions(query)
    if cube and len(used) <= 1:
        return f"cube:{used[0] if used else NO_DIMENSION}"
    return "rollups"


def uses_topic_rows(query: TrendQuery) -> bool:
    return bool(query.filters.topic) or "topic" in query.group_by


def cube_pieces(
    granularity: Granularity, date_from: date | None, date_to: date | None
) -> list[tuple[str, date | None, date | None]]:
    """Split a date range into (grain, first day, last day) pieces: whole weeks or months read
    from their own grain, the partial ones at either end from days."""
    if granularity == Granularity.day:
        return [("day", date_from, date_to)]
    g = granularity
    starts_aligned = date_from is None or period_start(date_from, g) == date_from
    ends_aligned = date_to is None or period_end(period_start(date_to, g), g) == date_to
    if (
        date_from is not None
        and date_to is not None
        and period_start(date_from, g) == period_start(date_to, g)
        and not (starts_aligned and ends_aligned)
    ):
        return [("day", date_from, date_to)]
    whole_from = date_from
    if date_from is not None and not starts_aligned:
        whole_from = next_period(period_start(date_from, g), g)
    whole_to = date_to
    if date_to is not None and not ends_aligned:
        whole_to = period_start(date_to, g) - timedelta(days=1)
    pieces: list[tuple[str, date | None, date | None]] = []
    if date_from is not None and whole_from is not None and whole_from > date_from:
        pieces.append(("day", date_from, whole_from - timedelta(days=1)))
    if whole_from is None or whole_to is None or whole_from <= whole_to:
        last_start = period_start(whole_to, g) if whole_to is not None else None
        pieces.append((g.value, whole_from, last_start))
    if date_to is not None and whole_to is not None and whole_to < date_to:
        pieces.append(("day", whole_to + timedelta(days=1), date_to))
    return pieces


def _cube_select(dialect: str, query: TrendQuery, dimension: str) -> tuple[Select[Any], list[str]]:
    """The cube query; the returned names say what each group column is."""
    f = query.filters
    group_names: list[str] = []
    for dim in query.group_by:
        if dim in ("tenant", "topic", *CUBE_DIMENSIONS):
            group_names.append(dim)
    column_of = {"tenant": "tenant_id", "topic": "topic", dimension: "value"}
    chosen = set(f.sentiment) or set(SENTIMENTS)

    def piece(grain: str, first: date | None, last: date | None) -> Select[Any]:
        statement = select(
            TrendCube.day,
            *(getattr(TrendCube, column_of[name]) for name in group_names),
            *(getattr(TrendCube, s) for s in SENTIMENTS),
        ).where(TrendCube.level == level_name(grain, dimension))
        if f.tenant_ids is not None:
            statement = statement.where(TrendCube.tenant_id.in_(f.tenant_ids))
        if dimension == NO_DIMENSION:
            statement = statement.where(TrendCube.value == NO_DIMENSION)
        elif f.values(dimension):
            statement = statement.where(TrendCube.value.in_(f.values(dimension)))
        narrowed = replace(query, filters=replace(f, date_from=first, date_to=last))
        return _topic_and_dates(statement, TrendCube.topic, TrendCube.day, narrowed)

    pieces = cube_pieces(query.granularity, f.date_from, f.date_to)
    rows = (
        piece(*pieces[0]).subquery("cube_rows")
        if len(pieces) == 1
        else union_all(*(piece(*p) for p in pieces)).subquery("cube_rows")
    )
    period = period_sql(dialect, rows.c.day, query.granularity).label("period")
    groups = [rows.c[column_of[name]] for name in group_names]
    sums = [func.sum(rows.c[s]) if s in chosen else literal(0) for s in SENTIMENTS]
    statement = select(period, *groups, *sums).group_by(period, *groups)
    if f.sentiment:  # cells holding only other sentiments would show up as zeros
        statement = statement.having(sum((func.sum(rows.c[s]) for s in chosen), literal(0)) > 0)
    return statement, group_names


def _rollup_select(dialect: str, query: TrendQuery) -> tuple[Select[Any], list[str]]:
    f = query.filters
    period = period_sql(dialect, Rollup.day, query.granularity).label("period")
    groups: list[tuple[str, Any]] = []
    for dim in query.group_by:
        if dim == "tenant":
            groups.append((dim, Rollup.tenant_id))
        elif dim != "sentiment":
            groups.append((dim, getattr(Rollup, dim)))
    sums = [func.sum(case((Rollup.sentiment == s, Rollup.count), else_=0)) for s in SENTIMENTS]
    statement = select(period, *(column for _, column in groups), *sums)
    if f.tenant_ids is not None:
        statement = statement.where(Rollup.tenant_id.in_(f.tenant_ids))
    for dim in CUBE_DIMENSIONS:
        if f.values(dim):
            statement = statement.where(getattr(Rollup, dim).in_(f.values(dim)))
    if f.sentiment:
        statement = statement.where(Rollup.sentiment.in_(f.sentiment))
    statement = _topic_and_dates(statement, Rollup.topic, Rollup.day, query)
    return statement.group_by(period, *(c for _, c in groups)), [n for n, _ in groups]


def _topic_and_dates(
    statement: Select[Any], topic: Any, day: Any, query: TrendQuery
) -> Select[Any]:
    f = query.filters
    if f.topic:
        statement = statement.where(topic.in_(f.topic))
    elif "topic" in query.group_by:
        statement = statement.where(topic != ALL_TOPICS)
    else:
        statement = statement.where(topic == ALL_TOPICS)
    if f.date_from is not None:
        statement = statement.where(day >= f.date_from)
    if f.date_to is not None:
        statement = statement.where(day <= f.date_to)
    return statement


def query_cells(
    session: Session, query: TrendQuery, *, use_cube: bool = True
) -> tuple[list[Cell], str]:
    """Run the one GROUP BY that answers `query`; returns its cells and the source used.
    `use_cube=False` forces the detail rollups (to check one against the other)."""
    dialect = session.get_bind().dialect.name
    if query.filters.tenant_ids is None:  # an explicit list lets every index seek by tenant
        all_ids = tuple(session.scalars(select(Tenant.id)))
        query = replace(query, filters=replace(query.filters, tenant_ids=all_ids))
    source = source_for(query, cube=use_cube and cube_available(session))
    if source.startswith("cube:"):
        statement, names = _cube_select(dialect, query, source.split(":", 1)[1])
    else:
        statement, names = _rollup_select(dialect, query)
    order = [c for c in statement.selected_columns][: 1 + len(names)]
    rows = session.execute(statement.order_by(*order).limit(MAX_POINTS + 1)).all()
    if len(rows) > MAX_POINTS:
        raise TooManyPoints(
            f"the answer would have more than {MAX_POINTS} points: use a coarser granularity, "
            "a shorter date range, more filters or fewer group_by dimensions"
        )
    tenant_names = _tenant_names(session) if "tenant" in names else {}
    n = len(names)
    cells = []
    for row in rows:  # already aggregated: at most MAX_POINTS rows
        group = tuple(
            tenant_names.get(int(v), str(v)) if name == "tenant" else (None if v == NONE else v)
            for name, v in zip(names, row[1 : 1 + n], strict=True)
        )
        cells.append(
            Cell(
                as_date(row[0]),
                group,
                int(row[n + 1] or 0),
                int(row[n + 2] or 0),
                int(row[n + 3] or 0),
            )
        )
    return _explode_sentiment(cells, names, query), source


def _explode_sentiment(cells: list[Cell], names: list[str], query: TrendQuery) -> list[Cell]:
    """Grouping by sentiment splits each cell's pivoted counts into one cell per sentiment."""
    if "sentiment" not in query.group_by:
        return cells
    position = query.group_by.index("sentiment")
    out = []
    for cell in cells:
        for sentiment in SENTIMENTS:
            n = getattr(cell, sentiment)
            if n == 0:
                continue
            group = list(cell.group)
            group.insert(position, sentiment)
            out.append(
                Cell(
                    cell.period,
                    tuple(group),
                    n if sentiment == "negative" else 0,
                    n if sentiment == "neutral" else 0,
                    n if sentiment == "positive" else 0,
                )
            )
    if len(out) > MAX_POINTS:
        raise TooManyPoints(
            f"the answer would have more than {MAX_POINTS} points: narrow the query"
        )
    return out


def _tenant_names(session: Session) -> dict[int, str]:
    return {tenant_id: name for tenant_id, name in session.execute(select(Tenant.id, Tenant.name))}


# --- assembling an answer ------------------------------------------------------------------


@dataclass
class TrendResult:
    series: list[dict[str, Any]]  # TrendPoint-shaped; plain dicts (thousands of points)
    groups: list[GroupTotal]
    totals: Counts
    periods: list[date]
    source: str


def trends_revision(session: Session, filters: TrendFilters) -> tuple[int, ...] | None:
    """The data revision of the tenants `filters` reads (every tenant when None), for the
    trends cache; None without the cube table (an older schema): then nothing is cached."""
    if not cube_available(session):
        return None
    tenant_ids = filters.tenant_ids
    if tenant_ids is None:
        tenant_ids = tuple(session.scalars(select(Tenant.id)))
    return data_revision(session, tenant_ids)


def compute_trends(session: Session, query: TrendQuery, *, use_cube: bool = True) -> TrendResult:
    cells, source = query_cells(session, query, use_cube=use_cube)  # by period, then group
    names = list(query.group_by)
    series = []
    by_group: dict[tuple[str | None, ...], list[int]] = {}
    negative_total = neutral_total = positive_total = 0
    for c in cells:
        series.append(
            {
                "period": c.period.isoformat(),
                "group": dict(zip(names, c.group, strict=True)),
                **counts_fields(c.negative, c.neutral, c.positive),
            }
        )
        sums = by_group.get(c.group)
        if sums is None:
            by_group[c.group] = [c.negative, c.neutral, c.positive]
        else:
            sums[0] += c.negative
            sums[1] += c.neutral
            sums[2] += c.positive
        negative_total += c.negative
        neutral_total += c.neutral
        positive_total += c.positive
    groups = sorted(
        (
            GroupTotal(group=dict(zip(names, key, strict=True)), **counts_fields(*sums))
            for key, sums in by_group.items()
        ),
        key=lambda g: -g.count,
    )
    f = query.filters
    first = f.date_from or (min(c.period for c in cells) if cells else None)
    last = f.date_to or (max(c.period for c in cells) if cells else None)
    periods = (
        periods_between(first, last, query.granularity) if first and last and first <= last else []
    )
    return TrendResult(
        series=series,
        groups=groups if names else [],
        totals=make_counts(negative_total, neutral_total, positive_total),
        periods=periods,
        source=source,
    )
