"""ONNX export of the rebuilt encoder, a dynamic-int8 copy, and an onnxruntime encoder.

    python -m models.encoder.onnx [--cache-dir DIR] [--force]

The exported graph takes `input_ids` and `attention_mask` and returns the pooled,
L2-normalised `embeddings` and, from the same pass, every layer's output pooled the same way
(`layers`, batch x layers x dim), so every backend pools the same way. Files go under
`<model dir>/onnx/` next to the checkpoint they were exported from.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import warnings
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from models.encoder import build
from models.encoder.encoder import (
    DEFAULT_MAX_LENGTH,
    DEFAULT_PREFIX,
    BaseEncoder,
    EmbedBatch,
    PaddedBatch,
    check_model_dir,
    pooled_layers,
)

if TYPE_CHECKING:
    import torch

Variant = Literal["fp32", "int8"]
ONNX_SUBDIR = "onnx"
FILES: dict[str, str] = {"fp32": "model.onnx", "int8": "model.int8.onnx"}
OPSET = 17
# bump when the export recipe changes, so stale exports are redone (3: `layers` output)
EXPORT_VERSION = 3


def onnx_dir(model_dir: str | Path | None = None) -> Path:
    """Where the ONNX copies of `model_dir` (default: the pinned build) live."""
    base = Path(model_dir) if model_dir is not None else build.model_dir()
    return base / ONNX_SUBDIR


def is_exported(model_dir: str | Path | None = None) -> bool:
    """True when both ONNX files exist and were exported from this checkpoint."""
    base = Path(model_dir) if model_dir is not None else build.model_dir()
    out = onnx_dir(base)
    try:
        meta = json.loads((out / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        meta.get("export_version") == EXPORT_VERSION
        and meta.get("source_safetensors_sha256") == build.weights_sha256(base)
        and all((out / name).is_file() for name in FILES.values())
    )


def _pooled_module(model: Any) -> torch.nn.Module:
    import torch

    class Pooled(torch.nn.Module):
        """BERT + mean pooling + L2 norm of every layer, so the graph returns final embeddings
        (the last layer's) and the pooled layers."""

        def __init__(self, bert: Any) -> None:
            super().__init__()
            self.bert = bert

        def forward(
            self, input_ids: torch.Tensor, attention_mask: torch.Tensor
        ) -> tuple[torch.Tensor, torch.Tensor]:
            out = self.bert(
                input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True
            )
            layers = pooled_layers(out.hidden_states, attention_mask)
            return layers[:, -1], layers

    return Pooled(model).eval()


def export_onnx(
    model_dir: str | Path | None = None, *, force: bool = False, show_progress: bool = True
) -> dict[Variant, Path]:
    """Export fp32 ONNX and a dynamic int8 copy of the rebuilt encoder (no-op if current)."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModel

    base = check_model_dir(model_dir)
    out = onnx_dir(base)
    paths: dict[Variant, Path] = {"fp32": out / FILES["fp32"], "int8": out / FILES["int8"]}
    if not force and is_exported(base):
        return paths

    def say(msg: str) -> None:
        if show_progress:
            print(msg, file=sys.stderr, flush=True)

    started = time.perf_counter()
    tmp = out.parent / f".tmp-onnx-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        say("exporting fp32 ONNX graph")
        bert = AutoModel.from_pretrained(base, local_files_only=True, attn_implementation="eager")
        module = _pooled_module(bert)
        ids = torch.tensor([[0, 41, 1294, 12, 33600, 31, 2], [0, 41, 1294, 12, 6, 2, 1]])
        mask = (ids != 1).long()
        # the tracer warns about mask-shape branches that are constant for encoder inputs;
        # tests check the graph against torch on other batch shapes and paddings.
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                (ids, mask),
                str(tmp / FILES["fp32"]),
                input_names=["input_ids", "attention_mask"],
                output_names=["embeddings", "layers"],
                dynamic_axes={
                    "input_ids": {0: "batch", 1: "sequence"},
                    "attention_mask": {0: "batch", 1: "sequence"},
                    "embeddings": {0: "batch"},
                    "layers": {0: "batch"},
                },
                opset_version=OPSET,
                dynamo=False,
            )
        say("quantising to dynamic int8")
        # per-channel weight scales: mean cosine to fp32 0.993 vs 0.984 per-tensor
        quantize_dynamic(
            tmp / FILES["fp32"], tmp / FILES["int8"], weight_type=QuantType.QInt8, per_channel=True
        )
        meta = {
            "export_version": EXPORT_VERSION,
            "opset": OPSET,
            "source_safetensors_sha256": build.weights_sha256(base),
            "inputs": ["input_ids", "attention_mask"],
            "outputs": {
                "embeddings": "last layer, mean-pooled, L2-normalised",
                "layers": "every layer's output pooled alike (batch, layers, dim)",
            },
            "int8": "onnxruntime.quantization.quantize_dynamic, QInt8 per-channel weights",
            "versions": {"torch": torch.__version__, **_ort_versions()},
            "export_seconds": round(time.perf_counter() - started, 1),
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    say(f"ONNX export done in {time.perf_counter() - started:.1f}s: {out}")
    return paths


def _ort_versions() -> dict[str, str]:
    import onnx
    import onnxruntime

    return {"onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}


class OnnxEncoder(BaseEncoder):
    """The same `encode` API on onnxruntime (CPU), fp32 or dynamic int8.

    With `parallel_batches` (the default) the cores run different length buckets at once, each
    on one thread, instead of splitting every bucket's small matrices across threads: on 510
    mixed held-out texts, 2 cores, that gave 1.14-1.27x the texts/s of one two-thread run at a
    time (scratch measurement, stop 19; `bench.bench_serving` reports the end-to-end effect).
    One bucket (a short request) then runs on one thread."""

    def __init__(
        self,
        model_dir: str | Path | None = None,
        *,
        variant: Variant = "fp32",
        max_length: int = DEFAULT_MAX_LENGTH,
        num_threads: int | None = None,
        prefix: str = DEFAULT_PREFIX,
        parallel_batches: bool = True,
    ) -> None:
        import onnxruntime as ort

        if variant not in FILES:
            raise ValueError(f"variant must be one of {sorted(FILES)} (got {variant!r})")
        super().__init__(model_dir, max_length=max_length, num_threads=num_threads, prefix=prefix)
        self.variant = variant
        self.parallel_batches = parallel_batches and self.num_threads > 1
        path = onnx_dir(self.model_dir) / FILES[variant]
        if not path.is_file():
            raise FileNotFoundError(
                f"no ONNX encoder at {path}; run `python -m models.encoder.onnx`"
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1 if self.parallel_batches else self.num_threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # one session serves every worker thread (InferenceSession.run is thread-safe), so
        # the weights are held once
        self.session_ = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._workers: ThreadPoolExecutor | None = None
        self._workers_pid = 0

    def _run_batches(
        self, embed: EmbedBatch, batches: Sequence[PaddedBatch]
    ) -> Iterable[npt.NDArray[np.float32]]:
        if not self.parallel_batches or len(batches) < 2:
            return super()._run_batches(embed, batches)
        if self._workers is None or self._workers_pid != os.getpid():
            # a forked worker (Celery prefork) inherits the pool object but not its threads
            self._workers = ThreadPoolExecutor(self.num_threads, thread_name_prefix="onnx-batch")
            self._workers_pid = os.getpid()
        return self._workers.map(lambda batch: embed(batch[1], batch[2]), batches)

    def _embed(
        self, input_ids: npt.NDArray[np.int64], attention_mask: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float32]:
        return self._run("embeddings", input_ids, attention_mask)

    def _embed_layers(
        self, input_ids: npt.NDArray[np.int64], attention_mask: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float32]:
        return self._run("layers", input_ids, attention_mask)

    def _run(
        self,
        output: str,
        input_ids: npt.NDArray[np.int64],
        attention_mask: npt.NDArray[np.int64],
    ) -> npt.NDArray[np.float32]:
        """One named output of the graph, for one padded batch."""
        feeds = {"input_ids": input_ids, "attention_mask": attention_mask}
        (out,) = self.session_.run([output], feeds)
        return np.asarray(out, dtype=np.float32)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Export the rebuilt encoder to ONNX (+ int8).")
    parser.add_argument(
        "--cache-dir", type=Path, default=None, help="default: $SAWT_CACHE_DIR or .cache"
    )
    parser.add_argument("--force", action="store_true", help="export again even if current")
    args = parser.parse_args(argv)
    paths = export_onnx(build.model_dir(args.cache_dir), force=args.force)
    for variant, path in paths.items():
        print(f"{variant}\t{path}\t{path.stat().st_size / 1e6:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
