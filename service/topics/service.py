"""Creating tenants' topics and loading them for scoring."""

from __future__ import annotations

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
    texts = [
        model_input(text) for text in [*examples_redacted, *([description] if description else [])]
    ]
    examples = encoder.encode(texts)
    _, negatives = seed_embeddings(
        encoder.encode, encoder_key=encoder.version, cache_dir=settings.cache_dir / "embeddings"
    )
    model = SimilarityTopic().fit(examples, negatives)
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


def prototypes(
    session: Session, *, tenant_id: int, encoder_version: str | None
) -> list[TopicPrototype]:
    """A tenant's topics ready for scoring; those made with another encoder are skipped."""
    return [
        TopicPrototype(
            id=t.topic_id,
            centroid=np.frombuffer(t.centroid, dtype=np.float32),
            threshold=t.threshold,
            scale=t.scale,
        )
        for t in list_custom_topics(session, tenant_id=tenant_id)
        if encoder_version is not None and t.encoder_version == encoder_version
    ]
