"""Analyses a batch's pending complaints chunk by chunk; safe to re-run after any crash.

Each chunk's analyses and status changes commit together, and an analysis is written only for
a complaint still `pending`, so a restart resumes where it stopped and analyses nothing twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np
from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from models.custom_topics import TopicPrototype
from models.encoder import build as encoder_build
from models.pipeline import Analysis as PipelineAnalysis
from models.pipeline import AnalysisPipeline
from service.batches.models import Batch, BatchStatus
from service.complaints.models import Analysis, AnalysisTopic, Complaint, ComplaintStatus
from service.core.db import session_scope, utcnow
from service.topics.service import prototypes
from service.trends.rollups import apply_rollups

log = logging.getLogger(__name__)

ChunkCallback = Callable[[str, int], None]


def _analysis_row(complaint: Complaint, result: PipelineAnalysis) -> dict[str, object]:
    embedding = (
        np.asarray(result.embedding, dtype=np.float16).tobytes()
        if result.embedding is not None
        else None
    )
    return {
        "complaint_id": complaint.id,
        "tenant_id": complaint.tenant_id,
        "model_version": result.model_version,
        "language": result.language,
        "script": result.script,
        "language_mix": result.language_mix,
        "sentiment": result.sentiment,
        "sentiment_scores": result.sentiment_scores,
        "topics": [{"id": t.id, "score": t.score} for t in result.topics],
        "embedding": embedding,
        "created_at": utcnow(),
    }


def _analyse_isolating_failures(
    pipeline: AnalysisPipeline, texts: Sequence[str], custom_topics: Sequence[TopicPrototype]
) -> list[PipelineAnalysis | Exception]:
    """One bad text must not fail its chunk: on error, retry the chunk one text at a time."""
    try:
        return list(pipeline.analyze(texts, custom_topics=custom_topics))
    except Exception:
        log.exception("chunk analysis failed; retrying text by text")
    results: list[PipelineAnalysis | Exception] = []
    for text in texts:
        try:
            results.append(pipeline.analyze([text], custom_topics=custom_topics)[0])
        except Exception as exc:
            results.append(exc)
    return results


def tenant_prototypes(
    session: Session, pipeline: AnalysisPipeline, tenant_ids: set[int]
) -> list[TopicPrototype]:
    """A chunk belongs to one batch, hence one tenant: its own topics are scored too."""
    if len(tenant_ids) != 1 or pipeline.encoder is None:
        return []
    return prototypes(
        session,
        tenant_id=tenant_ids.pop(),
        encoder=pipeline.encoder,
        cache_dir=encoder_build.default_cache_dir() / "embeddings",
    )


def process_complaints(
    session: Session, pipeline: AnalysisPipeline, complaints: Sequence[Complaint]
) -> int:
    """Analyse and store; returns how many complaints this call moved out of `pending`.

    Claiming (`pending` → `analysed`/`failed` with RETURNING), writing the analyses, their topic
    rows and the rollups all happen in the caller's transaction: a crash leaves nothing half done,
    and a chunk delivered twice is analysed once.
    """
    custom_topics = tenant_prototypes(session, pipeline, {c.tenant_id for c in complaints})
    results = _analyse_isolating_failures(pipeline, [c.text for c in complaints], custom_topics)
    succeeded = {
        c.id: r for c, r in zip(complaints, results, strict=True) if not isinstance(r, Exception)
    }
    # Only the exception's type: its message may quote the complaint (results show this field).
    failures = {
        c.id: f"analysis failed ({type(r).__name__}); see the worker log"
        for c, r in zip(complaints, results, strict=True)
        if isinstance(r, Exception)
    }
    claimed = (
        set(
            session.scalars(
                update(Complaint)
                .where(
                    Complaint.id.in_(list(succeeded)),
                    Complaint.status == ComplaintStatus.pending.value,
                )
                .values(status=ComplaintStatus.analysed.value, error=None)
                .returning(Complaint.id)
            )
        )
        if succeeded
        else set()
    )
    failed = 0
    for complaint_id, error in failures.items():
        claimed_failure = session.scalar(
            update(Complaint)
            .where(Complaint.id == complaint_id, Complaint.status == ComplaintStatus.pending.value)
            .values(status=ComplaintStatus.failed.value, error=error)
            .returning(Complaint.id)
        )
        if claimed_failure is not None:
            failed += 1
            log.warning("complaint %s failed analysis: %s", complaint_id, error)
    by_id = {c.id: c for c in complaints}
    rows = [_analysis_row(by_id[cid], succeeded[cid]) for cid in sorted(claimed)]
    if rows:
        inserted = session.execute(
            insert(Analysis).returning(
                Analysis.id, Analysis.complaint_id, sort_by_parameter_order=True
            ),
            rows,
        ).all()
        topic_rows = [
            {
                "analysis_id": analysis_id,
                "complaint_id": complaint_id,
                "topic": t.id,
                "score": t.score,
            }
            for analysis_id, complaint_id in inserted
            for t in succeeded[complaint_id].topics
        ]
        if topic_rows:
            session.execute(insert(AnalysisTopic), topic_rows)
        apply_rollups(session, [analysis_id for analysis_id, _ in inserted])
    return len(claimed) + failed


def process_batch(
    batch_id: str,
    *,
    session_factory: sessionmaker[Session],
    pipeline: AnalysisPipeline,
    chunk_size: int = 256,
    on_chunk: ChunkCallback | None = None,
) -> None:
    with session_scope(session_factory) as session:
        batch = session.get(Batch, batch_id)
        if batch is None or batch.status == BatchStatus.done.value:
            return
        batch.status = BatchStatus.processing.value
        batch.started_at = batch.started_at or utcnow()
    last_id = 0
    while True:
        with session_scope(session_factory) as session:
            chunk = list(
                session.scalars(
                    select(Complaint)
                    .where(
                        Complaint.batch_id == batch_id,
                        Complaint.status == ComplaintStatus.pending.value,
                        Complaint.id > last_id,
                    )
                    .order_by(Complaint.id)
                    .limit(chunk_size)
                )
            )
            if not chunk:
                break
            last_id = chunk[-1].id
            moved = process_complaints(session, pipeline, chunk)
        if on_chunk is not None:
            on_chunk(batch_id, moved)
    with session_scope(session_factory) as session:
        session.execute(
            update(Batch)
            .where(Batch.id == batch_id)
            .values(status=BatchStatus.done.value, finished_at=utcnow())
        )
