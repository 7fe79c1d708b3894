"""Creating tenants' topics and loading them for scoring."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from models.custom_topics import SimilarityTopic, TopicPrototype
from models.pipeline import AnalysisPipeline
from models.seed import seed_embeddings
from models.text.normalize import model_input
from models.text.redact import redact
from service.core.config import Settings
from service.topics.models import CustomTopic
from service.topics.schemas import CustomTopicCreate


class TopicConflict(ValueError):
    pass


class EncoderUnavailable(RuntimeError):
    pass


def create_custom_topic(
    session: Session,
    *,
    tenant_id: int,
    body: CustomTopicCreate,
    pipeline: AnalysisPipeline,
    settings: Settings,
) -> CustomTopic:
    encoder = pipeline.encoder
    if encoder is None:
        raise EncoderUnavailable("custom topics need the encoder: run `make models` and restart")
    if body.id in pipeline.topic_model.labels_:
        raise TopicConflict(f"'{body.id}' is a taxonomy topic; choose another id")
    if session.scalar(
        select(CustomTopic.id).where(
            CustomTopic.tenant_id == tenant_id, CustomTopic.topic_id == body.id
        )
    ):
        raise TopicConflict(f"topic '{body.id}' already exists for this tenant")
    # Analysts paste real complaints as examples: store and encode them redacted, like complaints.
    examples_redacted = [redact(example).text for example in body.examples]
    description = redact(body.description).text if body.description else None
    model = _similarity_topic(
        encoder, examples_redacted, description, settings.cache_dir / "embeddings"
    )
    topic = CustomTopic(
        tenant_id=tenant_id,
        topic_id=body.id,
        name=body.name,
        description=description,
        examples=examples_redacted,
        centroid=model.centroid_.astype(np.float32).tobytes(),
        threshold=model.threshold_,
        scale=model.scale_,
        encoder_version=encoder.version,
    )
    session.add(topic)
    session.commit()
    return topic


def list_custom_topics(session: Session, *, tenant_id: int | None) -> list[CustomTopic]:
    query = select(CustomTopic).order_by(CustomTopic.topic_id)
    if tenant_id is not None:
        query = query.where(CustomTopic.tenant_id == tenant_id)
    return list(session.scalars(query))


def delete_custom_topic(session: Session, *, tenant_id: int, topic_id: str) -> bool:
    deleted = session.execute(
        delete(CustomTopic)
        .where(CustomTopic.tenant_id == tenant_id, CustomTopic.topic_id == topic_id)
        .returning(CustomTopic.id)
    ).first()
    session.commit()
    return deleted is not None


def _similarity_topic(
    encoder: Any, examples: list[str], description: str | None, cache_dir: Path | None
) -> SimilarityTopic:
    """A topic's prototype on `encoder`: its (redacted) examples against the seed set."""
    texts = [model_input(text) for text in [*examples, *([description] if description else [])]]
    _, negatives = seed_embeddings(encoder.encode, encoder_key=encoder.version, cache_dir=cache_dir)
    return SimilarityTopic().fit(encoder.encode(texts), negatives)


def prototypes(
    session: Session, *, tenant_id: int, encoder: Any, cache_dir: Path | None = None
) -> list[TopicPrototype]:
    """A tenant's topics ready for scoring. A topic made with another encoder (a fine-tuned one
    was promoted since) is refit on the served one from its stored redacted examples, so a
    model change never silently drops a tenant's topics; the refit is saved with the chunk."""
    topics = list_custom_topics(session, tenant_id=tenant_id)
    for topic in topics:
        if topic.encoder_version != encoder.version:
            model = _similarity_topic(encoder, list(topic.examples), topic.description, cache_dir)
            topic.centroid = model.centroid_.astype(np.float32).tobytes()
            topic.threshold = model.threshold_
            topic.scale = model.scale_
            topic.encoder_version = encoder.version
    session.flush()
    return [
        TopicPrototype(
            id=t.topic_id,
            centroid=np.frombuffer(t.centroid, dtype=np.float32),
            threshold=t.threshold,
            scale=t.scale,
        )
        for t in topics
    ]
