"""How the served encoder batches texts: a fixed count per batch vs a padded-token budget.

    python -m bench.bench_length_batches [--texts 512] [--rounds 2] [--budget-tokens 256 512 1024]

Same process, same ONNX int8 encoder (the one the promoted heads name), same texts (held-out
test texts of every corpus and the seed set, as `bench_serving` samples them). The baseline is
32 texts a batch with no token budget (what `encode` did before the budget); each candidate is
reported as a ratio against it: throughput in chunks of 256 texts, and p50/p95 latency of 20
requests of 32 random texts (`bench_serving.latency_by_size`). Rounds alternate the
configurations, so drift hits all alike.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

BASELINE = "32 texts, no token budget"
UNBOUNDED = 10**9


def measure(encoder: Any, texts: list[str], **batching: int) -> dict[str, float]:
    """Throughput in chunks of 256 texts, then `bench_serving`'s latency loop (same seeded
    requests for every configuration)."""
    from bench.bench_serving import latency_by_size

    def encode(batch: list[str]) -> object:
        return encoder.encode(batch, **batching)

    encode(texts[:64])  # warm-up
    started = time.perf_counter()
    for start in range(0, len(texts), 256):
        encode(texts[start : start + 256])
    throughput = len(texts) / (time.perf_counter() - started)
    latency = latency_by_size(encode, texts, reps=20, budget_s=120.0)["32_texts"]
    return {"texts_per_s": throughput, "p50_ms": latency["p50_ms"], "p95_ms": latency["p95_ms"]}


def main(argv: list[str] | None = None) -> int:
    from bench.bench_serving import sample_texts
    from models.encoder import OnnxEncoder, tuned
    from models.registry import Registry
    from training.fit import prepare_texts

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--texts", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--budget-tokens", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    _, meta = Registry().load("sentiment")
    adapter = meta.extra.get("training_config", {}).get("encoder_adapter")
    encoder = OnnxEncoder(tuned.encoder_dir(adapter), variant="int8")
    texts = prepare_texts(sample_texts(args.texts))
    configs: dict[str, dict[str, int]] = {
        BASELINE: {"batch_size": 32, "max_batch_tokens": UNBOUNDED},
        **{
            f"up to 64 texts and {n} tokens": {"batch_size": 64, "max_batch_tokens": n}
            for n in args.budget_tokens
        },
    }
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in configs}
    for round_ in range(args.rounds):
        for name, batching in configs.items():
            runs[name].append(measure(encoder, texts, **batching))
            print(f"round {round_ + 1} {name}: {runs[name][-1]}", file=sys.stderr, flush=True)
    base = {k: float(np.median([r[k] for r in runs[BASELINE]])) for k in runs[BASELINE][0]}
    report: dict[str, Any] = {"texts": len(texts), "rounds": args.rounds, "configs": {}}
    for name, results in runs.items():
        median = {k: float(np.median([r[k] for r in results])) for k in results[0]}
        report["configs"][name] = {
            **{k: round(v, 1) for k, v in median.items()},
            "throughput_vs_baseline": round(median["texts_per_s"] / base["texts_per_s"], 2),
            "p50_vs_baseline": round(median["p50_ms"] / base["p50_ms"], 2),
            "p95_vs_baseline": round(median["p95_ms"] / base["p95_ms"], 2),
        }
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
