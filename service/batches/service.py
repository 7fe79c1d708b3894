"""Batch ingestion, progress and results: typed functions the routes and jobs call."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models.text.redact import redact
from service.batches.models import Batch, BatchItem, BatchStatus
from service.batches.parsing import ComplaintIn, ParsedUpload
from service.batches.schemas import (
    BatchProgress,
    ResultRow,
    SentimentPublic,
    TopicPublic,
)
from service.complaints.models import Analysis, Complaint, ComplaintStatus
from service.core.db import utcnow

MAX_STORED_ERRORS = 10_000
LOOKUP_CHUNK = 900  # stays under SQLite's bound-parameter limit


@dataclass(frozen=True)
class IngestResult:
    batch: Batch
    replayed: bool


def find_by_idempotency_key(session: Session, *, tenant_id: int, key: str) -> Batch | None:
    return session.scalar(
        select(Batch).where(Batch.tenant_id == tenant_id, Batch.idempotency_key == key)
    )


def _existing_ids(session: Session, tenant_id: int, external_ids: Sequence[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for start in range(0, len(external_ids), LOOKUP_CHUNK):
        chunk = external_ids[start : start + LOOKUP_CHUNK]
        rows = session.execute(
            select(Complaint.external_id, Complaint.id).where(
                Complaint.tenant_id == tenant_id, Complaint.external_id.in_(chunk)
            )
        )
        found.update({ext: cid for ext, cid in rows if ext is not None})
    return found


def _complaint_row(tenant_id: int, batch_id: str, complaint: ComplaintIn) -> dict[str, Any]:
    redacted = redact(complaint.text)
    now = utcnow()
    return {
        "tenant_id": tenant_id,
        "batch_id": batch_id,
        "external_id": complaint.external_id,
        "text": redacted.text,
        "redactions": redacted.kinds,
        "channel": complaint.channel,
        "service": complaint.service,
        "region": complaint.region,
        "received_at": complaint.received_at or now,
        "created_at": now,
        "extra": dict(complaint.metadata),
        "status": ComplaintStatus.pending.value,
    }


def ingest_batch(
    session: Session,
    *,
    tenant_id: int,
    upload: ParsedUpload,
    source_format: str,
    idempotency_key: str | None = None,
) -> IngestResult:
    """Store a parsed upload (redacted) and its batch in one transaction; no model work here."""
    if idempotency_key:
        earlier = find_by_idempotency_key(session, tenant_id=tenant_id, key=idempotency_key)
        if earlier is not None:
            return IngestResult(batch=earlier, replayed=True)
    try:
        batch = _insert_batch(session, tenant_id, upload, source_format, idempotency_key)
        session.commit()
    except IntegrityError:
        # A concurrent POST won a race on an external id or the idempotency key: retry once,
        # now that its rows are visible.
        session.rollback()
        if idempotency_key:
            earlier = find_by_idempotency_key(session, tenant_id=tenant_id, key=idempotency_key)
            if earlier is not None:
                return IngestResult(batch=earlier, replayed=True)
        batch = _insert_batch(session, tenant_id, upload, source_format, idempotency_key)
        session.commit()
    return IngestResult(batch=batch, replayed=False)


def _insert_batch(
    session: Session,
    tenant_id: int,
    upload: ParsedUpload,
    source_format: str,
    idempotency_key: str | None,
) -> Batch:
    batch_id = uuid.uuid4().hex
    external_ids = [c.external_id for _, c in upload.rows if c.external_id is not None]
    existing = _existing_ids(session, tenant_id, external_ids)
    new_rows = [(row, c) for row, c in upload.rows if c.external_id not in existing]
    rejected_rows = {e.row for e in upload.errors if e.row is not None}
    batch = Batch(
        id=batch_id,
        tenant_id=tenant_id,
        status=BatchStatus.queued.value,
        source_format=source_format,
        rows_received=len(upload.rows) + len(rejected_rows),
        accepted=len(upload.rows),
        rejected=len(rejected_rows),
        duplicates=len(upload.rows) - len(new_rows),
        errors=[asdict(e) for e in upload.errors[:MAX_STORED_ERRORS]],
        idempotency_key=idempotency_key,
    )
    session.add(batch)
    session.flush()
    new_ids: list[int] = []
    if new_rows:
        payload = [_complaint_row(tenant_id, batch_id, c) for _, c in new_rows]
        new_ids = list(
            session.scalars(
                insert(Complaint).returning(Complaint.id, sort_by_parameter_order=True), payload
            )
        )
    id_by_row = {row: cid for (row, _), cid in zip(new_rows, new_ids, strict=True)}
    items = []
    for row, complaint in upload.rows:
        if row in id_by_row:
            items.append({"batch_id": batch_id, "row": row, "complaint_id": id_by_row[row]})
        else:
            assert complaint.external_id is not None
            items.append(
                {
                    "batch_id": batch_id,
                    "row": row,
                    "complaint_id": existing[complaint.external_id],
                    "duplicate": True,
                }
            )
    if items:
        session.execute(insert(BatchItem), items)
    return batch


def get_batch(session: Session, *, batch_id: str, tenant_id: int | None) -> Batch | None:
    """`tenant_id=None` reads across tenants (analyst/admin); a foreign batch is just absent."""
    query = select(Batch).where(Batch.id == batch_id)
    if tenant_id is not None:
        query = query.where(Batch.tenant_id == tenant_id)
    return session.scalar(query)


def batch_progress(session: Session, *, batch_id: str) -> BatchProgress:
    counts = dict(
        session.execute(
            select(Complaint.status, func.count())
            .select_from(BatchItem)
            .join(Complaint, Complaint.id == BatchItem.complaint_id)
            .where(BatchItem.batch_id == batch_id)
            .group_by(Complaint.status)
        ).all()
    )
    done = int(counts.get(ComplaintStatus.analysed.value, 0))
    failed = int(counts.get(ComplaintStatus.failed.value, 0))
    pending = int(counts.get(ComplaintStatus.pending.value, 0))
    return BatchProgress(total=done + failed + pending, done=done, failed=failed, pending=pending)


def latest_analyses(session: Session, complaint_ids: Iterable[int]) -> dict[int, Analysis]:
    ids = list(complaint_ids)
    latest: dict[int, Analysis] = {}
    for start in range(0, len(ids), LOOKUP_CHUNK):
        chunk = ids[start : start + LOOKUP_CHUNK]
        for analysis in session.scalars(
            select(Analysis).where(Analysis.complaint_id.in_(chunk)).order_by(Analysis.id)
        ):
            latest[analysis.complaint_id] = analysis
    return latest


def result_row(
    row: int, complaint: Complaint, analysis: Analysis | None, *, duplicate: bool
) -> ResultRow:
    return ResultRow(
        row=row,
        complaint_id=complaint.id,
        external_id=complaint.external_id,
        status=complaint.status,
        duplicate=duplicate,
        text=complaint.text,
        redactions=list(complaint.redactions or []),
        language=analysis.language if analysis else None,
        script=analysis.script if analysis else None,
        language_mix=list(analysis.language_mix or []) if analysis else [],
        sentiment=(
            SentimentPublic(label=analysis.sentiment, scores=analysis.sentiment_scores)
            if analysis
            else None
        ),
        topics=[TopicPublic(**t) for t in analysis.topics] if analysis else [],
        model_version=analysis.model_version if analysis else None,
        error=complaint.error,
    )


def batch_results(
    session: Session, *, batch_id: str, after: int = 0, limit: int = 100
) -> tuple[list[ResultRow], int | None]:
    rows = session.execute(
        select(BatchItem.row, BatchItem.duplicate, Complaint)
        .join(Complaint, Complaint.id == BatchItem.complaint_id)
        .where(BatchItem.batch_id == batch_id, BatchItem.row > after)
        .order_by(BatchItem.row)
        .limit(limit + 1)
    ).all()
    has_more = len(rows) > limit
    rows = rows[:limit]
    analyses = latest_analyses(session, (c.id for _, _, c in rows))
    items = [result_row(r, c, analyses.get(c.id), duplicate=d) for r, d, c in rows]
    next_after = items[-1].row if has_more and items else None
    return items, next_after


def unfinished_batch_ids(session: Session) -> list[str]:
    return list(
        session.scalars(
            select(Batch.id)
            .where(Batch.status.in_([BatchStatus.queued.value, BatchStatus.processing.value]))
            .order_by(Batch.created_at)
        )
    )
