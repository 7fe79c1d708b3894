"""Celery tasks: a batch is split into chunks; each chunk is analysed in one transaction.

`dispatch_batch` claims a `queued` batch and publishes one `process_chunk` message per chunk of
pending complaint ids, inside the claiming transaction: if the dispatcher dies before it commits,
the batch is still `queued` and the redelivered dispatch starts over (a chunk published twice is
harmless). `process_chunk` re-reads which of its complaints are still pending, so a redelivered
or duplicated chunk analyses only what nobody has, then marks the batch done when nothing of it
is pending any more.

Each worker process loads the models once (`WorkerResources`), and again only when a new version
is promoted in the registry.

Faults: a task that fails because the database is unreachable is retried with capped exponential
backoff for as long as the outage lasts (other errors give up after MAX_RETRIES). A Redis that
restarts without persistence forgets every message; `BrokerWatch` notices (a marker key is gone)
and re-sends, from the database, every unfinished batch.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from celery import Task, shared_task
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError

from models.pipeline import AnalysisPipeline
from models.registry import ArtifactError
from service.batches.models import Batch, BatchStatus
from service.batches.service import claim_batch_for_processing, finish_batch_if_complete
from service.complaints.models import Complaint, ComplaintStatus
from service.core.config import Settings
from service.core.db import database_unavailable, make_engine, make_session_factory, session_scope
from service.core.loading import load_pipeline, make_registry
from service.core.logging import bind_batch
from service.core.migrate import check_schema
from service.jobs.celery_app import CHUNK_TASK, DISPATCH_TASK, QUEUE, SawtCelery
from service.jobs.processing import process_complaints
from service.ops import metrics

log = logging.getLogger(__name__)

RELOAD_CHECK_SECONDS = 30.0
MAX_RETRIES = 8  # for errors other than an unreachable database, retried until it is back
BROKER_MARKER = "sawt:broker-marker"
BROKER_CHECK_SECONDS = 2.0


class WorkerResources:
    """What one worker process keeps: a connection pool and the loaded models."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = make_engine(settings.database_url)
        check_schema(self.engine)
        self.session_factory = make_session_factory(self.engine)
        self.registry = make_registry(settings)
        self._pipeline: AnalysisPipeline | None = None
        self._checked_at = 0.0
        self._lock = threading.Lock()

    def pipeline(self) -> AnalysisPipeline:
        with self._lock:
            if self._pipeline is None:
                self._pipeline = self._load()
            elif time.monotonic() - self._checked_at > RELOAD_CHECK_SECONDS:
                self._reload_if_promoted(self._pipeline)
            return self._pipeline

    def _load(self) -> AnalysisPipeline:
        started = time.perf_counter()
        pipeline = load_pipeline(self.settings, self.registry)
        self._checked_at = time.monotonic()
        metrics.set_model_versions(pipeline.versions)
        log.info(
            "models loaded in %.1fs: %s",
            time.perf_counter() - started,
            pipeline.model_version,
            extra={"model_version": pipeline.model_version},
        )
        return pipeline

    def _reload_if_promoted(self, current: AnalysisPipeline) -> None:
        """Pick up `sawt models promote` without a restart (checked every 30 s at most)."""
        self._checked_at = time.monotonic()
        try:
            promoted = {
                task: self.registry.promoted_version(task)
                for task in current.versions
                if task != "encoder"
            }
        except ArtifactError:
            return
        if all(promoted[task] == current.versions[task] for task in promoted):
            return
        try:
            self._pipeline = self._load()
        except ArtifactError as exc:
            log.error("promoted models refused, keeping %s: %s", current.model_version, exc)

    def dispose(self) -> None:
        self.engine.dispose()


_resources: WorkerResources | None = None
_resources_pid = 0
_resources_lock = threading.Lock()


def resources(app: Any) -> WorkerResources:
    """This process's resources, built on first use (a forked child builds its own)."""
    global _resources, _resources_pid
    with _resources_lock:
        if _resources is None or _resources_pid != os.getpid():
            _resources = WorkerResources(app.settings)
            _resources_pid = os.getpid()
        return _resources


def _retry_delay(task: Task, settings: Settings) -> float:
    # Short enough to stay under the visibility timeout, or the retry itself is redelivered.
    return float(min(2**task.request.retries, 30, settings.broker_visibility_timeout / 4))


@shared_task(bind=True, name=DISPATCH_TASK, max_retries=None)
def dispatch_batch(self: Task, batch_id: str) -> dict[str, int]:
    app: SawtCelery = self.app
    with bind_batch(batch_id):
        try:
            res = resources(app)
            size = res.settings.worker_chunk_size
            with session_scope(res.session_factory) as session:
                ids = claim_batch_for_processing(session, batch_id=batch_id)
                if ids is None:
                    log.info("batch already dispatched or done; nothing to do")
                    return {"chunks": 0, "complaints": 0}
                chunks = [ids[i : i + size] for i in range(0, len(ids), size)]
                # Published before the claim commits: see the module docstring.
                with app.producer_or_acquire() as producer:
                    for chunk in chunks:
                        app.send_task(
                            CHUNK_TASK, args=[batch_id, chunk], queue=QUEUE, producer=producer
                        )
            if not ids:
                _finish(res, batch_id)
        except Exception as exc:
            # Database or broker trouble: the claim rolled back, the batch is still queued.
            if self.request.retries >= MAX_RETRIES and not database_unavailable(exc):
                log.error("dispatch abandoned (%s); the batch stays queued", type(exc).__name__)
                raise
            log.warning("dispatch failed (%s); retrying", type(exc).__name__)
            raise self.retry(exc=exc, countdown=_retry_delay(self, app.settings)) from exc
        log.info(
            "batch dispatched: %d complaints in %d chunks",
            len(ids),
            len(chunks),
            extra={"complaints": len(ids), "chunks": len(chunks)},
        )
        return {"chunks": len(chunks), "complaints": len(ids)}


def _finish(res: WorkerResources, batch_id: str) -> None:
    with session_scope(res.session_factory) as session:
        seconds = finish_batch_if_complete(session, batch_id=batch_id)
    if seconds is not None:
        metrics.BATCH_SECONDS.observe(seconds)
        log.info("batch done in %.1fs", seconds, extra={"batch_seconds": round(seconds, 3)})


def analyse_chunk(res: WorkerResources, complaint_ids: list[int]) -> tuple[int, int]:
    """Analyse the chunk's still-pending complaints in one transaction: (moved, failed)."""
    with session_scope(res.session_factory) as session:
        complaints = list(
            session.scalars(
                select(Complaint)
                .where(
                    Complaint.id.in_(complaint_ids),
                    Complaint.status == ComplaintStatus.pending.value,
                )
                .order_by(Complaint.id)
            )
        )
        if not complaints:
            return 0, 0
        moved = process_complaints(session, res.pipeline(), complaints)
        failed = session.scalar(
            select(func.count())
            .select_from(Complaint)
            .where(
                Complaint.id.in_([c.id for c in complaints]),
                Complaint.status == ComplaintStatus.failed.value,
            )
        )
    return moved, int(failed or 0)


@shared_task(bind=True, name=CHUNK_TASK, max_retries=None)
def process_chunk(self: Task, batch_id: str, complaint_ids: list[int]) -> dict[str, int]:
    redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
    with bind_batch(batch_id):
        if redelivered:
            metrics.CHUNKS_REDELIVERED.inc()
            log.warning(
                "chunk redelivered (a worker died or returned it): %d complaints",
                len(complaint_ids),
                extra={"redelivered": True, "first_complaint_id": min(complaint_ids)},
            )
        else:
            log.info(
                "chunk started: %d complaints",
                len(complaint_ids),
                extra={"first_complaint_id": min(complaint_ids)},
            )
        started = time.perf_counter()
        try:
            res = resources(self.app)
            moved, failed = analyse_chunk(res, complaint_ids)
            _finish(res, batch_id)
        except Exception as exc:
            # Deadlocks, dropped connections, models that failed to load: the transaction
            # rolled back (one text failing its analysis does not get here: it is stored as
            # `failed`). Run the chunk again, later; give up loudly after MAX_RETRIES.
            # An unreachable database is waited out, however long the outage.
            cause = type(exc.orig if isinstance(exc, DBAPIError) else exc).__name__
            if self.request.retries >= MAX_RETRIES and not database_unavailable(exc):
                metrics.CHUNKS.labels("error").inc()
                log.error(
                    "chunk abandoned after %d retries (%s); its complaints stay pending: "
                    "set the batch back to queued to dispatch them again",
                    MAX_RETRIES,
                    cause,
                    extra={"first_complaint_id": min(complaint_ids)},
                )
                raise
            metrics.CHUNKS.labels("retried").inc()
            log.warning("chunk failed (%s); retrying", cause)
            raise self.retry(exc=exc, countdown=_retry_delay(self, self.app.settings)) from exc
        elapsed = time.perf_counter() - started
        metrics.CHUNK_SECONDS.observe(elapsed)
        metrics.CHUNKS.labels("done" if moved else "skipped").inc()
        metrics.COMPLAINTS_PROCESSED.labels("analysed").inc(moved - failed)
        metrics.COMPLAINTS_PROCESSED.labels("failed").inc(failed)
        log.info(
            "chunk done: %d of %d complaints analysed in %.2fs",
            moved,
            len(complaint_ids),
            elapsed,
            extra={
                "complaints": moved,
                "failed": failed,
                "seconds": round(elapsed, 3),
                "redelivered": redelivered,
            },
        )
        return {"moved": moved, "failed": failed}


def redispatch_unfinished(app: SawtCelery, res: WorkerResources) -> int:
    """Re-send every unfinished batch from the database, for a broker that lost its messages:
    `queued` batches as a dispatch, the pending complaints of `processing` ones as chunks.

    Messages the broker still holds are thereby sent twice: harmless, a duplicate dispatch finds
    the batch claimed and a duplicate chunk finds its complaints analysed. Returns the number of
    messages sent.
    """
    size = res.settings.worker_chunk_size
    with session_scope(res.session_factory) as session:
        queued = list(
            session.scalars(select(Batch.id).where(Batch.status == BatchStatus.queued.value))
        )
        processing = list(
            session.scalars(select(Batch.id).where(Batch.status == BatchStatus.processing.value))
        )
        pending: dict[str, list[int]] = {batch_id: [] for batch_id in processing}
        for batch_id, complaint_id in session.execute(
            select(Complaint.batch_id, Complaint.id)
            .where(
                Complaint.batch_id.in_(processing),
                Complaint.status == ComplaintStatus.pending.value,
            )
            .order_by(Complaint.id)
        ):
            pending[batch_id].append(complaint_id)
    with app.connection_for_write() as connection:
        # A restarted Redis forgot the queue's binding too: without it kombu drops messages.
        app.amqp.queues[QUEUE].bind(connection.default_channel).declare()
    sent = 0
    with app.producer_or_acquire() as producer:
        for batch_id in queued:
            app.send_task(DISPATCH_TASK, args=[batch_id], queue=QUEUE, producer=producer)
            sent += 1
        for batch_id, ids in pending.items():
            for i in range(0, len(ids), size):
                app.send_task(
                    CHUNK_TASK, args=[batch_id, ids[i : i + size]], queue=QUEUE, producer=producer
                )
                sent += 1
    for batch_id, ids in pending.items():
        if not ids:  # every complaint analysed, but the batch was never marked done
            _finish(res, batch_id)
    return sent


class BrokerWatch(threading.Thread):
    """Notices a broker that restarted empty and re-sends the unfinished work.

    Redis without persistence (or flushed) loses every queued and unacknowledged message when it
    restarts. A marker key set in Redis disappears with them: the first worker to find it gone
    sets it again (SET NX, so one worker does the rest) and re-sends every unfinished batch from
    the database. With persistence the marker survives and nothing is re-sent.
    """

    def __init__(self, app: SawtCelery, interval: float = BROKER_CHECK_SECONDS) -> None:
        super().__init__(name="sawt-broker-watch", daemon=True)
        self.app = app
        self.interval = interval
        self.stopping = threading.Event()

    def run(self) -> None:
        import redis

        client = redis.Redis.from_url(self.app.settings.broker_url, socket_timeout=5)
        while True:
            try:
                self.check(client)
            except Exception as exc:  # broker or database down: the next check retries
                log.warning("broker check failed (%s); retrying", type(exc).__name__)
            if self.stopping.wait(self.interval):
                return

    def check(self, client: Any) -> None:
        if not client.set(BROKER_MARKER, str(os.getpid()), nx=True):
            return
        try:
            sent = redispatch_unfinished(self.app, resources(self.app))
        except BaseException:
            client.delete(BROKER_MARKER)  # not recovered: the next check tries again
            raise
        if sent:
            log.warning(
                "broker had lost its messages (restarted empty): %d re-sent from the database",
                sent,
                extra={"messages": sent},
            )


def run_worker(
    *,
    settings: Settings,
    app: SawtCelery,
    pool: str = "solo",
    concurrency: int = 1,
    threads: int = 0,
    metrics_port: int | None = None,
    hostname: str | None = None,
) -> int:
    """Start one worker process and block until it stops; returns its exit code.

    `solo` (the default) runs chunks one at a time in this very process: the models are loaded
    here, before the worker starts consuming, and no process is ever forked after the encoder
    runtime (ONNX Runtime or torch) started its thread pools (a forked child can hang on locks
    those threads held). Scale by running more `sawt worker` processes: one per core with
    `threads=1`, or fewer with more threads each.
    """
    # One "received" and one "succeeded" line per chunk, with its id list: our "chunk done"
    # line says it better. Failures are still logged (at ERROR).
    for noisy in ("celery.worker.strategy", "celery.app.trace"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if threads > 0:
        # Before any runtime starts: OpenMP/MKL read these once; the encoder takes the setting.
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))
        os.environ.setdefault("MKL_NUM_THREADS", str(threads))
        settings = settings.model_copy(update={"encoder_threads": threads})
        app.settings = settings
    if pool in ("solo", "threads"):
        pipeline = resources(app).pipeline()  # fail fast, and not inside the first chunk
        log.info("worker ready with %s", pipeline.model_version)
    if metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(metrics_port)
    worker = app.Worker(
        pool=pool,
        concurrency=concurrency,
        hostname=hostname,
        queues=[QUEUE],
        loglevel=settings.log_level.upper(),
        without_gossip=True,
        without_mingle=True,
        without_heartbeat=True,
    )
    watch = BrokerWatch(app) if settings.broker_url.startswith(("redis://", "rediss://")) else None
    if watch is not None:
        watch.start()
    try:
        worker.start()
    finally:
        if watch is not None:
            watch.stopping.set()
    return int(worker.exitcode or 0)
