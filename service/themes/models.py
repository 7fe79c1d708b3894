"""Each discovery run over a tenant's stored embeddings; the latest is the `previous` of the
next, which is what keeps theme ids stable across refits."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Integer
from sqlalchemy.orm import Mapped, mapped_column

from service.core.db import Base, JSONType, UTCDateTime, utcnow


class ThemeRun(Base):
    __tablename__ = "theme_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime())
    window_end: Mapped[datetime] = mapped_column(UTCDateTime())
    n_documents: Mapped[int] = mapped_column(Integer)
    themes: Mapped[dict[str, Any]] = mapped_column(JSONType, doc="models.discovery.ThemeSet")
