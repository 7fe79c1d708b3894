"""Batch ingestion, progress and results: typed functions the routes and jobs call.

Ingest is one transaction per upload: redact, look up the tenant's known external ids (those rows
are linked, not copied), insert the new complaints and one item per accepted row. On PostgreSQL
the rows go in with `COPY` (ids reserved first with `nextval`, so items can point at them); on
SQLite with one executemany. No model work happens here.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    String,
    Table,
    any_,
    bindparam,
    exists,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
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
POSTGRES_LOOKUP_CHUNK = 20_000  # one array parameter per query
INGEST_ATTEMPTS = 5  # concurrent uploads sharing external ids: each retry follows a commit
COMPLAINT_COLUMNS = (
    "id",
    "tenant_id",
    "batch_id",
    "external_id",
    "text",
    "redactions",
    "channel",
    "service",
    "region",
    "received_at",
    "created_at",
    "metadata",
    "status",
)
ITEM_COLUMNS = ("batch_id", "row", "complaint_id", "duplicate")


@dataclass(frozen=True)
class IngestResult:
    batch: Batch
    replayed: bool


def find_by_idempotency_key(session: Session, *, tenant_id: int, key: str) -> Batch | None:
    return session.scalar(
        select(Batch).where(Batch.tenant_id == tenant_id, Batch.idempotency_key == key)
    )


def _is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _existing_ids(session: Session, tenant_id: int, external_ids: Sequence[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    postgres = _is_postgres(session)
    step = POSTGRES_LOOKUP_CHUNK if postgres else LOOKUP_CHUNK
    for start in range(0, len(external_ids), step):
        chunk = list(external_ids[start : start + step])
        matches = (
            Complaint.external_id == any_(bindparam("ids", chunk, type_=ARRAY(String)))
            if postgres
            else Complaint.external_id.in_(chunk)
        )
        rows = session.execute(
            select(Complaint.external_id, Complaint.id).where(
                Complaint.tenant_id == tenant_id, matches
            )
        )
        found.update({ext: cid for ext, cid in rows if ext is not None})
    return found


def _complaint_values(
    tenant_id: int, batch_id: str, complaint: ComplaintIn, now: datetime
) -> tuple[Any, ...]:
    """One row in `COMPLAINT_COLUMNS` order, without the id; JSON columns still as objects."""
    redacted = redact(complaint.text)
    metadata, metadata_kinds = _redact_metadata(complaint.metadata)
    kinds = redacted.kinds + [k for k in metadata_kinds if k not in redacted.kinds]
    return (
        tenant_id,
        batch_id,
        complaint.external_id,
        redacted.text,
        kinds,
        complaint.channel,
        complaint.service,
        complaint.region,
        complaint.received_at or now,
        now,
        metadata,
        ComplaintStatus.pending.value,
    )


def _redact_metadata(metadata: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Free-form metadata (a caller's name, a callback number) is redacted like the text."""
    cleaned: dict[str, Any] = {}
    kinds: list[str] = []
    for key, value in metadata.items():
        if isinstance(value, str):
            result = redact(value)
            value = result.text
            kinds.extend(k for k in result.kinds if k not in kinds)
        cleaned[key] = value
    return cleaned, kinds


def _copy_rows(session: Session, table: str, columns: Sequence[str], rows: Iterable[Any]) -> None:
    """`COPY ... FROM STDIN` on the session's own connection, inside its transaction."""
    import psycopg

    driver = session.connection().connection.driver_connection
    assert driver is not None
    statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    try:
        with driver.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)
    except psycopg.errors.IntegrityError as exc:
        # Same exception as the executemany path, so `ingest_batch` retries the same way.
        raise IntegrityError(statement, None, exc) from exc


def _insert_complaints_postgres(
    session: Session, values: Iterable[tuple[Any, ...]], count: int
) -> list[int]:
    """Ids are reserved first, so rows can stream: PostgreSQL stores the rows already sent
    (on its own core) while the next ones are still being redacted here."""
    ids = sorted(
        session.scalars(
            text(
                "SELECT nextval(pg_get_serial_sequence('complaints', 'id')) "
                "FROM generate_series(1, :n)"
            ),
            {"n": count},
        )
    )
    dumps = json.dumps
    _copy_rows(
        session,
        "complaints",
        COMPLAINT_COLUMNS,
        (
            (cid, *row[:4], dumps(row[4]), *row[5:10], dumps(row[10], ensure_ascii=False), row[11])
            for cid, row in zip(ids, values, strict=True)
        ),
    )
    return ids


def _insert_complaints_executemany(
    session: Session, values: Iterable[tuple[Any, ...]], count: int
) -> list[int]:
    """Explicit ids after the current maximum: the batch row inserted just before holds
    SQLite's write lock, so no other writer can take them."""
    first = (session.scalar(select(func.max(Complaint.id))) or 0) + 1
    ids = list(range(first, first + count))
    names = COMPLAINT_COLUMNS
    session.execute(
        insert(cast(Table, Complaint.__table__)),
        [dict(zip(names, (cid, *row), strict=True)) for cid, row in zip(ids, values, strict=True)],
    )
    return ids


def _insert_items(session: Session, items: list[tuple[str, int, int, bool]]) -> None:
    if not items:
        return
    if _is_postgres(session):
        _copy_rows(session, "batch_items", ITEM_COLUMNS, items)
        return
    session.execute(
        insert(cast(Table, BatchItem.__table__)),
        [dict(zip(ITEM_COLUMNS, item, strict=True)) for item in items],
    )


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
    for attempt in range(1, INGEST_ATTEMPTS + 1):
        try:
            batch = _insert_batch(session, tenant_id, upload, source_format, idempotency_key)
            session.commit()
            break
        except IntegrityError:
            # A concurrent POST won a race on an external id or the idempotency key: retry
            # now that its rows are visible (they become links). Each retry means another
            # upload committed, so this ends.
            session.rollback()
            if attempt == INGEST_ATTEMPTS:
                raise
            if idempotency_key:
                earlier = find_by_idempotency_key(session, tenant_id=tenant_id, key=idempotency_key)
                if earlier is not None:
                    return IngestResult(batch=earlier, replayed=True)
    _count_ingested(batch)
    return IngestResult(batch=batch, replayed=False)


def _count_ingested(batch: Batch) -> None:
    from service.ops.metrics import BATCHES_INGESTED, COMPLAINTS_INGESTED

    BATCHES_INGESTED.inc()
    COMPLAINTS_INGESTED.inc(batch.accepted - batch.duplicates)


def _insert_batch(
    session: Session,
    tenant_id: int,
    upload: ParsedUpload,
    source_format: str,
    idempotency_key: str | None,
) -> Batch:
    batch_id = uuid.uuid4().hex
    external_ids = [c.external_id for _, c in upload.rows if c.external_id is not None]
    existing = _existing_ids(session, tenant_id, external_ids) if external_ids else {}
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
    now = utcnow()
    values: Iterable[tuple[Any, ...]] = (
        _complaint_values(tenant_id, batch_id, c, now) for _, c in new_rows
    )
    postgres = _is_postgres(session)
    if not postgres:
        # SQLite has one writer: redact before the first write takes the database lock.
        values = list(values)
    session.add(batch)
    session.flush()
    new_ids: list[int] = []
    if new_rows:
        insert_complaints = (
            _insert_complaints_postgres if postgres else _insert_complaints_executemany
        )
        new_ids = insert_complaints(session, values, len(new_rows))
    id_by_row = {row: cid for (row, _), cid in zip(new_rows, new_ids, strict=True)}
    items: list[tuple[str, int, int, bool]] = []
    for row, complaint in upload.rows:
        if row in id_by_row:
            items.append((batch_id, row, id_by_row[row], False))
        else:
            assert complaint.external_id is not None
            items.append((batch_id, row, existing[complaint.external_id], True))
    _insert_items(session, items)
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


def queued_batch_ids(session: Session) -> list[str]:
    """Batches no worker has dispatched yet (the Celery runner re-sends them at start)."""
    return list(
        session.scalars(
            select(Batch.id)
            .where(Batch.status == BatchStatus.queued.value)
            .order_by(Batch.created_at)
        )
    )


def claim_batch_for_processing(session: Session, *, batch_id: str) -> list[int] | None:
    """Move a `queued` batch to `processing` and return its pending complaint ids, in order.

    None when the batch is not `queued` (already dispatched, done, or unknown). The UPDATE takes
    the batch row's lock until the caller commits, so of two concurrent dispatchers one wins.
    """
    claimed = session.execute(  # type: ignore[attr-defined]
        update(Batch)
        .where(Batch.id == batch_id, Batch.status == BatchStatus.queued.value)
        .values(status=BatchStatus.processing.value, started_at=utcnow())
    ).rowcount
    if not claimed:
        return None
    return list(
        session.scalars(
            select(Complaint.id)
            .where(
                Complaint.batch_id == batch_id,
                Complaint.status == ComplaintStatus.pending.value,
            )
            .order_by(Complaint.id)
        )
    )


def finish_batch_if_complete(session: Session, *, batch_id: str) -> float | None:
    """Mark the batch `done` if none of its complaints is pending; idempotent.

    Returns the batch's POST-to-done seconds when this call finished it, else None. Run it in a
    transaction of its own, after the chunk's commit: a check inside the chunk's transaction
    cannot see a concurrent chunk's commit, and two last chunks could each miss the other.
    """
    still_pending = (
        exists()
        .where(
            Complaint.batch_id == batch_id,
            Complaint.status == ComplaintStatus.pending.value,
        )
        .correlate(None)
    )
    finished = session.execute(
        update(Batch)
        .where(Batch.id == batch_id, Batch.status != BatchStatus.done.value, ~still_pending)
        .values(status=BatchStatus.done.value, finished_at=utcnow())
        .returning(Batch.created_at, Batch.finished_at)
    ).first()
    if finished is None:
        return None
    created_at, finished_at = finished
    return float((finished_at - created_at).total_seconds()) if finished_at else 0.0
