"""`GET /v1/alerts`: volume spikes, sentiment drops and new themes, with their evidence."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from service.alerts.schemas import AlertsResponse
from service.alerts.service import AlertOptions, compute_alerts, samples_by_id
from service.alerts.themes import (
    new_theme_alerts,
    themes_from_file,
    themes_from_runs,
    themes_path,
)
from service.api.deps import PrincipalDep, SessionDep, SettingsDep, invalid
from service.tenants.models import Role
from service.trends.router import (
    EARLIEST_DATE,
    LATEST_DATE,
    READ_ERRORS,
    FiltersDep,
    cached_json,
)
from service.trends.schemas import Granularity

router = APIRouter(prefix="/v1", tags=["alerts"])


@router.get(
    "/alerts",
    response_model=AlertsResponse,
    responses=READ_ERRORS,
    summary="Spikes in a topic's volume and drops in its sentiment versus its own history",
    description=(
        "For each tenant in scope, every topic (and all complaints together) is tested in one "
        "period (default: the period holding the latest data) against the `history` periods "
        "before it. Volume: negative-binomial upper-tail test (Poisson when the history is not "
        "over-dispersed). Sentiment: one-sided two-proportion z-test on the share negative. "
        "`sensitivity` is the chance of any false alarm in one answer: each test fires below "
        "`sensitivity / tests_run` (Bonferroni). Topics with fewer than `min_count` complaints "
        "in the period, or fewer than 3 periods of history, are not tested. New themes come "
        "from topic discovery when it has run. Each alert carries its numbers and up to 5 "
        "sample complaints (redacted)."
    ),
)
def get_alerts(
    request: Request,
    principal: PrincipalDep,
    params: FiltersDep,
    session: SessionDep,
    settings: SettingsDep,
    granularity: Annotated[Granularity, Query(description="day, week or month")] = (
        Granularity.week
    ),
    period: Annotated[
        date | None, Query(description="Any day of the period to test (default: latest data)")
    ] = None,
    history: Annotated[int, Query(ge=3, le=52, description="Periods of history")] = 8,
    sensitivity: Annotated[
        float, Query(gt=0, le=0.5, description="Family-wise false-alarm rate per answer")
    ] = 0.01,
    min_count: Annotated[
        int, Query(ge=1, le=100_000, description="Smallest count in the period worth testing")
    ] = 5,
    min_delta: Annotated[
        float, Query(ge=0, le=1, description="Smallest rise in share negative worth testing")
    ] = 0.05,
) -> Response:
    if period is not None and not EARLIEST_DATE <= period <= LATEST_DATE:
        raise invalid("period", f"period must lie between {EARLIEST_DATE} and {LATEST_DATE}")
    resolved = params.resolve(session, principal)
    f = resolved.filters
    if f.date_from is not None or f.date_to is not None:
        raise invalid("from", "alerts test one period against its history: use `period`")
    if f.sentiment:
        raise invalid("sentiment", "alerts test sentiment themselves: leave `sentiment` out")
    options = AlertOptions(
        granularity=granularity,
        history=history,
        sensitivity=sensitivity,
        min_count=min_count,
        min_delta=min_delta,
    )
    response, tenants, tested = compute_alerts(session, filters=f, period=period, options=options)
    themes = new_theme_alerts(
        session,
        sources=themes_from_runs(session, tenants) + themes_from_file(themes_path(settings)),
        tenant_names=tenants,
        tenant_bound=principal.role in (Role.ministry, Role.dashboard),
        granularity=granularity,
        fallback_period=tested,
        sample_loader=samples_by_id,
    )
    if themes:
        response = response.model_copy(update={"alerts": [*response.alerts, *themes]})
    return cached_json(request, response.model_dump_json().encode())
