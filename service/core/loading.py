"""Builds the serving pipeline from the registry (and the rebuilt encoder, when heads need it)."""

from __future__ import annotations

from models.pipeline import AnalysisPipeline
from models.registry import Registry
from service.core.config import Settings


def load_pipeline(settings: Settings, registry: Registry) -> AnalysisPipeline:
    return AnalysisPipeline.from_registry(registry)


def make_registry(settings: Settings) -> Registry:
    return Registry(settings.model_dir)
