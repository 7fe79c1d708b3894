"""The ingest fast path (COPY on PostgreSQL, executemany on SQLite) stores what the API promises.

Run on both databases (`database_url` is parametrised in conftest): the rows, their redaction,
their JSON columns, links to known complaints instead of copies, per-row errors, and concurrent
uploads racing on the same external ids.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from service.batches.models import Batch, BatchItem
from service.batches.parsing import ParsedUpload, parse_upload
from service.batches.service import IngestResult, ingest_batch
from service.complaints.models import Complaint
from service.core.db import make_engine, make_session_factory
from service.tenants.models import Tenant
from tests.conftest import complaints_payload, migrate


@pytest.fixture
def factory(database_url: str) -> Iterator[sessionmaker[Session]]:
    migrate(database_url)
    engine = make_engine(database_url)
    sessions = make_session_factory(engine)
    with sessions() as session:
        session.add_all([Tenant(name="health"), Tenant(name="justice")])
        session.commit()
    yield sessions
    engine.dispose()


def _tenant(factory: sessionmaker[Session], name: str) -> int:
    with factory() as session:
        tenant_id = session.scalar(select(Tenant.id).where(Tenant.name == name))
    assert tenant_id is not None
    return tenant_id


def _upload(payload: object) -> ParsedUpload:
    return parse_upload(json.dumps(payload).encode(), "application/json")


def _ingest(factory: sessionmaker[Session], tenant: int, upload: ParsedUpload) -> IngestResult:
    with factory() as session:
        return ingest_batch(session, tenant_id=tenant, upload=upload, source_format="json")


def test_rows_are_stored_redacted_in_order_with_their_fields(
    factory: sessionmaker[Session],
) -> None:
    tenant = _tenant(factory, "health")
    payload = complaints_payload(300)
    payload["complaints"][7]["metadata"] = {"ticket": "T-1", "urgent": True, "score": 2.5}
    payload["complaints"][8]["received_at"] = "2026-03-01T10:00:00+01:00"
    payload["complaints"][9].pop("channel")
    result = _ingest(factory, tenant, _upload(payload))

    assert not result.replayed and result.batch.accepted == 300
    with factory() as session:
        items = session.execute(
            select(BatchItem.row, Complaint)
            .join(Complaint, Complaint.id == BatchItem.complaint_id)
            .where(BatchItem.batch_id == result.batch.id)
            .order_by(BatchItem.row)
        ).all()
    assert [row for row, _ in items] == list(range(1, 301))
    complaints = [c for _, c in items]
    assert [c.external_id for c in complaints] == [f"c-{i}" for i in range(300)]
    ids = [c.id for c in complaints]
    assert ids == sorted(ids) and len(set(ids)) == 300  # row order is id order
    assert all(c.status == "pending" and c.batch_id == result.batch.id for c in complaints)
    pii = complaints[7]
    assert "06 12 34 56 78" not in pii.text and "karim.benali" not in pii.text
    assert set(pii.redactions) >= {"phone", "email", "cin"}
    assert pii.extra == {"ticket": "T-1", "urgent": True, "score": 2.5}
    assert complaints[8].received_at == datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    assert complaints[9].channel is None and complaints[9].service == "civil_registry"
    assert complaints[0].text.startswith("بقيت كنتسنى")  # Arabic survives the round trip


def test_known_external_ids_are_linked_not_copied_and_errors_are_kept(
    factory: sessionmaker[Session],
) -> None:
    health, justice = _tenant(factory, "health"), _tenant(factory, "justice")
    first = _ingest(factory, health, _upload(complaints_payload(50)))
    payload = complaints_payload(60)  # 50 known ids + 10 new
    payload["complaints"].append({"id": "bad", "text": ""})
    second = _ingest(factory, health, _upload(payload))
    other_tenant = _ingest(factory, justice, _upload(complaints_payload(50)))

    assert second.batch.duplicates == 50 and second.batch.accepted == 60
    assert second.batch.rejected == 1
    assert [e["row"] for e in second.batch.errors] == [61]
    assert other_tenant.batch.duplicates == 0
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(Complaint)) == 50 + 10 + 50
        first_ids = dict(
            session.execute(
                select(Complaint.external_id, Complaint.id).where(
                    Complaint.batch_id == first.batch.id
                )
            ).all()
        )
        linked = session.execute(
            select(Complaint.external_id, BatchItem.complaint_id, BatchItem.duplicate)
            .join(Complaint, Complaint.id == BatchItem.complaint_id)
            .where(BatchItem.batch_id == second.batch.id)
        ).all()
    assert len(linked) == 60
    for external_id, complaint_id, duplicate in linked:
        assert duplicate == (external_id in first_ids)
        if duplicate:
            assert complaint_id == first_ids[external_id]


def test_concurrent_uploads_of_the_same_ids_store_each_complaint_once(
    factory: sessionmaker[Session],
) -> None:
    tenant = _tenant(factory, "health")
    uploads = [_upload(complaints_payload(2000, start=i * 1000)) for i in range(3)]
    barrier = threading.Barrier(len(uploads))
    results: list[IngestResult] = []
    errors: list[BaseException] = []

    def post(upload: ParsedUpload) -> None:
        barrier.wait(timeout=30)
        try:
            results.append(_ingest(factory, tenant, upload))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=post, args=(u,)) for u in uploads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    assert sum(r.batch.accepted for r in results) == 6000
    with factory() as session:
        stored = session.scalar(select(func.count()).select_from(Complaint))
        distinct = session.scalar(select(func.count(func.distinct(Complaint.external_id))))
        items = session.scalar(select(func.count()).select_from(BatchItem))
        duplicates = session.scalar(select(func.sum(Batch.duplicates)))
    assert stored == distinct == 4000  # ids 0..3999, each stored once
    assert items == 6000 and duplicates == 2000
