"""Builds the serving pipeline from the registry and the rebuilt encoder."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from models.encoder import build as encoder_build
from models.pipeline import AnalysisPipeline
from models.registry import ArtifactError, Registry
from service.core.config import EncoderBackend, Settings

log = logging.getLogger(__name__)


class ServedEncoder:
    """The encoder as the pipeline sees it: `encode` plus a version for analyses' provenance."""

    def __init__(self, backend: Any, version: str) -> None:
        self.backend = backend
        self.version = version

    def encode(self, texts: Any, batch_size: int = 32) -> Any:
        return self.backend.encode(texts, batch_size=batch_size)


def load_encoder(settings: Settings) -> ServedEncoder | None:
    """The rebuilt encoder (ONNX int8 by default); None when it was never built."""
    if settings.encoder == EncoderBackend.none:
        return None
    model_dir = encoder_build.model_dir(settings.cache_dir)
    if not encoder_build.is_valid(model_dir):
        log.warning("no rebuilt encoder at %s: run `make models`; serving without it", model_dir)
        return None
    threads = settings.encoder_threads
    if settings.encoder == EncoderBackend.torch:
        from models.encoder.encoder import Encoder

        backend: Any = Encoder(model_dir, num_threads=threads)
    else:
        from models.encoder import onnx

        if not onnx.is_exported(model_dir):
            onnx.export_onnx(model_dir, show_progress=False)
        if settings.encoder == EncoderBackend.onnx_int8:
            backend = onnx.OnnxEncoder(model_dir, variant="int8", num_threads=threads)
        else:
            backend = onnx.OnnxEncoder(model_dir, variant="fp32", num_threads=threads)
    return ServedEncoder(backend, f"{Path(model_dir).name}-{settings.encoder.value}")


def load_pipeline(
    settings: Settings, registry: Registry, *, encoder: ServedEncoder | None = None
) -> AnalysisPipeline:
    encoder = encoder if encoder is not None else load_encoder(settings)
    pipeline = AnalysisPipeline.from_registry(registry, encoder=encoder)
    if pipeline.needs_encoder() and encoder is None:
        raise ArtifactError(
            "the promoted heads read encoder embeddings, but the encoder is not built: "
            "run `make models`"
        )
    return pipeline


def make_registry(settings: Settings) -> Registry:
    return Registry(settings.model_dir)
