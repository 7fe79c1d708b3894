"""Complaints (redacted text only) and their analyses, one per model version."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from service.core.db import Base, JSONType, UTCDateTime, utcnow


class ComplaintStatus(StrEnum):
    pending = "pending"
    analysed = "analysed"
    failed = "failed"


class Complaint(Base):
    __tablename__ = "complaints"
    __table_args__ = (
        UniqueConstraint("tenant_id", "external_id"),
        Index("ix_complaints_batch_status", "batch_id", "status"),
        Index("ix_complaints_tenant_received", "tenant_id", "received_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.id"))
    external_id: Mapped[str | None] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text, doc="Redacted text: raw text is never stored")
    redactions: Mapped[list[str]] = mapped_column(JSONType, default=list)
    channel: Mapped[str | None] = mapped_column(String(50))
    service: Mapped[str | None] = mapped_column(String(100))
    region: Mapped[str | None] = mapped_column(String(100))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    extra: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
    status: Mapped[str] = mapped_column(String(20), default=ComplaintStatus.pending)
    error: Mapped[str | None] = mapped_column(Text)


class Analysis(Base):
    __tablename__ = "analyses"
    __table_args__ = (UniqueConstraint("complaint_id", "model_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    complaint_id: Mapped[int] = mapped_column(
        ForeignKey("complaints.id", ondelete="CASCADE"), index=True
    )
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    model_version: Mapped[str] = mapped_column(String(200))
    language: Mapped[str] = mapped_column(String(16))
    script: Mapped[str] = mapped_column(String(8))
    language_mix: Mapped[list[str]] = mapped_column(JSONType, default=list)
    sentiment: Mapped[str] = mapped_column(String(16))
    sentiment_scores: Mapped[dict[str, float]] = mapped_column(JSONType, default=dict)
    topics: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class AnalysisTopic(Base):
    """One row per (analysis, topic): lets trends and drill-downs filter by topic in SQL."""

    __tablename__ = "analysis_topics"
    __table_args__ = (Index("ix_analysis_topics_topic_complaint", "topic", "complaint_id"),)

    analysis_id: Mapped[int] = mapped_column(
        ForeignKey("analyses.id", ondelete="CASCADE"), primary_key=True
    )
    topic: Mapped[str] = mapped_column(String(64), primary_key=True)
    complaint_id: Mapped[int] = mapped_column(ForeignKey("complaints.id", ondelete="CASCADE"))
    score: Mapped[float] = mapped_column(Float)


class LabelCorrection(Base):
    """An analyst's corrected labels; fed back into training, never into a test split."""

    __tablename__ = "label_corrections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    complaint_id: Mapped[int] = mapped_column(
        ForeignKey("complaints.id", ondelete="CASCADE"), index=True
    )
    sentiment: Mapped[str | None] = mapped_column(String(16))
    topics: Mapped[list[str] | None] = mapped_column(JSONType)
    corrected_by: Mapped[int] = mapped_column(ForeignKey("api_keys.id"))
    corrected_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    note: Mapped[str | None] = mapped_column(Text)
