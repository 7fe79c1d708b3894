"""The hook for `new_theme` alerts: themes that topic discovery (`models/discovery.py`) found for
the first time (`is_new`), which the taxonomy does not cover.

Discovery writes a `ThemeSet` as JSON (`sawt discover ... -o out.jsonl` writes
`out.themes.json`). Until one exists this returns no alert. The file is the one named by
`Settings.themes_path` (once the lead adds that setting) or the `SAWT_THEMES_PATH` environment
variable. The file is read leniently (a missing or unreadable file, or an unknown shape, gives no
alert rather than an error), using these fields of each theme: `theme_id`, `keywords`, `size`,
`is_new`, `suggested_topic`, `first_seen`, `representative_ids`; and an optional `tenant`
(on the theme or the whole file) when discovery ran for one tenant.

Sample complaints are looked up in the database by `representative_ids` (complaint id or
external id), within the caller's tenants: only stored, redacted text is ever shown, and a
tenant-bound key sees a theme only when it holds some of that theme's complaints.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from service.alerts.schemas import Alert, AlertKind, Evidence, SampleComplaint
from service.trends.schemas import Granularity
from service.trends.service import period_end, period_start

log = logging.getLogger(__name__)

NEW_THEME_METHOD = (
    "topic discovery: a cluster of complaints first seen in this fit, which no earlier theme "
    "continues"
)
SampleLoader = Callable[[Session, Sequence[str], Sequence[int]], list[SampleComplaint]]


def themes_path(settings: Any) -> Path | None:
    configured = getattr(settings, "themes_path", None) or os.environ.get("SAWT_THEMES_PATH")
    return Path(configured) if configured else None


def load_themes(path: Path | None) -> tuple[list[dict[str, Any]], str | None]:
    """The themes of a ThemeSet file and its tenant, if any; nothing when absent or unreadable."""
    if path is None or not path.is_file():
        return [], None
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        log.warning("themes file %s is unreadable; no new_theme alerts", path)
        return [], None
    if not isinstance(payload, dict) or not isinstance(payload.get("themes"), list):
        log.warning("themes file %s is not a ThemeSet; no new_theme alerts", path)
        return [], None
    tenant = payload.get("tenant")
    return [t for t in payload["themes"] if isinstance(t, dict)], tenant


def _first_day(value: Any, fallback: date | None) -> date | None:
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).date()
        except ValueError:
            return fallback
    return fallback


def new_theme_alerts(
    session: Session,
    *,
    path: Path | None,
    tenant_names: dict[int, str],
    tenant_bound: bool,
    granularity: Granularity,
    fallback_period: date | None,
    sample_loader: SampleLoader,
) -> list[Alert]:
    """One alert per theme flagged `is_new`, for the tenants in scope (`tenant_names`)."""
    themes, file_tenant = load_themes(path)
    alerts = []
    in_scope = set(tenant_names.values())
    for theme in themes:
        if not theme.get("is_new"):
            continue
        tenant = theme.get("tenant") or file_tenant
        if tenant is not None and tenant not in in_scope:
            continue
        day = _first_day(theme.get("first_seen"), fallback_period)
        if day is None:
            continue
        ids = [str(i) for i in theme.get("representative_ids", [])][:50]
        tenant_ids = [i for i, name in tenant_names.items() if tenant in (None, name)]
        samples = sample_loader(session, ids, tenant_ids)
        if tenant is None and tenant_bound and not samples:
            continue  # a theme from elsewhere: nothing of it belongs to this tenant
        keywords = [str(k) for k in theme.get("keywords", [])][:10]
        start = period_start(day, granularity)
        size = int(theme.get("size") or len(ids))
        alerts.append(
            Alert(
                kind=AlertKind.new_theme,
                tenant=tenant,
                topic=" · ".join(keywords[:3]) or str(theme.get("theme_id")),
                period=start,
                period_end=period_end(start, granularity),
                observed=size,
                expected=0,
                p_value=None,
                method=NEW_THEME_METHOD,
                evidence=Evidence(
                    count=size,
                    negative=None,
                    history=[],
                    history_count=0,
                    history_negative=0,
                    samples=samples[:5],
                    keywords=keywords,
                    theme_id=str(theme.get("theme_id")),
                    suggested_topic=theme.get("suggested_topic"),
                ),
            )
        )
    return alerts
