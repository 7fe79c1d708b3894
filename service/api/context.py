"""What the app holds for its lifetime: settings, database, model pipeline, job runner."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from models.pipeline import AnalysisPipeline
from models.registry import Registry
from service.core.config import Settings


@dataclass
class AppContext:
    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    registry: Registry
    runner: Any = None
    # Set once the schema was checked (at start, or later when the database came back).
    database_ready: threading.Event = field(default_factory=threading.Event)
    database_error: str | None = None
    _pipeline: AnalysisPipeline | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def pipeline(self) -> AnalysisPipeline:
        if self._pipeline is None:
            raise RuntimeError("models are not loaded yet")
        return self._pipeline

    @property
    def models_loaded(self) -> bool:
        return self._pipeline is not None

    def swap_pipeline(self, pipeline: AnalysisPipeline) -> None:
        """Requests in flight keep the pipeline they started with; new ones get this one."""
        with self._lock:
            self._pipeline = pipeline
