"""Discovery over the database: stored embeddings and redacted texts, never re-encoded."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.complaints.models import Analysis, Complaint
from service.core.db import utcnow
from service.themes.models import ThemeRun

EMBEDDING_DIM = 384
LOOKUP_CHUNK = 900  # stays under SQLite's bound-parameter limit


class NotEnoughComplaints(ValueError):
    pass


def latest_run(session: Session, *, tenant_id: int) -> ThemeRun | None:
    return session.scalar(
        select(ThemeRun)
        .where(ThemeRun.tenant_id == tenant_id)
        .order_by(ThemeRun.id.desc())
        .limit(1)
    )


def _window_rows(
    session: Session, tenant_id: int, start: datetime, end: datetime, encoder_version: str | None
) -> list[Any]:
    conditions = [Analysis.tenant_id == tenant_id, Analysis.embedding.is_not(None)]
    if encoder_version is not None:
        # embeddings of another encoder (before a fine-tuned one was promoted) live in another
        # space: they are not clustered with the served encoder's
        conditions.append(
            Analysis.model_version.contains(f"encoder={encoder_version};", autoescape=True)
        )
    latest = (
        select(func.max(Analysis.id)).where(*conditions).group_by(Analysis.complaint_id)
    ).scalar_subquery()
    return list(
        session.execute(
            select(
                Complaint.id,
                Complaint.text,
                Complaint.received_at,
                Analysis.language,
                Analysis.embedding,
            )
            .join(Analysis, Analysis.complaint_id == Complaint.id)
            .where(
                Analysis.id.in_(latest),
                Complaint.received_at >= start,
                Complaint.received_at < end,
            )
            .order_by(Complaint.id)
        )
    )


def discover_themes(
    session: Session,
    *,
    tenant_id: int,
    days: int = 28,
    end: datetime | None = None,
    topic_centroids: dict[str, np.ndarray] | None = None,
    min_theme_size: int | None = None,
    encoder_version: str | None = None,
) -> ThemeRun:
    """Fit themes on the window's stored embeddings, continuing the tenant's last run's ids."""
    from models.discovery import ThemeDiscoverer, ThemeSet  # BERTopic/UMAP load only when used

    end = end or utcnow()
    start = end - timedelta(days=days)
    rows = _window_rows(session, tenant_id, start, end, encoder_version)
    if len(rows) < 20:
        served = f" from the served encoder {encoder_version}" if encoder_version else ""
        raise NotEnoughComplaints(
            f"{len(rows)} analysed complaints with embeddings{served} between "
            f"{start:%Y-%m-%d} and {end:%Y-%m-%d}; discovery needs at least 20"
        )
    embeddings = np.vstack(
        [np.frombuffer(r.embedding, dtype=np.float16, count=EMBEDDING_DIM) for r in rows]
    )
    previous_run = latest_run(session, tenant_id=tenant_id)
    previous = ThemeSet.model_validate(previous_run.themes) if previous_run else None
    discoverer = ThemeDiscoverer(topic_centroids=topic_centroids, min_theme_size=min_theme_size)
    discoverer.fit(
        [r.text for r in rows],
        embeddings,
        timestamps=[r.received_at for r in rows],
        previous=previous,
        ids=[str(r.id) for r in rows],
        languages=[r.language for r in rows],
    )
    run = ThemeRun(
        tenant_id=tenant_id,
        window_start=start,
        window_end=end,
        n_documents=len(rows),
        themes=discoverer.themes_.model_dump(mode="json"),
    )
    session.add(run)
    session.commit()
    return run


def _existing_ids(session: Session, tenant_id: int, ids: set[int]) -> set[int]:
    ordered, found = sorted(ids), set[int]()
    for start in range(0, len(ordered), LOOKUP_CHUNK):
        chunk = ordered[start : start + LOOKUP_CHUNK]
        found.update(
            session.scalars(
                select(Complaint.id).where(
                    Complaint.tenant_id == tenant_id, Complaint.id.in_(chunk)
                )
            )
        )
    return found


def _scrub_theme(theme: dict[str, Any], existing: set[int]) -> bool:
    """Keep only the representatives whose complaint still exists; True when any was dropped."""
    ids = [str(i) for i in theme.get("representative_ids", [])]
    keep = [k for k, i in enumerate(ids) if i.isdigit() and int(i) in existing]
    if len(keep) == len(ids):
        return False
    for field in ("representative_ids", "representative_texts", "representatives"):
        values = theme.get(field)
        if isinstance(values, list):
            theme[field] = [values[k] for k in keep if k < len(values)]
    return True


def forget_deleted_complaints(session: Session, *, tenant_id: int) -> int:
    """Drop, from every stored run of the tenant, the representative ids and texts of
    complaints that no longer exist, so a retention purge leaves no copy of their text.

    Keywords, centroids and counts stay: they are aggregates over a whole theme, and the
    centroids are what keeps theme ids stable across refits. Returns the runs rewritten.
    """
    runs = list(session.scalars(select(ThemeRun).where(ThemeRun.tenant_id == tenant_id)))
    named = {
        int(i)
        for run in runs
        for theme in run.themes.get("themes", [])
        for i in map(str, theme.get("representative_ids", []))
        if i.isdigit()
    }
    existing = _existing_ids(session, tenant_id, named)
    rewritten = 0
    for run in runs:
        themes = copy.deepcopy(run.themes)
        changed = [_scrub_theme(theme, existing) for theme in themes.get("themes", [])]
        if any(changed):
            run.themes = themes  # a new object: SQLAlchemy does not track in-place JSON edits
            rewritten += 1
    session.flush()
    return rewritten


def seed_topic_centroids(encoder: Any, cache_dir: Any) -> dict[str, np.ndarray]:
    """Taxonomy centroids for theme → topic suggestions, from the seed set (cached)."""
    from models.discovery import topic_centroids
    from models.seed import seed_embeddings

    rows, embeddings = seed_embeddings(
        encoder.encode, encoder_key=encoder.version, cache_dir=cache_dir
    )
    return topic_centroids([r["text"] for r in rows], [r["topics"] for r in rows], embeddings)
