"""The hook for `new_theme` alerts: themes that topic discovery (`models/discovery.py`) found for
the first time (`is_new`), which the taxonomy does not cover.

Two sources of `ThemeSet`s, both optional: the latest `theme_runs` row of each tenant in scope
(stored by `service.themes`, once its table exists), and a JSON file written by
`sawt discover ... -o out.jsonl` (`out.themes.json`) named by `Settings.themes_path` (once that
setting exists) or the `SAWT_THEMES_PATH` environment variable. With neither, no alert. Both are
read leniently (missing, unreadable or unknown shapes give no alert, never an error), using these
fields of each theme: `theme_id`, `keywords`, `size`, `is_new`, `suggested_topic`, `first_seen`,
`representative_ids`; and an optional `tenant` (on the theme or the whole file).

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
from service.themes.service import latest_run
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


ThemeSource = tuple[str | None, list[dict[str, Any]]]  # (tenant name or None, its themes)


def _themes_of(payload: Any) -> list[dict[str, Any]] | None:
    if not isinstance(payload, dict) or not isinstance(payload.get("themes"), list):
        return None
    return [t for t in payload["themes"] if isinstance(t, dict)]


def themes_from_file(path: Path | None) -> list[ThemeSource]:
    """The themes of a ThemeSet file, with its `tenant` when it has one."""
    if path is None or not path.is_file():
        return []
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        log.warning("themes file %s is unreadable; no new_theme alerts from it", path)
        return []
    themes = _themes_of(payload)
    if themes is None:
        log.warning("themes file %s is not a ThemeSet; no new_theme alerts from it", path)
        return []
    return [(payload.get("tenant"), themes)]


def themes_from_runs(session: Session, tenant_names: dict[int, str]) -> list[ThemeSource]:
    """The latest discovery run of each tenant (`POST /v1/themes/discover`)."""
    sources: list[ThemeSource] = []
    for tenant_id, name in tenant_names.items():
        run = latest_run(session, tenant_id=tenant_id)
        themes = _themes_of(run.themes) if run is not None else None
        if themes:
            sources.append((name, themes))
    return sources


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
    sources: list[ThemeSource],
    tenant_names: dict[int, str],
    tenant_bound: bool,
    granularity: Granularity,
    fallback_period: date | None,
    sample_loader: SampleLoader,
) -> list[Alert]:
    """One alert per theme flagged `is_new`, for the tenants in scope (`tenant_names`)."""
    alerts = []
    in_scope = set(tenant_names.values())
    for source_tenant, theme in ((t, theme) for t, themes in sources for theme in themes):
        if not theme.get("is_new"):
            continue
        tenant = theme.get("tenant") or source_tenant
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
