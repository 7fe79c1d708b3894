"""`GET /v1/trends`, and the query parameters and caching headers every read route shares."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, replace
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response, status
from sqlalchemy.orm import Session

from service.api.deps import ContextDep, PrincipalDep, SessionDep, invalid, resolve_tenant
from service.tenants.service import Principal
from service.trends.cache import TaggedBody, TrendCache
from service.trends.schemas import (
    GROUP_DIMENSIONS,
    SENTIMENTS,
    EchoedFilters,
    Granularity,
    TrendFilters,
    TrendQuery,
    TrendsResponse,
)
from service.trends.service import TooManyPoints, compute_trends, trends_revision

router = APIRouter(prefix="/v1", tags=["trends"])

MAX_VALUES = 50
MAX_VALUE_CHARS = 100
CACHE_SECONDS = 30
READ_ERRORS: dict[int | str, dict[str, Any]] = {
    304: {"description": "Not modified: the `If-None-Match` ETag still matches"},
    401: {"description": "Missing or invalid API key"},
    403: {"description": "The key may not read this tenant"},
    404: {"description": "No tenant of that name"},
    422: {"description": "A query parameter is invalid; `detail` says which and why"},
}
LIST_HELP = "Comma-separated or repeated values; any of them matches"


# Bounds keep period arithmetic in range and a day-granularity answer to a sane size.
EARLIEST_DATE = date(1970, 1, 1)
LATEST_DATE = date(2999, 12, 31)
MAX_SPAN_DAYS = 20 * 366


def split_values(field: str, raw: list[str] | None) -> tuple[str, ...]:
    values: list[str] = []
    for item in raw or []:
        for part in item.split(","):
            value = part.strip()
            if not value or value in values:
                continue
            if len(value) > MAX_VALUE_CHARS:
                raise invalid(field, f"values are at most {MAX_VALUE_CHARS} characters", value)
            values.append(value)
    if len(values) > MAX_VALUES:
        raise invalid(field, f"at most {MAX_VALUES} values", len(values))
    return tuple(values)


@dataclass(frozen=True)
class ResolvedFilters:
    filters: TrendFilters
    tenant_name: str | None

    def echo(self) -> EchoedFilters:
        f = self.filters
        return EchoedFilters(
            tenant=self.tenant_name,
            service=list(f.service),
            region=list(f.region),
            channel=list(f.channel),
            language=list(f.language),
            topic=list(f.topic),
            sentiment=list(f.sentiment),
        )


@dataclass(frozen=True)
class FilterParams:
    """Parsed query parameters; `resolve` adds the tenants the caller may read."""

    tenant: str | None
    filters: TrendFilters

    def resolve(self, session: Session, principal: Principal) -> ResolvedFilters:
        tenant_ids, tenant_name = resolve_tenant(session, principal, self.tenant)
        return ResolvedFilters(replace(self.filters, tenant_ids=tenant_ids), tenant_name)


async def filter_params(
    tenant: Annotated[
        str | None,
        Query(max_length=100, description="Tenant name (analysts, admins; others: their own)"),
    ] = None,
    service: Annotated[list[str] | None, Query(description=LIST_HELP)] = None,
    region: Annotated[list[str] | None, Query(description=LIST_HELP)] = None,
    channel: Annotated[list[str] | None, Query(description=LIST_HELP)] = None,
    language: Annotated[
        list[str] | None, Query(description=f"{LIST_HELP}: ar, ary, ary-Latn, fr, en, zgh, und")
    ] = None,
    topic: Annotated[list[str] | None, Query(description=f"{LIST_HELP}: taxonomy ids")] = None,
    sentiment: Annotated[
        list[str] | None, Query(description=f"{LIST_HELP}: negative, neutral, positive")
    ] = None,
    date_from: Annotated[
        date | None, Query(alias="from", description="First day, inclusive (YYYY-MM-DD, UTC)")
    ] = None,
    date_to: Annotated[
        date | None, Query(alias="to", description="Last day, inclusive (YYYY-MM-DD, UTC)")
    ] = None,
) -> FilterParams:
    """Parsing only, no I/O: async, so it costs no trip through the thread pool."""
    for name, value in (("from", date_from), ("to", date_to)):
        if value is not None and not EARLIEST_DATE <= value <= LATEST_DATE:
            raise invalid(name, f"{name} must lie between {EARLIEST_DATE} and {LATEST_DATE}")
    if date_from is not None and date_to is not None and date_from > date_to:
        raise invalid("from", f"from ({date_from}) is after to ({date_to})", str(date_from))
    if date_from is not None and date_to is not None and (date_to - date_from).days > MAX_SPAN_DAYS:
        raise invalid("to", f"a range spans at most {MAX_SPAN_DAYS} days: narrow from/to")
    sentiments = split_values("sentiment", sentiment)
    unknown = [s for s in sentiments if s not in SENTIMENTS]
    if unknown:
        raise invalid("sentiment", f"unknown sentiment {unknown}; use {', '.join(SENTIMENTS)}")
    topics = split_values("topic", topic)
    if "*" in topics:
        raise invalid("topic", "'*' is not a topic: leave `topic` out to count every complaint")
    return FilterParams(
        tenant=tenant,
        filters=TrendFilters(
            service=split_values("service", service),
            region=split_values("region", region),
            channel=split_values("channel", channel),
            language=split_values("language", language),
            topic=topics,
            sentiment=sentiments,
            date_from=date_from,
            date_to=date_to,
        ),
    )


FiltersDep = Annotated[FilterParams, Depends(filter_params)]


def parse_group_by(raw: str | None) -> tuple[str, ...]:
    if raw is None or not raw.strip():
        return ()
    dims = [d.strip() for d in raw.split(",") if d.strip()]
    unknown = [d for d in dims if d not in GROUP_DIMENSIONS]
    if unknown:
        raise invalid(
            "group_by",
            f"unknown group_by dimension {unknown}; use any of {', '.join(GROUP_DIMENSIONS)}",
            raw,
        )
    if len(set(dims)) != len(dims):
        raise invalid("group_by", "a dimension is repeated", raw)
    return tuple(dims)


def dump_json(payload: Any) -> bytes:
    return json.dumps(
        payload, ensure_ascii=False, separators=(",", ":"), check_circular=False
    ).encode()


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    candidates = {part.strip().removeprefix("W/") for part in header.split(",")}
    return "*" in candidates or etag in candidates


def cached_json(request: Request, body: bytes, *, max_age: int = CACHE_SECONDS) -> Response:
    """ETag = hash of the body: a poll that changes nothing costs a 304 with no body."""
    return etag_response(request, TaggedBody.of(body), max_age=max_age)


def etag_response(
    request: Request, answer: TaggedBody, *, max_age: int = CACHE_SECONDS
) -> Response:
    """The body, or a 304 with no body when `If-None-Match` names its ETag."""
    headers = {
        "ETag": answer.etag,
        "Cache-Control": f"private, max-age={max_age}",
        "Vary": "Authorization, X-API-Key",
    }
    if _etag_matches(request.headers.get("if-none-match"), answer.etag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return Response(answer.body, media_type="application/json", headers=headers)


_cache_lock = threading.Lock()


async def trend_cache(request: Request, context: ContextDep) -> TrendCache | None:
    """The app's cache of trend bodies (one per API process); None when
    `SAWT_TRENDS_CACHE_SECONDS` is 0. No I/O: async, so no trip through the thread pool."""
    seconds = context.settings.trends_cache_seconds
    if seconds <= 0:
        return None
    with _cache_lock:
        cache: TrendCache | None = getattr(request.app.state, "trend_cache", None)
        if cache is None:
            cache = request.app.state.trend_cache = TrendCache(seconds)
    return cache


TrendCacheDep = Annotated[TrendCache | None, Depends(trend_cache)]


def build_query(
    resolved: ResolvedFilters, granularity: Granularity, group_by: str | None
) -> TrendQuery:
    dims = parse_group_by(group_by)
    if len(resolved.filters.topic) > 1 and "topic" not in dims:
        raise invalid(
            "topic",
            "several topics without group_by=topic would count a complaint once per topic: "
            "add topic to group_by, or filter on one topic",
        )
    return TrendQuery(filters=resolved.filters, granularity=granularity, group_by=dims)


@router.get(
    "/trends",
    response_model=TrendsResponse,
    responses=READ_ERRORS,
    summary="Complaint volumes, sentiment shares and experience index per period",
    description=(
        "Answered from rollups kept current as batches are analysed, never by scanning "
        "complaints. Each point carries its counts; `shares` and `experience_index` (share "
        "positive minus share negative) are computed from them. Weeks start on Monday (ISO), "
        "months are calendar months, days are UTC. `group_by` takes one or more of tenant, "
        "topic, sentiment, language, service, region, channel, comma-separated. Send the "
        "`ETag` back in `If-None-Match` to get a 304 when nothing changed. An answer is "
        "recomputed as soon as the data it counts changed (and at least every "
        "`SAWT_TRENDS_CACHE_SECONDS`); until then polls share one computed body."
    ),
)
def get_trends(
    request: Request,
    principal: PrincipalDep,
    params: FiltersDep,
    session: SessionDep,
    cache: TrendCacheDep,
    granularity: Annotated[
        Granularity, Query(description="day, week (ISO, from Monday) or month")
    ] = Granularity.week,
    group_by: Annotated[
        str | None, Query(max_length=200, description="e.g. topic, or service,sentiment")
    ] = None,
) -> Response:
    resolved = params.resolve(session, principal)
    query = build_query(resolved, granularity, group_by)
    revision = trends_revision(session, query.filters) if cache is not None else None
    try:
        if cache is None or revision is None:
            answer = TaggedBody.of(render_trends(session, resolved, query))
        else:
            answer = cache.get_or_compute(
                (resolved.tenant_name, query),
                revision,
                lambda: render_trends(session, resolved, query),
            )
    except TooManyPoints as exc:
        raise invalid("granularity", str(exc), granularity.value) from exc
    return etag_response(request, answer)


def render_trends(session: Session, resolved: ResolvedFilters, query: TrendQuery) -> bytes:
    """The JSON body of `GET /v1/trends` for `query`."""
    result = compute_trends(session, query)
    f = resolved.filters
    # Built as plain data and dumped once: thousands of points would make validating a model
    # per point the slowest part of the request. The shape is `TrendsResponse` (tests check).
    payload = {
        "granularity": query.granularity.value,
        "from": f.date_from.isoformat() if f.date_from else None,
        "to": f.date_to.isoformat() if f.date_to else None,
        "filters": resolved.echo().model_dump(),
        "group_by": list(query.group_by),
        "unit": "complaint_topics" if "topic" in query.group_by else "complaints",
        "source": result.source,
        "periods": [p.isoformat() for p in result.periods],
        "series": result.series,
        "groups": [g.model_dump(mode="json") for g in result.groups],
        "totals": result.totals.model_dump(mode="json"),
    }
    return dump_json(payload)
