"""`GET /v1/reports/summary`: JSON, or a printable HTML page (`format=html` or `Accept:
text/html`), in French, Arabic (right to left) or English."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from service.api.deps import PrincipalDep, SessionDep, invalid
from service.dashboard.i18n import DEFAULT_LANG, Lang
from service.dashboard.security import page_headers, report_csp
from service.reports.schemas import SummaryReport
from service.reports.service import BadPeriod, build_report, parse_period
from service.trends.router import READ_ERRORS, FiltersDep, cached_json

router = APIRouter(prefix="/v1/reports", tags=["reports"])

TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"], default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f} %"


def _signed(value: float | int | None, digits: int = 2) -> str:
    if value is None:
        return "—"
    if isinstance(value, int):
        return f"{value:+d}"
    return f"{value:+.{digits}f}"


def _number(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


TEMPLATES.filters.update(percent=_percent, signed=_signed, number=_number)


def wants_html(accept: str | None) -> bool:
    """text/html named before (or without) application/json: a browser asked."""
    accept = (accept or "").lower()
    if "text/html" not in accept:
        return False
    return "application/json" not in accept or accept.index("text/html") < accept.index(
        "application/json"
    )


def render_html(report: SummaryReport) -> HTMLResponse:
    nonce = secrets.token_urlsafe(16)
    html = TEMPLATES.get_template("summary.html").render(r=report, nonce=nonce)
    headers = {**page_headers(report_csp(nonce)), "Cache-Control": "private, no-cache"}
    return HTMLResponse(html, headers=headers)


@router.get(
    "/summary",
    response_model=SummaryReport,
    responses={
        **READ_ERRORS,
        200: {
            "description": "The report, as JSON or as a printable HTML page",
            "content": {"text/html": {}},
        },
    },
    summary="Manager report: top themes, biggest movers, alerts, experience per service",
)
def summary_report(
    request: Request,
    principal: PrincipalDep,
    params: FiltersDep,
    session: SessionDep,
    period: Annotated[
        str | None,
        Query(max_length=10, description="YYYY-MM (month) or YYYY-Www (ISO week); default: now"),
    ] = None,
    lang: Annotated[Lang, Query(description="Labels in fr, ar (right to left) or en")] = (
        DEFAULT_LANG
    ),
    format: Annotated[
        Literal["json", "html"] | None,
        Query(description="Overrides the Accept header"),
    ] = None,
) -> Response:
    resolved = params.resolve(session, principal)
    f = resolved.filters
    if f.date_from is not None or f.date_to is not None:
        raise invalid("from", "a report covers one `period` (YYYY-MM or YYYY-Www)")
    if f.sentiment:
        raise invalid("sentiment", "a report covers every sentiment: leave `sentiment` out")
    try:
        parsed = parse_period(period)
    except BadPeriod as exc:
        raise invalid("period", str(exc), period) from exc
    report = build_report(
        session, filters=f, tenant_name=resolved.tenant_name, period=parsed, lang=lang
    )
    html = format == "html" or (format is None and wants_html(request.headers.get("accept")))
    if html:
        return render_html(report)
    return cached_json(request, report.model_dump_json().encode())
