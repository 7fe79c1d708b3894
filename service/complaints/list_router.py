"""`GET /v1/complaints`: the drill-down behind a trend, filtered the same way, redacted text only.

Who may read it: ministry keys (own tenant), analysts and admins (any tenant), and dashboard
keys for their own tenant — the dashboard's "click a theme to read its complaints" needs the
verbatims. Only redacted text and labels are shown; a dashboard key does not get the client's
`external_id` (it may be a case number tied to a person).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from service.api.deps import PrincipalDep, SessionDep, invalid
from service.audit.service import record_read
from service.batches.schemas import SentimentPublic, TopicPublic
from service.complaints.listing import BadCursor, Cursor, ListedComplaint, list_complaints
from service.tenants.models import Role
from service.trends.router import READ_ERRORS, FiltersDep, cached_json

router = APIRouter(prefix="/v1", tags=["complaints"])


class ComplaintListItem(BaseModel):
    id: int
    external_id: str | None = Field(description="Hidden (null) for dashboard keys")
    text: str = Field(description="Redacted text: personal data replaced by placeholders")
    received_at: datetime
    service: str | None
    region: str | None
    channel: str | None
    language: str
    sentiment: SentimentPublic
    topics: list[TopicPublic]


class ComplaintPage(BaseModel):
    items: list[ComplaintListItem]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end"
    )


def _item(row: ListedComplaint, *, show_external_id: bool) -> ComplaintListItem:
    c, a = row.complaint, row.analysis
    return ComplaintListItem(
        id=c.id,
        external_id=c.external_id if show_external_id else None,
        text=c.text,
        received_at=c.received_at,
        service=c.service,
        region=c.region,
        channel=c.channel,
        language=a.language,
        sentiment=SentimentPublic(label=a.sentiment, scores=a.sentiment_scores),
        topics=[TopicPublic(**t) for t in a.topics],
    )


@router.get(
    "/complaints",
    response_model=ComplaintPage,
    responses=READ_ERRORS,
    summary="Analysed complaints matching the trends' filters (drill-down), newest first",
)
def list_complaints_route(
    request: Request,
    principal: PrincipalDep,
    params: FiltersDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200, description="Page size")] = 50,
    cursor: Annotated[
        str | None, Query(max_length=200, description="`next_cursor` of the previous page")
    ] = None,
) -> Response:
    try:
        after = Cursor.decode(cursor) if cursor else None
    except BadCursor as exc:
        raise invalid("cursor", str(exc), cursor) from exc
    resolved = params.resolve(session, principal)
    rows, next_cursor = list_complaints(session, filters=resolved.filters, limit=limit, after=after)
    show = principal.role != Role.dashboard
    page = ComplaintPage(
        items=[_item(r, show_external_id=show) for r in rows],
        next_cursor=next_cursor.encode() if next_cursor else None,
    )
    ids = resolved.filters.tenant_ids
    record_read(
        session, principal, "complaints.list", f"{request.url.path}?{request.url.query}",
        tenant_id=ids[0] if ids and len(ids) == 1 else None,
    )  # fmt: skip
    return cached_json(request, page.model_dump_json().encode())
