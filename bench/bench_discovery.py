"""Theme discovery at scale: fit time and peak memory on 100,000 stored embeddings.

    .venv/bin/python bench/bench_discovery.py [--n 100000] [--baseline-n 10000] [--json out.json]

Synthetic but shaped like the real thing: 384-dim float16 vectors (as stored in
``analyses.embedding``) around planted theme centres, plus a direction shared by all vectors
(e5's anisotropy) and a per-language offset; texts drawn from per-theme vocabularies with
per-language function words. Each case runs in its own process, so peak RSS is that case's.

Same-run baseline: BERTopic's defaults (UMAP on every document + HDBSCAN, min_topic_size=10) on
``--baseline-n`` documents, against ``ThemeDiscoverer`` on the same documents; BERTopic's
defaults at 100,000 do not fit the 3-minute budget on 2 cores, so the 100k case runs ours only.
Budget (issue): 100k in <= 180 s and <= 4 GB. Each case is killed after ``--case-timeout``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

DIM = 384
N_THEMES = 60
LANGUAGE_FILLERS = {
    "ar": ["في", "على", "من", "الى", "هذا", "التي"],
    "ary": ["ديال", "واش", "راه", "بزاف", "هاد", "علاش"],
    "ary-Latn": ["dyal", "wach", "rah", "bzaf", "had", "3lach"],
    "fr": ["le", "la", "les", "des", "est", "pour"],
    "en": ["the", "and", "is", "for", "this", "with"],
}
BUDGET_S, BUDGET_MB = 180.0, 4096.0


def make_data(n: int, seed: int = 0) -> tuple[list[str], np.ndarray, np.ndarray, list[str]]:
    """Texts, float16 embeddings, planted theme per row, language per row."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(N_THEMES, DIM))
    common = rng.normal(size=DIM) * 2.0
    languages = list(LANGUAGE_FILLERS)
    language_offsets = rng.normal(size=(len(languages), DIM)) * 0.8
    weights = rng.dirichlet(np.full(N_THEMES, 2.0))
    themes = rng.choice(N_THEMES, size=n, p=weights)
    langs = rng.integers(len(languages), size=n)
    vectors = (
        centres[themes] + common + language_offsets[langs] + rng.normal(scale=1.1, size=(n, DIM))
    )
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    vocabularies = [[f"w{t}x{j}" for j in range(12)] for t in range(N_THEMES)]
    texts = []
    for theme, lang in zip(themes.tolist(), langs.tolist(), strict=True):
        words = [
            *rng.choice(vocabularies[theme], 5),
            *rng.choice(LANGUAGE_FILLERS[languages[lang]], 4),
        ]
        texts.append(" ".join(words))
    return texts, vectors.astype(np.float16), themes, [languages[i] for i in langs]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_case(case: str, n: int) -> dict[str, Any]:
    """One measurement, in this process."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    texts, vectors, planted, _ = make_data(n)
    before_mb = peak_rss_mb()
    start, cpu = time.perf_counter(), time.process_time()
    if case == "ours":
        from models.discovery import ThemeDiscoverer

        model = ThemeDiscoverer().fit(texts, vectors)
        labels = model.labels_
        extra = {"themes": len(model.themes_.themes)}
    elif case == "bertopic-default":
        from bertopic import BERTopic

        topic_model = BERTopic(language="multilingual", calculate_probabilities=False)
        topics, _ = topic_model.fit_transform(texts, embeddings=vectors.astype(np.float32))
        labels = np.asarray(topics)
        extra = {"themes": int(labels.max()) + 1}
    else:
        raise ValueError(f"unknown case {case}")
    wall, cpu_s = time.perf_counter() - start, time.process_time() - cpu
    inliers = labels >= 0
    return {
        "case": case,
        "n": n,
        "fit_s": round(wall, 1),
        "cpu_s": round(cpu_s, 1),
        "peak_rss_mb": round(peak_rss_mb(), 0),
        "rss_before_fit_mb": round(before_mb, 0),
        "outlier_share": round(float(1 - inliers.mean()), 3),
        "ari_all": round(float(adjusted_rand_score(planted, labels)), 3),
        "nmi_all": round(float(normalized_mutual_info_score(planted, labels)), 3),
        "ari_inliers": round(float(adjusted_rand_score(planted[inliers], labels[inliers])), 3),
        **extra,
    }


def spawn(case: str, n: int, timeout: float) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), "--case", case, "--n", str(n)]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, check=True, cwd=REPO_ROOT
        )
    except subprocess.TimeoutExpired:
        return {"case": case, "n": n, "error": f"timed out after {timeout:.0f} s"}
    except subprocess.CalledProcessError as exc:
        return {"case": case, "n": n, "error": exc.stderr.strip().splitlines()[-1:]}
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--baseline-n", type=int, default=10_000)
    parser.add_argument("--case", choices=["ours", "bertopic-default"], help="internal: one case")
    parser.add_argument("--case-timeout", type=float, default=200.0)
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args(argv)
    if args.case:
        print(json.dumps(run_case(args.case, args.n)))
        return 0

    load = os.getloadavg()[0]
    results = [
        spawn("ours", args.n, args.case_timeout),
        spawn("ours", args.baseline_n, args.case_timeout),
        spawn("bertopic-default", args.baseline_n, args.case_timeout),
    ]
    print(
        f"cores={os.cpu_count()} load_before={load:.1f} "
        "(other work on the machine inflates wall time)"
    )
    header = (
        f"{'case':<18}{'n':>8}{'fit s':>8}{'cpu s':>8}{'peak MB':>9}{'themes':>8}"
        f"{'ARI':>7}{'NMI':>7}{'outl.':>7}"
    )
    print(header)
    for r in results:
        if "error" in r:
            print(f"{r['case']:<18}{r['n']:>8}  {r['error']}")
            continue
        print(
            f"{r['case']:<18}{r['n']:>8}{r['fit_s']:>8}{r['cpu_s']:>8}{r['peak_rss_mb']:>9.0f}"
            f"{r['themes']:>8}{r['ari_all']:>7}{r['nmi_all']:>7}{r['outlier_share']:>7}"
        )
    big, ours_small, base_small = results
    if "error" not in ours_small and "error" not in base_small:
        print(
            f"ratio at n={args.baseline_n}: ours / BERTopic defaults fit time = "
            f"{ours_small['fit_s'] / base_small['fit_s']:.2f}"
        )
    if "error" not in big:
        ok = big["fit_s"] <= BUDGET_S and big["peak_rss_mb"] <= BUDGET_MB
        print(
            f"budget n={args.n}: {big['fit_s']} s <= {BUDGET_S:.0f} s and "
            f"{big['peak_rss_mb']:.0f} MB <= {BUDGET_MB:.0f} MB: {'PASS' if ok else 'FAIL'}"
        )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"load_before": load, "results": results}, handle, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
