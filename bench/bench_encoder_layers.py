"""What the pooled-layers output costs: `encode` vs `encode_layers`, same process, same texts.

    python -m bench.bench_encoder_layers [--texts 512] [--rounds 4] [--adapter NAME]

The served ONNX int8 encoder (with the promoted heads' adapter merged) runs both calls on the
same mixed held-out texts, alternating which goes first each round. Reported: texts/s of each
over all texts, p95 latency of one-text calls, and the layers/embedding throughput ratio
(medians over rounds). Topic heads that read layers 6, 8, 10 and 12 need `encode_layers`.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import numpy as np

from bench.bench_serving import sample_texts


def measure(encode: Callable[[list[str]], np.ndarray], texts: list[str]) -> tuple[float, float]:
    """(texts/s over all texts, p95 ms of 40 one-text calls)."""
    started = time.perf_counter()
    encode(texts)
    rate = len(texts) / (time.perf_counter() - started)
    latencies = []
    for text in texts[:40]:
        started = time.perf_counter()
        encode([text])
        latencies.append((time.perf_counter() - started) * 1000)
    return rate, float(np.percentile(latencies, 95))


def main(argv: list[str] | None = None) -> int:
    from models.encoder import OnnxEncoder, tuned
    from models.registry import Registry, encoder_of
    from training.fit import prepare_texts

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--adapter", default=None, help="default: the promoted topics heads'")
    args = parser.parse_args(argv)

    adapter = args.adapter or encoder_of(Registry().load_meta("topics"))[1]
    encoder = OnnxEncoder(tuned.encoder_dir(adapter), variant="int8")
    texts = prepare_texts(sample_texts(args.texts))
    calls = {"embedding": encoder.encode, "layers": encoder.encode_layers}
    for call in calls.values():
        call(texts[:32])  # warm-up
    results: dict[str, dict[str, list[float]]] = {
        name: {"texts_per_s": [], "p95_ms_1_text": []} for name in calls
    }
    for round_ in range(args.rounds):
        order = list(calls) if round_ % 2 == 0 else list(calls)[::-1]
        for name in order:
            rate, p95 = measure(calls[name], texts)
            results[name]["texts_per_s"].append(round(rate, 1))
            results[name]["p95_ms_1_text"].append(round(p95, 2))
    medians = {
        name: {key: float(np.median(values)) for key, values in result.items()}
        for name, result in results.items()
    }
    report = {
        "texts": len(texts),
        "adapter": adapter,
        "rounds": results,
        "throughput_ratio_layers_vs_embedding": round(
            medians["layers"]["texts_per_s"] / medians["embedding"]["texts_per_s"], 3
        ),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
