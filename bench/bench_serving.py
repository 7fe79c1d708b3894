"""Served model path vs a naive baseline, same texts, same run, same machine.

    python -m bench.bench_serving [--texts 512] [--reps 30] [--registry DIR] [--out FILE]

(a) naive: transformers `AutoModel` in torch fp32, texts batched in arrival order and padded
    to the longest (no length bucketing), default threads, mean pooling, then the heads;
(b) served: the ONNX dynamic-int8 encoder (`OnnxEncoder`: length-bucketed batches, one per
    core at a time), then the same heads; with `--with-serial`, also (c) served-serial: the
    same encoder running one bucket at a time on every core's threads (the threading before
    stop 19), so the change is measured in the same run.
Both paths prepare texts as the pipeline does and run the promoted (or given) sentiment and
topic versions. Each path runs in its own subprocess so its peak RSS is its own. Reported:
throughput (texts/s) on all texts, latency p50/p95 for 1 text and for 32 texts, peak RSS, and
the served/naive throughput ratio; then, in a third process, `POST /v1/analyze` of 1 and 32
texts through the app (p50/p95, the API process's peak RSS). Bounded: a path stops measuring
after `--budget-s` seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]


def sample_texts(n: int, seed: int = 0) -> list[str]:
    """A mix of held-out test texts from every sentiment corpus and the seed set."""
    from training.baseline import sentiment_frames
    from training.corpora import load_seed_topics

    rng = np.random.default_rng(seed)
    pools = []
    for name, frame in sentiment_frames().items():
        test = frame[frame["split"] == "test"]["text"].tolist()
        pools.append((name, test))
    seed_topics = load_seed_topics()
    if len(seed_topics):
        pools.append(("seed", seed_topics[seed_topics["split"] == "test"]["text"].tolist()))
    per_pool = max(1, n // len(pools))
    texts: list[str] = []
    for _, pool in pools:
        picks = rng.choice(len(pool), size=min(per_pool, len(pool)), replace=False)
        texts.extend(pool[i] for i in picks)
    rng.shuffle(texts)
    return texts[:n]


class NaiveEncoder:
    """What a first implementation does: HF model in fp32, arrival-order padded batches."""

    def __init__(self, directory: Path) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
        self.model = AutoModel.from_pretrained(directory, local_files_only=True).eval()
        self.torch = torch

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        return self.encode_layers(texts, batch_size)[:, -1]

    def encode_layers(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """Every layer pooled (the topic head may read several); the last is `encode`'s."""
        from models.encoder.encoder import pooled_layers

        torch = self.torch
        out = []
        for start in range(0, len(texts), batch_size):
            batch = ["query: " + t for t in texts[start : start + batch_size]]
            enc = self.tokenizer(
                batch, padding=True, truncation=True, max_length=256, return_tensors="pt"
            )
            with torch.inference_mode():
                hidden = self.model(**enc, output_hidden_states=True).hidden_states
            out.append(pooled_layers(hidden, enc["attention_mask"]).numpy())
        return np.concatenate(out) if out else np.zeros((0, 12, 384), dtype=np.float32)


def run_path(
    path: str,
    texts: list[str],
    reps: int,
    budget_s: float,
    registry: Path | None,
    versions: dict[str, str | None],
) -> dict[str, Any]:
    import models.heads.encoder_heads
    import models.heads.tfidf  # noqa: F401
    from models.encoder import tuned
    from models.pipeline import encode_with_spellings, head_inputs, reads_layers
    from models.registry import Registry
    from training.fit import prepare_texts

    started_load = time.perf_counter()
    reg = Registry(registry)
    sentiment, sentiment_meta = reg.load("sentiment", versions.get("sentiment"))
    topics, topics_meta = reg.load("topics", versions.get("topics"))
    # the encoder the heads were fit on: the base, or the base with their LoRA adapter merged
    adapter = sentiment_meta.extra.get("training_config", {}).get("encoder_adapter")
    directory = tuned.encoder_dir(adapter)
    if path == "naive":
        encoder: Any = NaiveEncoder(directory)
    else:
        from models.encoder import OnnxEncoder

        encoder = OnnxEncoder(directory, variant="int8", parallel_batches=path == "served")
    load_s = time.perf_counter() - started_load

    def analyse(batch: list[str]) -> None:
        prepared = prepare_texts(batch)
        embeddings, layers, arabizi = encode_with_spellings(
            encoder, prepared, sentiment, layered=reads_layers(sentiment, topics)
        )
        sentiment.predict_proba(head_inputs(sentiment, prepared, embeddings, layers, arabizi))
        topics.predict_proba(head_inputs(topics, prepared, embeddings, layers))

    analyse(texts[:32])  # warm-up
    started = time.perf_counter()
    done = 0
    for start in range(0, len(texts), 256):
        chunk = texts[start : start + 256]
        analyse(chunk)
        done += len(chunk)
        if time.perf_counter() - started > budget_s:
            break
    throughput = done / (time.perf_counter() - started)
    latency = latency_by_size(analyse, texts, reps, budget_s)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "path": path,
        "texts_measured": done,
        "texts_per_s": round(throughput, 1),
        "latency": latency,
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "load_s": round(load_s, 1),
        "sentiment_version": sentiment_meta.version,
        "topics_version": topics_meta.version,
    }


def latency_by_size(
    call: Callable[[list[str]], object],
    texts: list[str],
    reps: int,
    budget_s: float,
    warmup: int = 0,
) -> dict[str, dict[str, float]]:
    """p50/p95 of `call` on random batches of 1 and of 32 texts (`warmup` calls not timed)."""
    rng = np.random.default_rng(1)
    latency: dict[str, dict[str, float]] = {}
    for size in (1, 32):
        times: list[float] = []
        started = time.perf_counter()
        for rep in range(reps + warmup):
            picks = rng.choice(len(texts), size=size, replace=False)
            t0 = time.perf_counter()
            call([texts[i] for i in picks])
            if rep >= warmup:
                times.append((time.perf_counter() - t0) * 1000)
            if time.perf_counter() - started > budget_s / 2:
                break
        latency[f"{size}_text{'s' if size > 1 else ''}"] = {
            "p50_ms": round(float(np.percentile(times, 50)), 1),
            "p95_ms": round(float(np.percentile(times, 95)), 1),
            "n": len(times),
        }
    return latency


def run_http(texts: list[str], reps: int, budget_s: float) -> dict[str, Any]:
    """`POST /v1/analyze` of 1 and of 32 texts through the real app (auth, validation, JSON,
    the promoted pipeline), in-process over ASGI; peak RSS is the API process with its models."""
    import tempfile

    from fastapi.testclient import TestClient

    from bench.bench_batch import database_with_key
    from service.core.config import Environment, Settings
    from service.main import create_app

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        settings = Settings(database_url=url, environment=Environment.test, rate_limit_per_minute=0)
        engine, key = database_with_key(settings)
        headers = {"Authorization": f"Bearer {key}"}
        with TestClient(create_app(settings, start_runner=False)) as client:
            versions = client.get("/v1/models", headers=headers).json()["versions"]

            def analyse(batch: list[str]) -> None:
                response = client.post("/v1/analyze", json={"texts": batch}, headers=headers)
                assert response.status_code == 200, response.text

            latency = latency_by_size(analyse, texts, reps, budget_s, warmup=3)
        engine.dispose()
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "path": "http",
        "latency": latency,
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "versions": versions,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--texts", type=int, default=512)
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=2, help="naive/served pairs, alternated")
    parser.add_argument("--budget-s", type=float, default=240.0, help="per path and phase")
    parser.add_argument("--registry", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--sentiment-version", default=None, help="default: the promoted one")
    parser.add_argument("--topics-version", default=None, help="default: the promoted one")
    parser.add_argument(
        "--with-serial", action="store_true", help="also run served-serial in every round"
    )
    parser.add_argument(
        "--worker", choices=["naive", "served", "served-serial", "http"], help=argparse.SUPPRESS
    )
    parser.add_argument("--texts-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        texts = json.loads(args.texts_file.read_text(encoding="utf-8"))
        versions = {"sentiment": args.sentiment_version, "topics": args.topics_version}
        if args.worker == "http":
            print(json.dumps(run_http(texts, args.reps, args.budget_s)))
            return 0
        print(
            json.dumps(
                run_path(args.worker, texts, args.reps, args.budget_s, args.registry, versions)
            )
        )
        return 0
    texts = sample_texts(args.texts)
    texts_file = Path("/tmp") / f"sawt-bench-texts-{time.time_ns()}.json"
    texts_file.write_text(json.dumps(texts, ensure_ascii=False), encoding="utf-8")
    rounds: list[dict[str, Any]] = []
    try:
        for _ in range(args.rounds):
            rounds.append(_one_round(args, texts_file))
        rounds[-1]["http"] = _worker(args, texts_file, "http")
    finally:
        texts_file.unlink(missing_ok=True)
    ratios = [r["served"]["texts_per_s"] / r["naive"]["texts_per_s"] for r in rounds]
    report = {
        "texts": len(texts),
        "mean_chars": round(float(np.mean([len(t) for t in texts])), 1),
        "cores": len(os.sched_getaffinity(0)),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "rounds": rounds,
        "throughput_ratio_served_vs_naive": [round(r, 2) for r in ratios],
        "throughput_ratio_median": round(float(np.median(ratios)), 2),
    }
    if args.with_serial:
        report["throughput_ratio_served_vs_serial"] = [
            round(r["served"]["texts_per_s"] / r["served-serial"]["texts_per_s"], 2) for r in rounds
        ]
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


def _one_round(args: argparse.Namespace, texts_file: Path) -> dict[str, Any]:
    """naive then served, each in a fresh subprocess (own peak RSS), on the same texts."""
    paths = ["naive", "served", *(["served-serial"] if args.with_serial else [])]
    return {path: _worker(args, texts_file, path) for path in paths}


def _worker(args: argparse.Namespace, texts_file: Path, path: str) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        "bench.bench_serving",
        "--worker",
        path,
        "--texts-file",
        str(texts_file),
        "--reps",
        str(args.reps),
        "--budget-s",
        str(args.budget_s),
    ]
    if args.registry:
        command += ["--registry", str(args.registry)]
    for flag, value in (
        ("--sentiment-version", args.sentiment_version),
        ("--topics-version", args.topics_version),
    ):
        if value:
            command += [flag, value]
    done = subprocess.run(
        command,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=4 * args.budget_s + 300,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the {path} worker failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps(result), file=sys.stderr, flush=True)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
