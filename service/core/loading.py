"""Builds the serving pipeline from the registry and the rebuilt encoder."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from models.encoder import build as encoder_build
from models.encoder import tuned
from models.encoder.encoder import DEFAULT_BATCH_SIZE
from models.pipeline import AnalysisPipeline
from models.registry import ArtifactError, Registry
from service.core.config import EncoderBackend, Settings

log = logging.getLogger(__name__)


class ServedEncoder:
    """The encoder as the pipeline sees it: `encode` / `encode_layers` plus a version for
    analyses' provenance."""

    def __init__(self, backend: Any, version: str) -> None:
        self.backend = backend
        self.version = version

    def encode(self, texts: Any, batch_size: int = DEFAULT_BATCH_SIZE) -> Any:
        return self.backend.encode(texts, batch_size=batch_size)

    def encode_layers(self, texts: Any, batch_size: int = DEFAULT_BATCH_SIZE) -> Any:
        return self.backend.encode_layers(texts, batch_size=batch_size)


def load_encoder(settings: Settings, adapter: str | None = None) -> ServedEncoder | None:
    """The rebuilt encoder (ONNX int8 by default), with the heads' LoRA `adapter` merged in
    (merged into the cache on first use); None when the base was never built."""
    if settings.encoder == EncoderBackend.none:
        return None
    model_dir = encoder_build.model_dir(settings.cache_dir)
    if not encoder_build.is_valid(model_dir):
        log.warning("no rebuilt encoder at %s: run `make models`; serving without it", model_dir)
        return None
    if adapter is not None:
        try:
            # exported below, like the base, when the backend needs ONNX
            model_dir = tuned.build_tuned(
                adapter, settings.cache_dir, export=False, show_progress=False
            )
        except tuned.AdapterError as exc:
            raise ArtifactError(str(exc)) from exc
    threads = settings.encoder_threads
    parallel = settings.encoder_parallel_batches
    with _LOADED_LOCK:
        if settings.encoder != EncoderBackend.torch:
            from models.encoder import onnx

            if not onnx.is_exported(model_dir):
                onnx.export_onnx(model_dir, show_progress=False)
        key = (
            str(model_dir),
            settings.encoder.value,
            threads,
            parallel,
            _weights_stamp(model_dir),
        )
        loaded = _LOADED.get(key)
        if loaded is None:
            loaded = ServedEncoder(
                _backend(settings.encoder, model_dir, threads, parallel),
                f"{Path(model_dir).name}-{settings.encoder.value}",
            )
            _LOADED.clear()  # the previous encoder lives on only in pipelines still serving
            _LOADED[key] = loaded
        return loaded


# One loaded encoder per process: a reload that swaps only heads (or a second app in the same
# process) reuses it instead of holding a second copy of the weights and the runtime's arena.
_LOADED: dict[tuple[str, str, int | None, bool, int], ServedEncoder] = {}
_LOADED_LOCK = threading.Lock()


def _weights_stamp(model_dir: Path) -> int:
    """Changes when the checkpoint is rebuilt or re-exported, so a stale session is not reused."""
    files = [model_dir / "model.safetensors", *sorted((model_dir / "onnx").glob("*.onnx"))]
    return sum(f.stat().st_mtime_ns for f in files if f.is_file())


def _backend(
    kind: EncoderBackend, model_dir: Path, threads: int | None, parallel_batches: bool
) -> Any:
    if kind == EncoderBackend.torch:
        from models.encoder.encoder import Encoder

        return Encoder(model_dir, num_threads=threads)
    from models.encoder import onnx

    variant: onnx.Variant = "int8" if kind == EncoderBackend.onnx_int8 else "fp32"
    return onnx.OnnxEncoder(
        model_dir, variant=variant, num_threads=threads, parallel_batches=parallel_batches
    )


def load_pipeline(
    settings: Settings, registry: Registry, *, encoder: ServedEncoder | None = None
) -> AnalysisPipeline:
    pipeline = AnalysisPipeline.from_registry(registry)
    if encoder is None:
        encoder = load_encoder(settings, pipeline.encoder_adapter)
    pipeline.attach_encoder(encoder)
    if pipeline.needs_encoder() and encoder is None:
        raise ArtifactError(
            "the promoted heads read encoder embeddings, but the encoder is not built: "
            "run `make models`"
        )
    return pipeline


def make_registry(settings: Settings) -> Registry:
    return Registry(settings.model_dir)
