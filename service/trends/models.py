"""Rollups: complaint counts per tenant × day × topic × sentiment × language × service × region
× channel, kept current as chunks are analysed, so dashboards never scan complaints."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Date, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from service.core.db import Base

ALL_TOPICS = "*"  # the row that counts each complaint once, whatever its topics
NONE = ""  # a missing service / region / channel


class Rollup(Base):
    __tablename__ = "rollups"
    __table_args__ = (Index("ix_rollups_tenant_topic_day", "tenant_id", "topic", "day"),)

    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    topic: Mapped[str] = mapped_column(String(64), primary_key=True)
    sentiment: Mapped[str] = mapped_column(String(16), primary_key=True)
    language: Mapped[str] = mapped_column(String(16), primary_key=True)
    service: Mapped[str] = mapped_column(String(100), primary_key=True)
    region: Mapped[str] = mapped_column(String(100), primary_key=True)
    channel: Mapped[str] = mapped_column(String(50), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
    positive_score_sum: Mapped[float] = mapped_column(Float, default=0.0)
    negative_score_sum: Mapped[float] = mapped_column(Float, default=0.0)
