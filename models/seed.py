"""The project-authored seed set (`datasets/seed_topics`): rows, and their embeddings cached
by content so each encoder encodes it once."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

SEED_DIR = Path(__file__).resolve().parents[1] / "datasets" / "seed_topics"


def seed_files(seed_dir: Path = SEED_DIR) -> list[Path]:
    files = sorted(Path(seed_dir).glob("*.jsonl"))
    if not files:
        raise FileNotFoundError(f"no seed topic files (*.jsonl) in {seed_dir}")
    return files


def load_seed_rows(split: str | None = "train", seed_dir: Path = SEED_DIR) -> list[dict[str, Any]]:
    rows = [
        json.loads(line)
        for path in seed_files(seed_dir)
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    return [r for r in rows if split is None or r.get("split") == split]


def seed_embeddings(
    encode: Callable[[Sequence[str]], np.ndarray],
    *,
    encoder_key: str,
    cache_dir: Path | None,
    split: str = "train",
    seed_dir: Path = SEED_DIR,
) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Rows of one split and their embeddings; the cache key covers the files and the encoder."""
    digest = hashlib.sha256(f"{encoder_key}|{split}".encode())
    for path in seed_files(seed_dir):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    rows = load_seed_rows(split, seed_dir)
    cache = Path(cache_dir) / f"seed-{split}-{digest.hexdigest()[:16]}.npy" if cache_dir else None
    if cache is not None and cache.is_file():
        return rows, np.load(cache)
    embeddings = np.asarray(encode([str(r["text"]) for r in rows]), dtype=np.float32)
    if cache is None:
        return rows, embeddings
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(cache.name + ".tmp.npy")
    np.save(tmp, embeddings)
    tmp.replace(cache)
    return rows, embeddings
