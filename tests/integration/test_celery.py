"""The Celery runner for real: API + worker processes + Redis + PostgreSQL.

The end-to-end test posts batches from several tenants at once to a real `sawt serve`, kills one
of two `sawt worker` processes with SIGKILL mid-batch, stops another with SIGTERM, and checks that
every complaint was analysed exactly once and that the rollups equal a recount.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text

from models.pipeline import AnalysisPipeline
from service.batches.models import Batch
from service.complaints.models import Analysis, Complaint
from service.core.config import Environment, JobRunnerKind, Settings
from service.core.db import make_engine, make_session_factory, session_scope
from service.core.loading import load_pipeline, make_registry
from service.jobs import tasks
from service.tenants.models import Role
from service.trends.models import ALL_TOPICS, Rollup
from tests.conftest import KeyFactory, _postgres_schema_url, complaints_payload, migrate
from tests.faults import free_port
from tests.integration.cluster import (
    Processes,
    analysed_count,
    assert_analysed_exactly_once,
    process_env,
    wait_until,
    workers_ready,
)

REDIS_URL = os.environ.get("SAWT_TEST_REDIS_URL")
POSTGRES_URL = os.environ.get("SAWT_TEST_POSTGRES_URL")

needs_services = pytest.mark.skipif(
    not (REDIS_URL and POSTGRES_URL),
    reason="SAWT_TEST_REDIS_URL and SAWT_TEST_POSTGRES_URL are not set (.ci/run sets them)",
)
pytestmark = [pytest.mark.celery, pytest.mark.postgres, needs_services]

TENANTS = ("health", "justice", "interior")
BATCH_SIZE = 300
REPOSTED = 100  # rows of the first batch the second batch of tenant 0 posts again


@pytest.fixture
def postgres_url() -> Iterator[str]:
    assert POSTGRES_URL is not None
    yield from _postgres_schema_url(POSTGRES_URL)


@pytest.fixture
def redis_url() -> Iterator[str]:
    import redis

    assert REDIS_URL is not None
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    yield REDIS_URL
    client.flushdb()
    client.close()


@pytest.fixture
def settings(postgres_url: str, redis_url: str) -> Settings:
    migrate(postgres_url)
    return Settings(
        environment=Environment.test,
        database_url=postgres_url,
        broker_url=redis_url,
        job_runner=JobRunnerKind.celery,
        worker_chunk_size=50,
        # Redelivery after SIGKILL takes this long (+ a 3 s restore sweep); it must exceed the
        # slowest chunk (50 complaints, well under a second unless the machine is overloaded).
        broker_visibility_timeout=12,
        auto_migrate=False,
    )


@pytest.fixture
def processes(tmp_path: Path, settings: Settings) -> Iterator[Processes]:
    group = Processes(tmp_path, process_env(settings))
    try:
        yield group
    finally:
        group.stop_all()


def _last_chunk_event(log: str) -> str | None:
    """ "started" or "done": what the worker last said about a chunk."""
    for line in reversed(log.splitlines()):
        if '"message": "chunk started' in line:
            return "started"
        if '"message": "chunk done' in line:
            return "done"
    return None


@pytest.mark.slow
def test_killed_and_stopped_workers_lose_nothing_and_double_nothing(
    settings: Settings, processes: Processes
) -> None:
    engine = make_engine(settings.database_url)
    keys = {tenant: KeyFactory(settings)(Role.ministry, tenant) for tenant in TENANTS}
    port = free_port()
    api = processes.start("api", "serve", "--port", str(port))
    for name in ("worker-0", "worker-1"):
        processes.start(name, "worker", "--hostname", f"{name}@%h")

    all_logs = processes.all_logs
    base = f"http://127.0.0.1:{port}"

    def api_ready() -> bool:
        if api.poll() is not None:
            raise AssertionError(f"API exited with {api.returncode}\n{processes.log('api')}")
        try:
            return httpx.get(f"{base}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(api_ready, 90, "the API", all_logs)
    wait_until(workers_ready(settings, 2), 90, "two workers", all_logs)

    # Six batches from three tenants, posted at once; tenant 0 re-posts known ids.
    uploads = []
    for t, tenant in enumerate(TENANTS):
        uploads.append((tenant, complaints_payload(BATCH_SIZE, prefix=f"{tenant}-a")))
        start = BATCH_SIZE - REPOSTED if t == 0 else 0
        prefix = f"{tenant}-a" if t == 0 else f"{tenant}-b"
        uploads.append((tenant, complaints_payload(BATCH_SIZE, prefix=prefix, start=start)))

    def post(upload: tuple[str, dict[str, Any]]) -> dict[str, Any]:
        tenant, payload = upload
        with httpx.Client(base_url=base, timeout=60) as client:
            response = client.post(
                "/v1/batches",
                json=payload,
                headers={"Authorization": f"Bearer {keys[tenant]}"},
            )
        assert response.status_code == 202, response.text
        return {"tenant": tenant, **response.json()}

    # Tenant 0's second batch shares ids with its first: post it last so they are known.
    with ThreadPoolExecutor(max_workers=5) as pool:
        accepted = list(pool.map(post, [u for i, u in enumerate(uploads) if i != 1]))
    accepted.append(post(uploads[1]))
    new_complaints = len(uploads) * BATCH_SIZE - REPOSTED
    assert sum(b["accepted"] - b["duplicates"] for b in accepted) == new_complaints
    assert accepted[-1]["duplicates"] == REPOSTED

    # SIGKILL worker-0 in the middle of a chunk: that chunk must come back through Redis.
    wait_until(lambda: analysed_count(engine) >= 150, 120, "first analyses", all_logs)
    wait_until(
        lambda: _last_chunk_event(processes.log("worker-0")) == "started", 60, "a chunk", all_logs
    )
    processes.procs["worker-0"].send_signal(signal.SIGKILL)
    processes.procs["worker-0"].wait(timeout=10)
    assert _last_chunk_event(processes.log("worker-0")) == "started"  # killed mid-chunk
    processes.start("worker-2", "worker", "--hostname", "worker-2@%h")

    # SIGTERM worker-1 mid-batch: a warm shutdown finishes (or returns) its chunk and exits 0.
    killed_at = analysed_count(engine)
    wait_until(lambda: analysed_count(engine) >= killed_at + 100, 120, "more analyses", all_logs)
    stopping = processes.procs["worker-1"]
    stopping.send_signal(signal.SIGTERM)
    assert stopping.wait(timeout=60) == 0, processes.log("worker-1")[-3000:]

    def all_done() -> bool:
        with engine.connect() as connection:
            statuses = connection.scalars(select(Batch.status)).all()
        return len(statuses) == len(uploads) and set(statuses) == {"done"}

    wait_until(all_done, 150, "every batch done", all_logs)

    # Every complaint analysed exactly once; rollups equal a recount from the complaints table.
    assert_analysed_exactly_once(engine, new_complaints)

    # Progress through the API, per tenant, as the ministries see it.
    with httpx.Client(base_url=base, timeout=30) as client:
        for batch in accepted:
            body = client.get(
                f"/v1/batches/{batch['id']}",
                headers={"Authorization": f"Bearer {keys[batch['tenant']]}"},
            ).json()
            assert body["status"] == "done"
            progress = body["progress"]
            assert progress["done"] == progress["total"] == batch["accepted"]
        metrics = client.get("/metrics").text
    assert 'sawt_batches{status="done"} 6.0' in metrics
    assert 'sawt_queue_messages{state="waiting"} 0.0' in metrics
    assert "sawt_complaints_pending 0.0" in metrics

    # The killed worker was mid-chunk: its message comes back through Redis once the visibility
    # timeout has passed, to a surviving worker. A kill that fell between the chunk's commit and
    # its acknowledgement lets every batch finish first; the late copy then finds nothing pending.
    def redelivered() -> bool:
        return "chunk redelivered" in processes.log("worker-1") + processes.log("worker-2")

    wait_until(redelivered, 60, "the killed worker's chunk, redelivered", all_logs)
    assert_analysed_exactly_once(engine, new_complaints)
    engine.dispose()


@pytest.fixture
def pipeline(settings: Settings) -> AnalysisPipeline:
    return load_pipeline(settings, make_registry(settings))


def _seed_batch(settings: Settings, n: int) -> tuple[str, list[int]]:
    """A queued batch of `n` complaints, stored the way POST /v1/batches stores it."""
    from service.batches.parsing import parse_upload
    from service.batches.service import ingest_batch
    from service.tenants.service import get_tenant_by_name

    KeyFactory(settings)(Role.ministry, "health")
    engine = make_engine(settings.database_url)
    factory = make_session_factory(engine)
    with session_scope(factory) as session:
        tenant = get_tenant_by_name(session, name="health")
        assert tenant is not None
        upload = parse_upload(json.dumps(complaints_payload(n)).encode(), "application/json")
        batch = ingest_batch(session, tenant_id=tenant.id, upload=upload, source_format="json")
        batch_id = batch.batch.id
        ids = list(
            session.scalars(
                select(Complaint.id).where(Complaint.batch_id == batch_id).order_by(Complaint.id)
            )
        )
    engine.dispose()
    return batch_id, ids


def test_a_chunk_delivered_twice_at_once_is_analysed_once(
    settings: Settings, pipeline: AnalysisPipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    _batch_id, ids = _seed_batch(settings, 60)
    resources = tasks.WorkerResources(settings)
    monkeypatch.setattr(resources, "pipeline", lambda: pipeline)
    barrier = threading.Barrier(2)
    results: list[tuple[int, int]] = []
    slow_analyse = pipeline.analyze

    def analyse_after_barrier(texts: Any, **kwargs: Any) -> Any:
        out = slow_analyse(texts, **kwargs)
        barrier.wait(timeout=30)  # both copies have analysed before either one claims
        return out

    monkeypatch.setattr(pipeline, "analyze", analyse_after_barrier)

    def run() -> None:
        results.append(tasks.analyse_chunk(resources, ids))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(results) == [(0, 0), (60, 0)]  # one copy moved all 60, none failed
    with resources.engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(Analysis)) == 60
        rollup_total = connection.scalar(
            select(func.sum(Rollup.count)).where(Rollup.topic == ALL_TOPICS)
        )
    assert rollup_total == 60
    # A late third delivery finds nothing pending and analyses nothing.
    monkeypatch.setattr(pipeline, "analyze", slow_analyse)
    assert tasks.analyse_chunk(resources, ids) == (0, 0)
    resources.dispose()


def test_dispatch_claims_a_batch_once_and_marks_it_done_once(settings: Settings) -> None:
    from service.batches.service import claim_batch_for_processing, finish_batch_if_complete

    batch_id, ids = _seed_batch(settings, 5)
    engine = make_engine(settings.database_url)
    factory = make_session_factory(engine)
    with session_scope(factory) as session:
        assert claim_batch_for_processing(session, batch_id=batch_id) == ids
    with session_scope(factory) as session:
        assert claim_batch_for_processing(session, batch_id=batch_id) is None
        assert finish_batch_if_complete(session, batch_id=batch_id) is None  # all pending
        session.execute(text("UPDATE complaints SET status = 'analysed'"))
    with session_scope(factory) as session:
        assert finish_batch_if_complete(session, batch_id=batch_id) is not None
    with session_scope(factory) as session:
        assert finish_batch_if_complete(session, batch_id=batch_id) is None
        assert session.get(Batch, batch_id).status == "done"  # type: ignore[union-attr]
    engine.dispose()
