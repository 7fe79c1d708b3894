"""An API restart mid-batch resumes the batch: every complaint analysed exactly once."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from service.complaints.models import Analysis, Complaint
from service.core.config import Settings
from service.core.db import make_engine, make_session_factory
from service.core.loading import load_pipeline, make_registry
from service.jobs.processing import process_batch
from service.main import create_app
from tests.conftest import KeyFactory, auth, complaints_payload, migrate, wait_for_batch


class Crash(Exception):
    pass


def test_restart_mid_batch_loses_nothing_and_doubles_nothing(
    settings: Settings, make_key: KeyFactory
) -> None:
    migrate(settings.database_url)
    key = make_key()
    # 1. The API accepts a batch and goes down before its runner touches it.
    with TestClient(create_app(settings, start_runner=False)) as client:
        batch = client.post("/v1/batches", json=complaints_payload(1000), headers=auth(key)).json()
        assert (
            client.get(f"/v1/batches/{batch['id']}", headers=auth(key)).json()["progress"][
                "pending"
            ]
            == 1000
        )

    # 2. A worker processes three chunks, then dies mid-batch.
    engine = make_engine(settings.database_url)
    factory = make_session_factory(engine)
    pipeline = load_pipeline(settings, make_registry(settings))
    chunks = []

    def crash_after_three(batch_id: str, moved: int) -> None:
        chunks.append(moved)
        if len(chunks) == 3:
            raise Crash

    with pytest.raises(Crash):
        process_batch(
            batch["id"],
            session_factory=factory,
            pipeline=pipeline,
            chunk_size=100,
            on_chunk=crash_after_three,
        )
    with factory() as session:
        analysed = session.scalar(select(func.count()).select_from(Analysis))
    assert analysed == 300

    # 3. The API restarts: its runner resumes the half-done batch.
    with TestClient(create_app(settings)) as client:
        status = wait_for_batch(client, batch["id"], key)
    assert status["progress"] == {"total": 1000, "done": 1000, "failed": 0, "pending": 0}

    with factory() as session:
        per_complaint = session.execute(
            select(Analysis.complaint_id, func.count()).group_by(Analysis.complaint_id)
        ).all()
        complaints = session.scalar(select(func.count()).select_from(Complaint))
        embedding_sizes = set(session.scalars(select(func.length(Analysis.embedding))))
    engine.dispose()
    assert embedding_sizes == {384 * 2}, "one float16 embedding per analysis, for discovery"
    assert complaints == 1000
    assert len(per_complaint) == 1000
    assert all(count == 1 for _, count in per_complaint)
