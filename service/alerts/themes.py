"""The hook for `new_theme` alerts: themes found by discovery (`models/discovery.py`) that the
taxonomy does not cover.

Discovery stores its themes as JSON; until it does (or when the file is absent) this returns no
alert. The file is the one named by `Settings.themes_path` (when the lead adds that setting) or
the `SAWT_THEMES_PATH` environment variable, and looks like:

    {"created_at": "2025-03-10T12:00:00Z",
     "themes": [{"id": 7, "label": "bourse étudiants", "keywords": ["bourse", "minha"],
                 "size": 42, "is_new": true, "tenant": "ministry-a",  # tenant optional
                 "period": "2025-03-03",                              # optional
                 "complaint_ids": [12, 57, 90]}]}
"""

from __future__ import annotations

import json
import logging
import os
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from service.alerts.schemas import Alert, AlertKind, Evidence
from service.trends.schemas import Granularity
from service.trends.service import period_end, period_start

log = logging.getLogger(__name__)

NEW_THEME_METHOD = "discovery: a cluster of complaints that no taxonomy topic covers"


def themes_path(settings: Any) -> Path | None:
    configured = getattr(settings, "themes_path", None) or os.environ.get("SAWT_THEMES_PATH")
    return Path(configured) if configured else None


def load_themes(path: Path | None) -> list[dict[str, Any]]:
    if path is None or not path.is_file():
        return []
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        log.warning("themes file %s is unreadable; no new_theme alerts", path)
        return []
    themes = payload.get("themes") if isinstance(payload, dict) else None
    return [t for t in themes or [] if isinstance(t, dict)]


def new_theme_alerts(
    session: Session,
    *,
    path: Path | None,
    tenant_names: dict[int, str],
    granularity: Granularity,
    fallback_period: date | None,
    sample_loader: Any,
) -> list[Alert]:
    """One alert per theme flagged `is_new` for a tenant in scope (`tenant_names`)."""
    alerts = []
    in_scope = set(tenant_names.values())
    for theme in load_themes(path):
        if not theme.get("is_new"):
            continue
        tenant = theme.get("tenant")
        if tenant is not None and tenant not in in_scope:
            continue
        raw_period = theme.get("period")
        try:
            day = date.fromisoformat(raw_period) if raw_period else fallback_period
        except (TypeError, ValueError):
            day = fallback_period
        if day is None:
            continue
        start = period_start(day, granularity)
        ids = [int(i) for i in theme.get("complaint_ids", []) if isinstance(i, int)][:50]
        tenant_ids = [i for i, name in tenant_names.items() if tenant is None or name == tenant]
        samples = sample_loader(session, ids, tenant_ids)
        size = int(theme.get("size") or len(ids))
        alerts.append(
            Alert(
                kind=AlertKind.new_theme,
                tenant=tenant,
                topic=str(theme.get("label") or theme.get("id")),
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
                    samples=samples,
                    keywords=[str(k) for k in theme.get("keywords", [])][:10],
                ),
            )
        )
    return alerts
