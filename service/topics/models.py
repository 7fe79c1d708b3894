"""Topics a tenant adds beside the default taxonomy, scored by similarity to their examples."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, ForeignKey, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from service.core.db import Base, JSONType, UTCDateTime, utcnow


class CustomTopic(Base):
    __tablename__ = "custom_topics"
    __table_args__ = (UniqueConstraint("tenant_id", "topic_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    topic_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    examples: Mapped[list[str]] = mapped_column(JSONType)
    centroid: Mapped[bytes] = mapped_column(LargeBinary)
    threshold: Mapped[float] = mapped_column(Float)
    scale: Mapped[float] = mapped_column(Float)
    encoder_version: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
