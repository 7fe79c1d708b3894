"""Retention: delete complaints received before a cutoff, with everything derived from them.

Trend rollups and the cube are recounted afterwards for every tenant touched, so aggregates
never include complaints that no longer exist, and the tenant's stored theme-discovery runs lose
the ids and texts of the purged complaints they quoted as representatives. Batches themselves
stay (their counters and per-row errors record what was received, never text); the audit trail
stays too (complaint ids only, no foreign keys to complaints).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import Delete, delete, select
from sqlalchemy.orm import Session

from service.batches.models import BatchItem
from service.complaints.models import Analysis, AnalysisTopic, Complaint, LabelCorrection
from service.themes.service import forget_deleted_complaints
from service.trends.rollups import rebuild_rollups


@dataclass(frozen=True)
class PurgeCounts:
    complaints: int
    analyses: int
    topic_rows: int
    batch_items: int
    label_corrections: int
    tenants: tuple[int, ...]
    theme_runs: int = 0  # discovery runs rewritten to drop purged representatives


def purge_complaints(
    session: Session, *, received_before: datetime, tenant_id: int | None = None
) -> PurgeCounts:
    """Deletes explicitly, child tables first: ON DELETE CASCADE is not on every foreign key."""
    doomed = select(Complaint.id).where(Complaint.received_at < received_before)
    if tenant_id is not None:
        doomed = doomed.where(Complaint.tenant_id == tenant_id)
    tenants = tuple(
        session.scalars(
            select(Complaint.tenant_id).where(Complaint.id.in_(doomed)).distinct()
        ).all()
    )

    def run(statement: Delete) -> int:
        return int(session.execute(statement).rowcount or 0)  # type: ignore[attr-defined]

    ids = doomed.scalar_subquery()
    counts = PurgeCounts(
        topic_rows=run(delete(AnalysisTopic).where(AnalysisTopic.complaint_id.in_(ids))),
        label_corrections=run(delete(LabelCorrection).where(LabelCorrection.complaint_id.in_(ids))),
        batch_items=run(delete(BatchItem).where(BatchItem.complaint_id.in_(ids))),
        analyses=run(delete(Analysis).where(Analysis.complaint_id.in_(ids))),
        complaints=run(delete(Complaint).where(Complaint.id.in_(ids))),
        tenants=tenants,
    )
    rewritten = 0
    for affected in sorted(tenants):
        rebuild_rollups(session, tenant_id=affected)
        rewritten += forget_deleted_complaints(session, tenant_id=affected)
    return replace(counts, theme_runs=rewritten)
