"""The Celery runner for real: API + worker processes + Redis + PostgreSQL.

The end-to-end test posts batches from several tenants at once to a real `sawt serve`, kills one
of two `sawt worker` processes with SIGKILL mid-batch, stops another with SIGTERM, and checks that
every complaint was analysed exactly once and that the rollups equal a recount.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, select, text

from models.pipeline import AnalysisPipeline
from service.batches.models import Batch
from service.complaints.models import Analysis, AnalysisTopic, Complaint
from service.core.config import Settings
from service.core.db import make_engine, make_session_factory, session_scope
from service.core.loading import load_pipeline, make_registry
from service.jobs import tasks
from service.jobs.celery_app import make_celery
from service.tenants.models import Role
from service.trends.models import ALL_TOPICS, NONE, Rollup
from tests.conftest import KeyFactory, _postgres_schema_url, complaints_payload, migrate

REDIS_URL = os.environ.get("SAWT_TEST_REDIS_URL")
POSTGRES_URL = os.environ.get("SAWT_TEST_POSTGRES_URL")

needs_services = pytest.mark.skipif(
    not (REDIS_URL and POSTGRES_URL),
    reason="SAWT_TEST_REDIS_URL and SAWT_TEST_POSTGRES_URL are not set (.ci/run sets them)",
)
pytestmark = [pytest.mark.celery, pytest.mark.postgres, needs_services]

REPO_ROOT = Path(__file__).resolve().parents[2]
# What the `sawt` script runs, without its plugin commands (training): not under test here.
SAWT = [sys.executable, "-c", "from service.cli import app; app()"]
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
        environment="test",
        database_url=postgres_url,
        broker_url=redis_url,
        job_runner="celery",
        worker_chunk_size=50,
        # Redelivery after SIGKILL takes this long (+ a 3 s restore sweep); it must exceed the
        # slowest chunk (50 complaints, well under a second unless the machine is overloaded).
        broker_visibility_timeout=12,
        auto_migrate=False,
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Processes:
    """Child processes with their logs in files; all of them are stopped at teardown."""

    def __init__(self, directory: Path, env: dict[str, str]) -> None:
        self.directory = directory
        self.env = env
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = (self.directory / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            [*SAWT, *args], cwd=REPO_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        self.procs[name] = proc
        return proc

    def log(self, name: str) -> str:
        return (self.directory / f"{name}.log").read_text(encoding="utf-8", errors="replace")

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


@pytest.fixture
def processes(tmp_path: Path, settings: Settings) -> Iterator[Processes]:
    env = {
        **os.environ,
        "SAWT_ENVIRONMENT": "test",
        "SAWT_DATABASE_URL": settings.database_url,
        "SAWT_BROKER_URL": settings.broker_url,
        "SAWT_JOB_RUNNER": "celery",
        "SAWT_WORKER_CHUNK_SIZE": str(settings.worker_chunk_size),
        "SAWT_BROKER_VISIBILITY_TIMEOUT": str(settings.broker_visibility_timeout),
        "SAWT_AUTO_MIGRATE": "false",
        "SAWT_LOG_FORMAT": "json",
        "SAWT_ENCODER_THREADS": "1",
    }
    group = Processes(tmp_path, env)
    try:
        yield group
    finally:
        group.stop_all()


def _wait(
    condition: Callable[[], bool], timeout: float, what: str, logs: Callable[[], str]
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n{logs()[-4000:]}")
        time.sleep(0.2)


def _analysed(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(
            connection.scalar(
                select(func.count()).select_from(Complaint).where(Complaint.status == "analysed")
            )
            or 0
        )


def _last_chunk_event(log: str) -> str | None:
    """ "started" or "done": what the worker last said about a chunk."""
    for line in reversed(log.splitlines()):
        if '"message": "chunk started' in line:
            return "started"
        if '"message": "chunk done' in line:
            return "done"
    return None


def _workers_ready(settings: Settings, count: int) -> Callable[[], bool]:
    app = make_celery(settings)

    def ready() -> bool:
        return len(app.control.ping(timeout=0.5)) >= count

    return ready


def _recount(engine: Engine) -> Counter[tuple[Any, ...]]:
    """Rollup counts recomputed in Python from the complaints and analyses tables."""
    with engine.connect() as connection:
        topics: dict[int, list[str]] = {}
        for analysis_id, topic in connection.execute(
            select(AnalysisTopic.analysis_id, AnalysisTopic.topic)
        ):
            topics.setdefault(analysis_id, []).append(topic)
        expected: Counter[tuple[Any, ...]] = Counter()
        for row in connection.execute(
            select(
                Complaint.tenant_id,
                Complaint.received_at,
                Complaint.service,
                Complaint.region,
                Complaint.channel,
                Analysis.id,
                Analysis.sentiment,
                Analysis.language,
            ).join(Analysis, Analysis.complaint_id == Complaint.id)
        ):
            day = row.received_at.astimezone(UTC).date()
            rest = (row.sentiment, row.language, row.service or NONE, row.region or NONE)
            rest += (row.channel or NONE,)
            expected[(row.tenant_id, day, ALL_TOPICS, *rest)] += 1
            for topic in topics.get(row.id, []):
                expected[(row.tenant_id, day, topic, *rest)] += 1
    return expected


def _rollups(engine: Engine) -> Counter[tuple[Any, ...]]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(
                Rollup.tenant_id,
                Rollup.day,
                Rollup.topic,
                Rollup.sentiment,
                Rollup.language,
                Rollup.service,
                Rollup.region,
                Rollup.channel,
                Rollup.count,
            )
        )
        return Counter({tuple(row[:-1]): row[-1] for row in rows if row[-1]})


@pytest.mark.slow
def test_killed_and_stopped_workers_lose_nothing_and_double_nothing(
    settings: Settings, processes: Processes
) -> None:
    engine = make_engine(settings.database_url)
    keys = {tenant: KeyFactory(settings)(Role.ministry, tenant) for tenant in TENANTS}
    port = _free_port()
    api = processes.start("api", "serve", "--port", str(port))
    for name in ("worker-0", "worker-1"):
        processes.start(name, "worker", "--hostname", f"{name}@%h")

    def all_logs() -> str:
        return "\n".join(f"--- {n}\n{processes.log(n)[-1500:]}" for n in processes.procs)

    base = f"http://127.0.0.1:{port}"

    def api_ready() -> bool:
        if api.poll() is not None:
            raise AssertionError(f"API exited with {api.returncode}\n{processes.log('api')}")
        try:
            return httpx.get(f"{base}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    _wait(api_ready, 90, "the API", all_logs)
    _wait(_workers_ready(settings, 2), 90, "two workers", all_logs)

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
    _wait(lambda: _analysed(engine) >= 150, 120, "first analyses", all_logs)
    _wait(
        lambda: _last_chunk_event(processes.log("worker-0")) == "started", 60, "a chunk", all_logs
    )
    processes.procs["worker-0"].send_signal(signal.SIGKILL)
    processes.procs["worker-0"].wait(timeout=10)
    assert _last_chunk_event(processes.log("worker-0")) == "started"  # killed mid-chunk
    processes.start("worker-2", "worker", "--hostname", "worker-2@%h")

    # SIGTERM worker-1 mid-batch: a warm shutdown finishes (or returns) its chunk and exits 0.
    killed_at = _analysed(engine)
    _wait(lambda: _analysed(engine) >= killed_at + 100, 120, "more analyses", all_logs)
    stopping = processes.procs["worker-1"]
    stopping.send_signal(signal.SIGTERM)
    assert stopping.wait(timeout=60) == 0, processes.log("worker-1")[-3000:]

    def all_done() -> bool:
        with engine.connect() as connection:
            statuses = connection.scalars(select(Batch.status)).all()
        return len(statuses) == len(uploads) and set(statuses) == {"done"}

    _wait(all_done, 150, "every batch done", all_logs)

    # Every complaint analysed exactly once.
    with engine.connect() as connection:
        complaints = connection.scalar(select(func.count()).select_from(Complaint))
        by_status = {
            status: count
            for status, count in connection.execute(
                select(Complaint.status, func.count()).group_by(Complaint.status)
            )
        }
        analyses = connection.scalar(select(func.count()).select_from(Analysis))
        doubled = connection.execute(
            select(Analysis.complaint_id).group_by(Analysis.complaint_id).having(func.count() > 1)
        ).all()
        orphans = connection.scalar(
            text(
                "SELECT count(*) FROM complaints c WHERE NOT EXISTS "
                "(SELECT 1 FROM analyses a WHERE a.complaint_id = c.id)"
            )
        )
    assert complaints == new_complaints
    assert by_status == {"analysed": new_complaints}
    assert analyses == new_complaints and doubled == [] and orphans == 0

    # Rollups equal a recount from the complaints table.
    assert _rollups(engine) == _recount(engine)

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

    # The killed worker was mid-chunk: a surviving worker got that chunk again.
    survivors = processes.log("worker-1") + processes.log("worker-2")
    assert "chunk redelivered" in survivors, all_logs()
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
