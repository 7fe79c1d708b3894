"""Prometheus metrics for the API (`GET /metrics`) and for workers (`sawt worker --metrics-port`).

Counters live in the process that does the work: the API counts requests and ingested
complaints, each worker counts what it analysed. What only the database or the broker knows
(queue depth, pending complaints, batch latency, the analyses written by every worker on every
machine) is read when Prometheus scrapes the API, with queries that stay cheap on big tables.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)
disable_created_metrics()  # `_created` series double the output and no dashboard reads them
router = APIRouter(tags=["operations"])

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600)
RECENT_BATCHES = timedelta(minutes=15)

HTTP_REQUESTS = Counter(
    "sawt_http_requests", "HTTP requests answered", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "sawt_http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
BATCHES_INGESTED = Counter("sawt_batches_ingested", "Batches stored by POST /v1/batches")
COMPLAINTS_INGESTED = Counter(
    "sawt_complaints_ingested", "Complaints stored (new, not duplicates) by POST /v1/batches"
)
COMPLAINTS_PROCESSED = Counter(
    "sawt_complaints_processed",
    "Complaints this process moved out of pending",
    ["outcome"],
)
CHUNKS = Counter("sawt_chunks", "Chunk tasks run by this worker", ["outcome"])
CHUNKS_REDELIVERED = Counter(
    "sawt_chunks_redelivered",
    "Chunks this worker received again after a worker died or returned them",
)
CHUNK_SECONDS = Histogram(
    "sawt_chunk_duration_seconds", "Time to analyse and store one chunk", buckets=LATENCY_BUCKETS
)
BATCH_SECONDS = Histogram(
    "sawt_batch_duration_seconds",
    "From POST to the last complaint analysed, for batches this process finished",
    buckets=BATCH_BUCKETS,
)
MODEL_INFO = Gauge("sawt_model_info", "Model version served by this process", ["task", "version"])


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    HTTP_REQUESTS.labels(method, route, str(status)).inc()
    HTTP_LATENCY.labels(method, route).observe(seconds)


def set_model_versions(versions: dict[str, str]) -> None:
    MODEL_INFO.clear()
    for task, version in versions.items():
        MODEL_INFO.labels(task, version).set(1)


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


class StoreCollector(Collector):
    """What the database and the broker say, read at scrape time (a failed read is skipped)."""

    def __init__(self, session_factory: sessionmaker[Session], runner: Any = None) -> None:
        self.session_factory = session_factory
        self.runner = runner

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            yield from self._database()
        except Exception as exc:
            log.warning("metrics: database read failed: %s", type(exc).__name__)
        depth = getattr(self.runner, "queue_depth", None)
        if callable(depth):
            try:
                waiting, in_flight = depth()
            except Exception as exc:
                log.warning("metrics: broker read failed: %s", type(exc).__name__)
            else:
                queue = GaugeMetricFamily(
                    "sawt_queue_messages", "Job messages in the broker", labels=["state"]
                )
                queue.add_metric(["waiting"], waiting)
                queue.add_metric(["in_flight"], in_flight)
                yield queue

    def _database(self) -> Iterable[GaugeMetricFamily]:
        from service.batches.models import Batch, BatchStatus
        from service.complaints.models import Analysis, Complaint, ComplaintStatus
        from service.core.db import utcnow

        with self.session_factory() as session:
            by_status = dict(
                session.execute(select(Batch.status, func.count()).group_by(Batch.status)).all()
            )
            unfinished = select(Batch.id).where(
                Batch.status.in_([BatchStatus.queued.value, BatchStatus.processing.value])
            )
            pending = session.scalar(
                select(func.count())
                .select_from(Complaint)
                .where(
                    Complaint.batch_id.in_(unfinished),
                    Complaint.status == ComplaintStatus.pending.value,
                )
            )
            last_analysis = session.scalar(select(func.max(Analysis.id)))
            recent = session.execute(
                select(Batch.created_at, Batch.finished_at)
                .where(Batch.finished_at >= utcnow() - RECENT_BATCHES)
                .order_by(Batch.finished_at.desc())
                .limit(1000)
            ).all()
        batches = GaugeMetricFamily("sawt_batches", "Batches by status", labels=["status"])
        for status in BatchStatus:
            batches.add_metric([status.value], by_status.get(status.value, 0))
        yield batches
        yield GaugeMetricFamily(
            "sawt_complaints_pending",
            "Complaints of unfinished batches still waiting for analysis (the backlog)",
            value=pending or 0,
        )
        yield GaugeMetricFamily(
            "sawt_analyses_last_id",
            "Highest analysis id: grows with every analysis any worker writes; rate() of it is "
            "analyses/s across all workers (ids skipped by rolled-back chunks make it an upper "
            "bound)",
            value=last_analysis or 0,
        )
        latency = GaugeMetricFamily(
            "sawt_recent_batch_latency_seconds",
            "POST-to-done latency of batches finished in the last 15 minutes",
            labels=["quantile"],
        )
        seconds = [(finished - created).total_seconds() for created, finished in recent if finished]
        if seconds:
            for q in (0.5, 0.95, 1.0):
                latency.add_metric([str(q)], _quantile(seconds, q))
        yield latency


def render(collector: Collector | None = None) -> tuple[bytes, str]:
    """The process's own metrics, plus the store's when a collector is given."""
    body = generate_latest(REGISTRY)
    if collector is not None:
        extra = CollectorRegistry(auto_describe=False)
        extra.register(collector)
        body += generate_latest(extra)
    return body, CONTENT_TYPE_LATEST


@router.get(
    "/metrics",
    summary="Prometheus metrics (no key: serve it on the internal network only)",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}},
)
def metrics_endpoint(request: Request) -> Response:
    context = request.app.state.context
    if context.models_loaded:
        set_model_versions(context.pipeline.versions)
    body, content_type = render(StoreCollector(context.session_factory, context.runner))
    return Response(body, media_type=content_type)
