"""Faults injected into a running service; after each, nothing lost, nothing doubled.

- database unreachable at API start: /healthz answers, /readyz and database routes answer 503,
  the API becomes ready by itself once the database is back (an un-migrated database still
  refuses to start);
- database cut mid-batch, under the in-process runner and under a Celery worker: the work is
  retried with backoff and every complaint is analysed exactly once;
- Redis killed (memory only, so every message is lost) and restarted mid-batch;
- disk full (ENOSPC) while writing a model artifact or the registry index;
- a corrupt or incompatible artifact promoted: reload refused, the previous models stay served.

The database outages are PostgreSQL behind a TCP proxy (tests/faults.py) that the test cuts and
restores. SQLite is a local file: it cannot become unreachable while the process runs (a lock only
makes writers wait, busy_timeout), so those cases run on PostgreSQL only.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from models.registry import ArtifactError, Registry
from service.batches.models import Batch
from service.core.config import Environment, JobRunnerKind, Settings
from service.core.db import make_engine
from service.core.migrate import SchemaOutOfDate
from service.main import create_app
from service.tenants.models import Role
from tests.conftest import (
    POSTGRES_URL,
    KeyFactory,
    _postgres_schema_url,
    auth,
    complaints_payload,
    migrate,
    wait_for_batch,
)
from tests.faults import REDIS_SERVER, RedisServer, TcpProxy, target_of, through
from tests.integration.cluster import (
    Processes,
    analysed_count,
    assert_analysed_exactly_once,
    process_env,
    wait_until,
    workers_ready,
)

SHIPPED_MODELS = Path(__file__).resolve().parents[2] / "models" / "artifacts"
needs_postgres = pytest.mark.skipif(
    not POSTGRES_URL, reason="SAWT_TEST_POSTGRES_URL is not set (.ci/run sets it)"
)
needs_redis_server = pytest.mark.skipif(
    not os.path.exists(REDIS_SERVER), reason=f"{REDIS_SERVER} is not installed"
)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    assert POSTGRES_URL is not None
    yield from _postgres_schema_url(POSTGRES_URL)


@pytest.fixture
def db_proxy(postgres_url: str) -> Iterator[TcpProxy]:
    """PostgreSQL behind a proxy the test can cut; it starts up (call `cut` to start down)."""
    with TcpProxy(*target_of(postgres_url)) as proxy:
        yield proxy


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


def _wait_ready(client: TestClient, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, client.get("/readyz").json()
        time.sleep(0.2)


def _assert_database_unavailable(response: Any) -> None:
    assert response.status_code == 503, response.text
    assert "database unavailable" in response.json()["detail"]
    assert response.headers["Retry-After"]


# -- database unreachable at start ---------------------------------------------------------------


def test_unmigrated_database_still_refuses_to_start(
    database_url: str, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(database_url, auto_migrate=False)
    with pytest.raises(SchemaOutOfDate, match="sawt db upgrade"), TestClient(create_app(settings)):
        pass


@needs_postgres
@pytest.mark.postgres
def test_api_starts_without_database_and_becomes_ready_when_it_is_back(
    postgres_url: str, db_proxy: TcpProxy, make_settings: Callable[..., Settings]
) -> None:
    migrate(postgres_url)
    key = KeyFactory(make_settings(postgres_url))(Role.ministry, "health")
    db_proxy.cut()
    settings = make_settings(through(postgres_url, db_proxy), worker_chunk_size=50)
    with TestClient(create_app(settings)) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"] is False
        assert ready.json()["checks"]["models"] is True
        _assert_database_unavailable(client.get("/v1/batches/any", headers=auth(key)))
        _assert_database_unavailable(
            client.post("/v1/batches", json=complaints_payload(5), headers=auth(key))
        )

        db_proxy.restore()
        _wait_ready(client)
        assert client.get("/readyz").json()["checks"] == {"models": True, "database": True}
        batch = client.post("/v1/batches", json=complaints_payload(120), headers=auth(key))
        assert batch.status_code == 202, batch.text
        # Done means the job runner was started once the database came back.
        assert (
            wait_for_batch(client, batch.json()["id"], key, timeout=120)["progress"]["done"] == 120
        )
    engine = make_engine(postgres_url)
    assert_analysed_exactly_once(engine, 120)
    engine.dispose()


# -- database cut mid-batch --------------------------------------------------------------------


def _cut_mid_batch(
    proxy: TcpProxy, engine: Engine, total: int, logs: Callable[[], str], *, hold: float
) -> int:
    """Cut the database once a few chunks are in, hold the outage, restore; returns how many
    complaints were analysed when it was cut."""
    wait_until(lambda: analysed_count(engine) >= 100, 120, "first analyses", logs)
    proxy.cut()
    cut_at = analysed_count(engine)
    assert cut_at < total, "the batch finished before the fault: nothing was tested"
    time.sleep(hold)
    assert analysed_count(engine) <= cut_at + 50  # at most the chunk in flight committed
    proxy.restore()
    return cut_at


@needs_postgres
@pytest.mark.postgres
@pytest.mark.slow
def test_database_cut_mid_batch_inprocess_runner_retries_and_loses_nothing(
    postgres_url: str, db_proxy: TcpProxy, make_settings: Callable[..., Settings]
) -> None:
    migrate(postgres_url)
    key = KeyFactory(make_settings(postgres_url))(Role.ministry, "health")
    settings = make_settings(through(postgres_url, db_proxy), worker_chunk_size=50)
    engine = make_engine(postgres_url)  # the test's own view, not through the proxy
    with TestClient(create_app(settings)) as client:
        batch = client.post("/v1/batches", json=complaints_payload(800), headers=auth(key))
        assert batch.status_code == 202, batch.text
        wait_until(lambda: analysed_count(engine) >= 100, 120, "first analyses", lambda: "")
        db_proxy.cut()
        cut_at = analysed_count(engine)
        assert cut_at < 800, "the batch finished before the fault: nothing was tested"
        _assert_database_unavailable(
            client.get(f"/v1/batches/{batch.json()['id']}", headers=auth(key))
        )
        assert client.get("/readyz").json()["checks"]["database"] is False
        time.sleep(3)
        assert analysed_count(engine) <= cut_at + 50  # at most the chunk in flight committed
        db_proxy.restore()
        status = wait_for_batch(client, batch.json()["id"], key, timeout=120)
    assert status["progress"] == {"total": 800, "done": 800, "failed": 0, "pending": 0}
    assert_analysed_exactly_once(engine, 800)
    engine.dispose()


def _celery_settings(postgres_url: str, broker_url: str, visibility_timeout: int = 12) -> Settings:
    migrate(postgres_url)
    return Settings(
        environment=Environment.test,
        database_url=postgres_url,
        broker_url=broker_url,
        job_runner=JobRunnerKind.celery,
        worker_chunk_size=50,
        broker_visibility_timeout=visibility_timeout,
        auto_migrate=False,
    )


def _all_done(engine: Engine, batches: int) -> Callable[[], bool]:
    def done() -> bool:
        with engine.connect() as connection:
            statuses = connection.scalars(select(Batch.status)).all()
        return len(statuses) == batches and set(statuses) == {"done"}

    return done


@needs_postgres
@needs_redis_server
@pytest.mark.postgres
@pytest.mark.celery
@pytest.mark.slow
def test_database_cut_mid_batch_celery_worker_retries_and_loses_nothing(
    postgres_url: str, db_proxy: TcpProxy, redis_server: RedisServer, tmp_path: Path
) -> None:
    settings = _celery_settings(postgres_url, redis_server.url, visibility_timeout=4)
    key = KeyFactory(settings)(Role.ministry, "health")
    worker_settings = settings.model_copy(update={"database_url": through(postgres_url, db_proxy)})
    processes = Processes(tmp_path, process_env(worker_settings))
    engine = make_engine(postgres_url)
    try:
        processes.start("worker", "worker", "--hostname", "worker@%h")
        wait_until(workers_ready(settings, 1), 90, "the worker", processes.all_logs)
        with TestClient(create_app(settings)) as client:
            batch = client.post("/v1/batches", json=complaints_payload(600), headers=auth(key))
            assert batch.status_code == 202, batch.text
            # Longer than MAX_RETRIES retries take (delays capped at visibility timeout / 4 =
            # 1 s): a chunk must wait the outage out, not be abandoned.
            _cut_mid_batch(db_proxy, engine, 600, processes.all_logs, hold=12)
            wait_until(_all_done(engine, 1), 120, "the batch done", processes.all_logs)
    finally:
        processes.stop_all()
    assert "chunk failed (OperationalError); retrying" in processes.log("worker")
    assert_analysed_exactly_once(engine, 600)
    engine.dispose()


# -- Redis restart -----------------------------------------------------------------------------


@needs_postgres
@needs_redis_server
@pytest.mark.postgres
@pytest.mark.celery
@pytest.mark.slow
def test_redis_restart_mid_batch_loses_nothing(
    postgres_url: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    settings = _celery_settings(postgres_url, redis_server.url)
    keys = {t: KeyFactory(settings)(Role.ministry, t) for t in ("health", "justice")}
    processes = Processes(tmp_path, process_env(settings))
    engine = make_engine(postgres_url)
    try:
        processes.start("worker", "worker", "--hostname", "worker@%h")
        wait_until(workers_ready(settings, 1), 90, "the worker", processes.all_logs)
        with TestClient(create_app(settings)) as client:
            for tenant, key in keys.items():
                for part in ("a", "b"):
                    payload = complaints_payload(250, prefix=f"{tenant}-{part}")
                    response = client.post("/v1/batches", json=payload, headers=auth(key))
                    assert response.status_code == 202, response.text
            wait_until(
                lambda: analysed_count(engine) >= 150, 120, "first analyses", processes.all_logs
            )
            redis_server.kill()  # queued, unacknowledged and retried messages: all gone
            assert analysed_count(engine) < 1000, "done before the fault: nothing was tested"
            # A batch posted while the broker is down is accepted: its message is sent later.
            late = client.post(
                "/v1/batches",
                json=complaints_payload(100, prefix="late"),
                headers=auth(keys["health"]),
            )
            assert late.status_code == 202, late.text
            time.sleep(2)
            redis_server.start()
            wait_until(_all_done(engine, 5), 150, "every batch done", processes.all_logs)
    finally:
        processes.stop_all()
    assert "re-sent from the database" in processes.log("worker")
    assert_analysed_exactly_once(engine, 1100)
    engine.dispose()


# -- model artifacts ---------------------------------------------------------------------------


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """A copy of the shipped registry, free to break."""
    copy = tmp_path / "artifacts"
    shutil.copytree(SHIPPED_MODELS, copy)
    return copy


@pytest.fixture
def model_client(
    sqlite_url: str, model_dir: Path, make_settings: Callable[..., Settings]
) -> Iterator[tuple[TestClient, KeyFactory]]:
    settings = make_settings(sqlite_url, model_dir=model_dir)
    migrate(sqlite_url)
    with TestClient(create_app(settings, start_runner=False)) as client:
        yield client, KeyFactory(settings)


def _served(client: TestClient, key: str) -> tuple[str, str]:
    """What /v1/models says and what /v1/analyze actually used."""
    models = client.get("/v1/models", headers=auth(key))
    analysed = client.post(
        "/v1/analyze", json={"texts": ["Le guichet est fermé"]}, headers=auth(key)
    )
    assert models.status_code == analysed.status_code == 200, analysed.text
    return models.json()["model_version"], analysed.json()["results"][0]["model_version"]


def _task_listing(registry: Registry, task: str) -> dict[str, bytes | None]:
    """Every entry of a task's directory (hidden ones too), with registry.json's bytes."""
    task_dir = registry.root / task
    return {
        p.name: p.read_bytes() if p.name == "registry.json" else None for p in task_dir.iterdir()
    }


def _enospc(*_args: Any, **_kwargs: Any) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_disk_full_while_writing_an_artifact_keeps_the_promoted_version(
    model_client: tuple[TestClient, KeyFactory], model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, make_key = model_client
    admin = make_key(Role.admin)
    before = _served(client, admin)
    registry = Registry(model_dir)
    model, _meta = registry.load("langid")
    listing = _task_listing(registry, "langid")

    # 1. The disk fills while the model writes its own files.
    original_save = model.save

    def save_then_fill_disk(directory: Path) -> None:
        original_save(directory)
        _enospc()

    monkeypatch.setattr(model, "save", save_then_fill_disk)
    with pytest.raises(OSError) as full:
        registry.publish(model, task="langid", version="langid-full-1", promote=True, force=True)
    assert full.value.errno == errno.ENOSPC
    assert _task_listing(registry, "langid") == listing
    monkeypatch.setattr(model, "save", original_save)

    # 2. The disk fills while meta.json is written (the data is in, fsync fails).
    with monkeypatch.context() as patch:
        patch.setattr(os, "fsync", _enospc)
        with pytest.raises(OSError, match="No space left"):
            registry.publish(
                model, task="langid", version="langid-full-2", promote=True, force=True
            )
    assert _task_listing(registry, "langid") == listing

    # 3. The version is written, the disk fills while registry.json is rewritten to promote it.
    registry.publish(model, task="langid", version="langid-full-3")
    listing = _task_listing(registry, "langid")
    with monkeypatch.context() as patch:
        patch.setattr(os, "fsync", _enospc)
        with pytest.raises(OSError, match="No space left"):
            registry.promote("langid", "langid-full-3", force=True)
    assert _task_listing(registry, "langid") == listing  # registry.json byte for byte, no temp

    reloaded = client.post("/v1/models/reload", headers=auth(admin))
    assert reloaded.status_code == 200, reloaded.text
    assert _served(client, admin) == before
    assert "langid-full" not in before[0]


def _corrupt_a_file(directory: Path) -> str:
    target = directory / "model.joblib"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    return "file 'model.joblib' is corrupt"


def _newer_schema(directory: Path) -> str:
    meta = json.loads((directory / "meta.json").read_text())
    meta["schema_version"] = 99
    (directory / "meta.json").write_text(json.dumps(meta))
    return "schema_version 99 is newer"


def _unknown_kind(directory: Path) -> str:
    meta = json.loads((directory / "meta.json").read_text())
    meta["kind"] = "langid-from-the-future"
    (directory / "meta.json").write_text(json.dumps(meta))
    return "unknown model kind 'langid-from-the-future'"


@pytest.mark.parametrize("damage", [_corrupt_a_file, _newer_schema, _unknown_kind])
def test_corrupt_or_incompatible_artifact_is_refused_and_the_previous_one_stays_served(
    model_client: tuple[TestClient, KeyFactory],
    model_dir: Path,
    damage: Callable[[Path], str],
) -> None:
    client, make_key = model_client
    admin = make_key(Role.admin)
    before = _served(client, admin)
    registry = Registry(model_dir)
    model, _meta = registry.load("langid")
    registry.publish(model, task="langid", version="langid-damaged", promote=True, force=True)
    problem = damage(registry.path("langid", "langid-damaged"))

    reloaded = client.post("/v1/models/reload", headers=auth(admin))
    assert reloaded.status_code == 409, reloaded.text
    assert "reload refused" in reloaded.json()["detail"]
    assert problem in reloaded.json()["detail"]
    assert _served(client, admin) == before
    # Promoting it again is refused at the registry too, with the same reason.
    with pytest.raises(ArtifactError, match=re.escape(problem)):
        registry.promote("langid", "langid-damaged", force=True)


def _republish_on_adapter(registry: Registry, task: str, adapter: str) -> None:
    """The promoted head again, as if fit on the encoder with LoRA `adapter` merged in."""
    model, meta = registry.load(task)
    config = {**meta.extra.get("training_config", {}), "encoder_adapter": adapter}
    registry.publish(
        model,
        task=task,
        version=f"{meta.version}-on-{adapter}",
        extra={**meta.extra, "training_config": config},
        promote=True,
        force=True,
    )


@pytest.mark.parametrize(
    ("tasks", "problem"),
    [
        (("topics",), "promoted heads were fit on different encoders"),
        (("sentiment", "topics"), "adapter lora-never-published: no readable"),
    ],
    ids=["heads-on-different-encoders", "adapter-missing"],
)
def test_heads_that_cannot_share_the_served_encoder_are_refused_at_reload(
    model_client: tuple[TestClient, KeyFactory],
    model_dir: Path,
    tasks: tuple[str, ...],
    problem: str,
) -> None:
    client, make_key = model_client
    admin = make_key(Role.admin)
    before = _served(client, admin)
    registry = Registry(model_dir)
    for task in tasks:
        _republish_on_adapter(registry, task, "lora-never-published")

    reloaded = client.post("/v1/models/reload", headers=auth(admin))
    assert reloaded.status_code == 409, reloaded.text
    assert problem in reloaded.json()["detail"]
    assert _served(client, admin) == before
