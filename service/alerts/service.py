"""Alerts: each topic (and all complaints) in the latest period against its own history.

Counts come from the rollups (two GROUP BYs: per tenant × period × topic, and per tenant ×
period), the tests from `service.alerts.stats`, and a handful of sample complaints per alert
from the drill-down query. History periods before a tenant's first data are left out, so a
new tenant is not compared with months of zeros.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from service.alerts.schemas import (
    Alert,
    AlertKind,
    AlertsResponse,
    Evidence,
    HistoryPoint,
    SampleComplaint,
)
from service.alerts.stats import (
    DROP_METHOD,
    SPIKE_METHOD,
    bonferroni_threshold,
    sentiment_drop_test,
    volume_spike_test,
)
from service.complaints.listing import filtered_complaints
from service.complaints.models import Analysis, Complaint
from service.tenants.models import Tenant
from service.trends.models import ALL_TOPICS, Rollup
from service.trends.schemas import Granularity, TrendFilters, TrendQuery
from service.trends.service import (
    period_end,
    period_start,
    previous_period,
    query_cells,
)

MIN_HISTORY = 3


@dataclass(frozen=True)
class AlertOptions:
    granularity: Granularity = Granularity.week
    history: int = 8
    sensitivity: float = 0.01
    min_count: int = 5
    min_delta: float = 0.05
    samples: int = 5


@dataclass
class _Series:
    counts: dict[date, int]
    negatives: dict[date, int]


def latest_day(session: Session, tenant_ids: Sequence[int] | None) -> date | None:
    """The last day with data in scope (index seek on the rollups, per tenant)."""
    query = select(func.max(Rollup.day)).where(Rollup.topic == ALL_TOPICS)
    if tenant_ids is not None:
        query = query.where(Rollup.tenant_id.in_(tenant_ids))
    value = session.scalar(query)
    if value is None:
        return None
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def history_periods(target: date, granularity: Granularity, count: int) -> list[date]:
    starts, current = [], target
    for _ in range(count):
        current = previous_period(current, granularity)
        starts.append(current)
    return starts[::-1]


def load_samples(
    session: Session,
    filters: TrendFilters,
    *,
    limit: int,
) -> list[SampleComplaint]:
    query = (
        filtered_complaints(filters)
        .order_by(Complaint.received_at.desc(), Complaint.id.desc())
        .limit(limit)
    )
    return [_sample(c, a) for c, a in session.execute(query).all()]


def samples_by_id(
    session: Session, ids: Sequence[str], tenant_ids: Sequence[int]
) -> list[SampleComplaint]:
    """Complaints named by a discovery theme (by id or external id), re-read from the database
    so that only redacted text from the caller's tenants is shown."""
    if not ids or not tenant_ids:
        return []
    numeric = [int(i) for i in ids if i.isdigit()]
    query = (
        select(Complaint, Analysis)
        .outerjoin(Analysis, Analysis.complaint_id == Complaint.id)
        .where(
            or_(Complaint.id.in_(numeric), Complaint.external_id.in_(list(ids))),
            Complaint.tenant_id.in_(tenant_ids),
        )
        .order_by(Complaint.id)
        .limit(5)
    )
    return [_sample(c, a) for c, a in session.execute(query).all()]


def _sample(complaint: Complaint, analysis: Analysis | None) -> SampleComplaint:
    return SampleComplaint(
        id=complaint.id,
        text=complaint.text,
        received_at=complaint.received_at,
        sentiment=analysis.sentiment if analysis else None,
        language=analysis.language if analysis else None,
    )


def _series(
    session: Session, filters: TrendFilters, granularity: Granularity, by_topic: bool
) -> dict[tuple[str, str | None], _Series]:
    group_by = ("tenant", "topic") if by_topic else ("tenant",)
    cells, _ = query_cells(session, TrendQuery(filters, granularity, group_by))
    out: dict[tuple[str, str | None], _Series] = defaultdict(lambda: _Series({}, {}))
    for cell in cells:
        tenant = cell.group[0] or ""
        topic = cell.group[1] if by_topic else None
        series = out[(tenant, topic)]
        series.counts[cell.period] = cell.total
        series.negatives[cell.period] = cell.negative
    return out


@dataclass
class _Candidate:
    alert: Alert
    sample_filters: TrendFilters


def compute_alerts(
    session: Session,
    *,
    filters: TrendFilters,
    period: date | None,
    options: AlertOptions,
) -> tuple[AlertsResponse, dict[int, str], date | None]:
    """Test every topic of every tenant in scope; returns the answer, the tenants tested (for
    the new-theme hook) and the period tested."""
    g = options.granularity
    tenants: dict[int, str] = {
        i: name for i, name in session.execute(select(Tenant.id, Tenant.name))
    }
    if filters.tenant_ids is not None:
        tenants = {i: n for i, n in tenants.items() if i in filters.tenant_ids}
    ids_by_name = {name: i for i, name in tenants.items()}
    methods = {
        AlertKind.volume_spike.value: SPIKE_METHOD.format(k=options.history),
        AlertKind.sentiment_drop.value: DROP_METHOD.format(k=options.history),
    }
    day = period or latest_day(session, list(tenants))
    if day is None:
        empty = AlertsResponse(
            granularity=g,
            period=None,
            period_end=None,
            history_periods=options.history,
            sensitivity=options.sensitivity,
            tests_run=0,
            per_test_threshold=options.sensitivity,
            methods=methods,
            alerts=[],
        )
        return empty, tenants, None
    target = period_start(day, g)
    history = history_periods(target, g, options.history)
    scoped = replace(
        filters,
        tenant_ids=tuple(tenants),
        date_from=history[0],
        date_to=period_end(target, g),
    )
    overall = _series(session, replace(scoped, topic=()), g, by_topic=False)
    per_topic = _series(session, scoped, g, by_topic=True)
    # Each tenant's history starts with its first data, whatever the topic.
    first_period = {
        tenant: min(series.counts) for (tenant, _), series in overall.items() if series.counts
    }
    keys = sorted(per_topic, key=str)
    if not filters.topic:  # all complaints too, unless the caller asked for given topics
        keys = sorted(overall, key=str) + keys

    candidates: list[_Candidate] = []
    tests = 0
    for key in keys:
        tenant, topic = key
        series = overall[key] if topic is None else per_topic[key]
        start = first_period.get(tenant)
        past = [p for p in history if start is not None and p >= start]
        if len(past) < MIN_HISTORY:
            continue
        observed = series.counts.get(target, 0)
        if observed < options.min_count:
            continue
        negative = series.negatives.get(target, 0)
        past_counts = [series.counts.get(p, 0) for p in past]
        past_negative = sum(series.negatives.get(p, 0) for p in past)
        evidence = Evidence(
            count=observed,
            negative=negative,
            history=[
                HistoryPoint(
                    period=p, count=series.counts.get(p, 0), negative=series.negatives.get(p, 0)
                )
                for p in past
            ],
            history_count=sum(past_counts),
            history_negative=past_negative,
            samples=[],
        )
        base_filters = replace(
            scoped,
            tenant_ids=(ids_by_name[tenant],) if tenant in ids_by_name else scoped.tenant_ids,
            topic=(topic,) if topic else (),
            date_from=target,
        )
        spike = volume_spike_test(observed, past_counts)
        tests += 1
        candidates.append(
            _Candidate(
                Alert(
                    kind=AlertKind.volume_spike,
                    tenant=tenant,
                    topic=topic,
                    period=target,
                    period_end=period_end(target, g),
                    observed=observed,
                    expected=spike.expected,
                    p_value=spike.p_value,
                    method=methods[AlertKind.volume_spike.value] + f" [{spike.distribution}]",
                    evidence=evidence,
                ),
                base_filters,
            )
        )
        if sum(past_counts) == 0:
            continue
        drop = sentiment_drop_test(negative, observed, past_negative, sum(past_counts))
        if drop.observed_share - drop.expected_share < options.min_delta:
            continue
        tests += 1
        candidates.append(
            _Candidate(
                Alert(
                    kind=AlertKind.sentiment_drop,
                    tenant=tenant,
                    topic=topic,
                    period=target,
                    period_end=period_end(target, g),
                    observed=drop.observed_share,
                    expected=drop.expected_share,
                    p_value=drop.p_value,
                    z=drop.z,
                    method=methods[AlertKind.sentiment_drop.value],
                    evidence=evidence,
                ),
                replace(base_filters, sentiment=("negative",)),
            )
        )

    threshold = bonferroni_threshold(options.sensitivity, tests)
    fired = sorted(
        (c for c in candidates if c.alert.p_value is not None and c.alert.p_value < threshold),
        key=lambda c: (c.alert.p_value or 0.0, c.alert.kind.value, c.alert.topic or ""),
    )
    alerts = []
    for candidate in fired:
        samples = load_samples(session, candidate.sample_filters, limit=options.samples)
        evidence = candidate.alert.evidence.model_copy(update={"samples": samples})
        alerts.append(candidate.alert.model_copy(update={"evidence": evidence}))
    response = AlertsResponse(
        granularity=g,
        period=target,
        period_end=period_end(target, g),
        history_periods=options.history,
        sensitivity=options.sensitivity,
        tests_run=tests,
        per_test_threshold=threshold,
        methods=methods,
        alerts=alerts,
    )
    return response, tenants, target
