"""Builds the summary report from the same rollup queries as the trends and alerts."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from service.alerts.service import AlertOptions, compute_alerts
from service.dashboard.i18n import UI, direction, topic_label
from service.reports.schemas import (
    ReportAlert,
    ReportPeriod,
    ServiceLine,
    SummaryReport,
    ThemeLine,
)
from service.trends.schemas import Counts, Granularity, GroupTotal, TrendFilters, TrendQuery
from service.trends.service import compute_trends, counts_fields, next_period, previous_period

TOP = 5
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")


class BadPeriod(ValueError):
    pass


def parse_period(text: str | None, today: date | None = None) -> ReportPeriod:
    """`YYYY-MM` (a month) or `YYYY-Www` (an ISO week); default: the current month."""
    today = today or datetime.now(UTC).date()
    if not text:
        text = f"{today.year:04d}-{today.month:02d}"
    if month := _MONTH.match(text):
        year, number = int(month.group(1)), int(month.group(2))
        if not 1 <= number <= 12:
            raise BadPeriod(f"no month {number} in {text!r}: use YYYY-MM, e.g. 2025-03")
        start, kind = date(year, number, 1), Granularity.month
    elif week := _WEEK.match(text):
        try:
            start = date.fromisocalendar(int(week.group(1)), int(week.group(2)), 1)
        except ValueError as exc:
            raise BadPeriod(f"no ISO week {text!r}: use YYYY-Www, e.g. 2025-W10") from exc
        kind = Granularity.week
    else:
        raise BadPeriod(f"period {text!r} is neither YYYY-MM (a month) nor YYYY-Www (ISO week)")
    previous = previous_period(start, kind)
    return ReportPeriod(
        kind=kind.value,
        label=text,
        start=start,
        end=next_period(start, kind) - timedelta(days=1),
        previous_start=previous,
        previous_end=start - timedelta(days=1),
    )


def _counts(total: Counts | GroupTotal | None) -> dict[str, Any]:
    if total is None:
        return counts_fields(0, 0, 0)
    return counts_fields(total.negative, total.neutral, total.positive)


def _totals(session: Session, filters: TrendFilters, g: Granularity) -> Counts:
    return compute_trends(session, TrendQuery(filters, g)).totals


def _by(
    session: Session, filters: TrendFilters, g: Granularity, dim: str
) -> dict[str | None, GroupTotal]:
    result = compute_trends(session, TrendQuery(filters, g, (dim,)))
    return {group.group[dim]: group for group in result.groups}


def build_report(
    session: Session,
    *,
    filters: TrendFilters,
    tenant_name: str | None,
    period: ReportPeriod,
    lang: str,
) -> SummaryReport:
    g = Granularity(period.kind)
    now_f = replace(filters, date_from=period.start, date_to=period.end)
    before_f = replace(filters, date_from=period.previous_start, date_to=period.previous_end)
    totals, previous_totals = _totals(session, now_f, g), _totals(session, before_f, g)
    topics_now, topics_before = _by(session, now_f, g, "topic"), _by(session, before_f, g, "topic")

    lines = []
    for topic in set(topics_now) | set(topics_before):
        if topic is None:
            continue
        now, before = topics_now.get(topic), topics_before.get(topic)
        count = now.count if now else 0
        previous = before.count if before else 0
        index_now = now.experience_index if now else None
        index_before = before.experience_index if before else None
        lines.append(
            ThemeLine(
                topic=topic,
                label=topic_label(topic, lang),
                share_of_complaints=round(count / totals.count, 4) if totals.count else None,
                previous_count=previous,
                change=count - previous,
                change_ratio=round((count - previous) / previous, 4) if previous else None,
                experience_index_change=(
                    round(index_now - index_before, 4)
                    if index_now is not None and index_before is not None
                    else None
                ),
                **_counts(now),
            )
        )
    top = sorted((t for t in lines if t.count), key=lambda t: (-t.count, t.topic))[:TOP]
    movers = sorted((t for t in lines if t.change), key=lambda t: (-abs(t.change), t.topic))[:TOP]

    services_now, services_before = (
        _by(session, now_f, g, "service"),
        _by(session, before_f, g, "service"),
    )
    services = [
        ServiceLine(
            service=name,
            label=name if name is not None else UI[lang]["not_given"],
            previous_experience_index=(
                services_before[name].experience_index if name in services_before else None
            ),
            **_counts(group),
        )
        for name, group in sorted(services_now.items(), key=lambda kv: (-kv[1].count, kv[0] or ""))
    ]

    alerts, _, _ = compute_alerts(
        session,
        filters=replace(filters, date_from=None, date_to=None),
        period=period.start,
        options=AlertOptions(granularity=g),
    )
    return SummaryReport(
        lang=lang,
        dir=direction(lang),
        labels=UI[lang],
        tenant=tenant_name,
        period=period,
        generated_at=datetime.now(UTC).replace(microsecond=0),
        totals=totals,
        previous_totals=previous_totals,
        top_themes=top,
        biggest_movers=movers,
        experience_by_service=services,
        alerts=[
            ReportAlert(**a.model_dump(), topic_label=topic_label(a.topic, lang))
            for a in alerts.alerts
        ],
        alert_methods=alerts.methods,
    )
