"""Fine-tuned encoders: the rebuilt base with a committed LoRA adapter merged into its weights.

The adapter (a few MB, ``models/adapters/<version>/``) is the versioned artifact; the merged
470 MB checkpoint and its ONNX copies are rebuilt into the cache beside the base, like the base
itself, and named ``<base>+<adapter>`` so their embeddings are never confused with the base's.
Merging costs nothing at serving time: one encoder pass, same graph, same speed.

Heads record the adapter they were trained on (``training_config.encoder_adapter``); the
service serves the encoder that its promoted heads were trained on.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from models.encoder import build

ADAPTERS_ROOT = Path(__file__).resolve().parents[1] / "adapters"
ADAPTER_KIND = "lora-encoder-adapter"
ADAPTER_SCHEMA_VERSION = 1
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
META_FILE = "meta.json"


class AdapterError(RuntimeError):
    """An adapter is missing, damaged or made for another base encoder; the message says which."""


def adapter_path(name: str, root: Path | None = None) -> Path:
    if not name or "/" in name or name.startswith("."):
        raise AdapterError(f"invalid adapter name {name!r}")
    return (root if root is not None else ADAPTERS_ROOT) / name


def check_adapter(name: str, base_dir: Path, root: Path | None = None) -> dict[str, Any]:
    """The adapter's meta.json after checking its kind, files' sha256 and base encoder."""
    directory = adapter_path(name, root)
    try:
        meta = json.loads((directory / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AdapterError(f"adapter {name}: no readable {directory / META_FILE} ({exc})") from exc
    if meta.get("kind") != ADAPTER_KIND or meta.get("schema_version") != ADAPTER_SCHEMA_VERSION:
        raise AdapterError(
            f"adapter {name}: {directory / META_FILE} has kind {meta.get('kind')!r}, schema "
            f"{meta.get('schema_version')!r}; expected {ADAPTER_KIND!r}, {ADAPTER_SCHEMA_VERSION}"
        )
    for file_name in ADAPTER_FILES:
        path = directory / file_name
        expected = meta.get("files", {}).get(file_name)
        if not path.is_file():
            raise AdapterError(f"adapter {name}: {file_name} is missing")
        if build.sha256_file(path) != expected:
            raise AdapterError(f"adapter {name}: {file_name} is corrupt (sha256 mismatch)")
    expected_base = meta.get("base_encoder_sha256")
    actual_base = build.weights_sha256(base_dir)
    if expected_base != actual_base:
        raise AdapterError(
            f"adapter {name} was trained on base encoder {expected_base}, but the rebuilt base "
            f"at {base_dir} is {actual_base}; rebuild the base (`make models`) or retrain"
        )
    return dict(meta)


def tuned_dir(name: str, cache_dir: str | Path | None = None) -> Path:
    base = build.model_dir(cache_dir)
    return base.parent / f"{base.name}+{name}"


def is_built(name: str, cache_dir: str | Path | None = None, root: Path | None = None) -> bool:
    """True when the merged checkpoint exists and came from this adapter's current files."""
    out = tuned_dir(name, cache_dir)
    meta = build.read_meta(out)
    if meta is None or not (out / "model.safetensors").is_file():
        return False
    try:
        adapter_meta = json.loads(
            (adapter_path(name, root) / META_FILE).read_text(encoding="utf-8")
        )
    except (OSError, ValueError):
        return False
    recorded = meta.get("adapter", {}).get("files")
    return bool(recorded) and recorded == adapter_meta.get("files") and build.is_valid(out)


def build_tuned(
    name: str,
    cache_dir: str | Path | None = None,
    *,
    root: Path | None = None,
    force: bool = False,
    export: bool = True,
    show_progress: bool = True,
) -> Path:
    """Merge adapter `name` into the rebuilt base and export ONNX; a no-op when current
    (torch and peft are imported only to merge, not to find the merge current)."""
    from models.encoder import onnx

    def say(message: str) -> None:
        if show_progress:
            print(message, file=sys.stderr, flush=True)

    base_dir = build.model_dir(cache_dir)
    if not build.is_valid(base_dir):
        raise AdapterError(f"no rebuilt base encoder at {base_dir}; run `make models` first")
    adapter_meta = check_adapter(name, base_dir, root)
    out = tuned_dir(name, cache_dir)
    if force or not is_built(name, cache_dir, root):
        started = time.perf_counter()
        say(f"merging adapter {name} into {base_dir.name}")
        tmp = out.parent / f".tmp-{out.name}-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        try:
            from peft import PeftModel
            from transformers import AutoModel

            base = AutoModel.from_pretrained(base_dir, local_files_only=True)
            merged = PeftModel.from_pretrained(
                base, str(adapter_path(name, root))
            ).merge_and_unload()
            merged.eval()
            tmp.mkdir(parents=True)
            for child in base_dir.iterdir():
                if child.is_file() and child.name not in ("model.safetensors", META_FILE):
                    shutil.copy2(child, tmp / child.name)
                elif child.is_dir() and child.name != onnx.ONNX_SUBDIR:
                    shutil.copytree(child, tmp / child.name)
            merged.save_pretrained(str(tmp), safe_serialization=True)
            (tmp / "model.safetensors").chmod(0o644)
            # the base's config.json is kept: save_pretrained rewrites it with the same model
            shutil.copy2(base_dir / "config.json", tmp / "config.json")
            meta = dict(build.read_meta(base_dir) or {})
            meta["files"] = {
                file_name: {
                    "bytes": (tmp / file_name).stat().st_size,
                    "sha256": build.sha256_file(tmp / file_name),
                }
                for file_name in build.MODEL_FILES
            }
            meta["adapter"] = {
                "name": name,
                "files": adapter_meta["files"],
                "base_encoder_sha256": adapter_meta["base_encoder_sha256"],
            }
            meta["description"] = f"{meta.get('description', 'base encoder')} + LoRA {name}"
            meta["merged_seconds"] = round(time.perf_counter() - started, 1)
            (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
            if out.exists() and (force or not is_built(name, cache_dir, root)):
                shutil.rmtree(out)
            try:
                os.replace(tmp, out)
            except OSError:
                if not is_built(name, cache_dir, root):  # a concurrent merge may have won
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)
        say(f"merged in {time.perf_counter() - started:.1f}s: {out}")
    if export and not onnx.is_exported(out):
        onnx.export_onnx(out, show_progress=show_progress)
    return out


def encoder_dir(adapter: str | None, cache_dir: str | Path | None = None) -> Path:
    """The model directory to serve or train on: the base, or the base merged with `adapter`."""
    return build.model_dir(cache_dir) if adapter is None else tuned_dir(adapter, cache_dir)


def promoted_adapters(registry_root: Path | None = None) -> list[str]:
    """Adapters named by the promoted heads (what `make models` prepares for serving)."""
    from models.registry import Registry

    registry = Registry(registry_root)
    names = set()
    for task in registry.tasks():
        if registry.promoted_version(task) is None:
            continue
        config = registry.load_meta(task).extra.get("training_config", {})
        if config.get("encoder_adapter"):
            names.add(str(config["encoder_adapter"]))
    return sorted(names)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Merge LoRA adapters (models/adapters) into the rebuilt encoder, + ONNX."
    )
    parser.add_argument(
        "names", nargs="*", help="adapters (default: the ones the promoted heads were fit on)"
    )
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)
    names = args.names or promoted_adapters()
    try:
        for name in names:
            print(build_tuned(name, args.cache_dir, force=args.force))
    except AdapterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
