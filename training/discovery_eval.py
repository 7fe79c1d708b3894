"""How well do discovered themes agree with labels nobody showed the model?

    python -m training.discovery_eval [--report report.json] [--min-theme-size N]

Corpus: complaints_social_media (Preotiuc-Pietro et al. 2019; English tweets to customer
service accounts, evaluation-only terms), whose rows carry one of 11 domains. Two views:

* ``complaints``: the tweets labelled as complaints, against their 9 industry domains;
* ``all``: every tweet, against all 11 domains (two are non-complaint samples,
  ``random_reply`` and ``random_tweet``).

Discovery is unsupervised and its settings were chosen on the project's seed set and
synthetic data, never on this corpus. NMI and ARI count outliers as one more cluster ("all
rows") and are also given on the rows discovery did assign ("inliers"). Same-run reference:
k-means with k = the number of labels on the same embeddings (it is told k; discovery is not).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from models.discovery import ThemeDiscoverer
from training.corpora import CorpusError, load_corpus

CORPUS = "complaints_social_media"


def embeddings_for(
    texts: list[str], cache_dir: Path | None, adapter: str | None = None
) -> npt.NDArray[np.float32]:
    """Encoder output for ``texts`` (the base, or the base with LoRA `adapter` merged), cached
    by content so that reruns skip the encoder."""
    from models.encoder import build, tuned
    from models.encoder.encoder import Encoder

    key = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    root = cache_dir if cache_dir is not None else build.default_cache_dir() / "discovery"
    encoder_name = build.SOURCE_SHA256[:8] + (f"+{adapter}" if adapter else "")
    path = root / f"eval-{CORPUS}-{encoder_name}-{key}.npy"
    if path.is_file():
        return np.load(path)
    started = time.perf_counter()
    model_dir = tuned.build_tuned(adapter, export=False) if adapter else None
    vectors = Encoder(model_dir).encode(texts)
    print(f"encoded {len(texts)} texts in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def scores(truth: npt.ArrayLike, labels: npt.NDArray[np.int64]) -> dict[str, float]:
    truth = np.asarray(truth)
    inliers = labels >= 0
    return {
        "nmi": round(float(normalized_mutual_info_score(truth, labels)), 3),
        "ari": round(float(adjusted_rand_score(truth, labels)), 3),
        "nmi_inliers": round(
            float(normalized_mutual_info_score(truth[inliers], labels[inliers])), 3
        ),
        "ari_inliers": round(float(adjusted_rand_score(truth[inliers], labels[inliers])), 3),
        "outlier_share": round(float(1 - inliers.mean()), 3),
        "clusters": int(labels.max()) + 1,
    }


def evaluate(
    min_theme_size: int | None, cache_dir: Path | None, seed: int, adapter: str | None = None
) -> dict[str, Any]:
    frame = load_corpus(CORPUS)
    vectors = embeddings_for(frame["text"].tolist(), cache_dir, adapter)
    views = {
        "complaints": frame["complaint"].to_numpy(dtype=bool),
        "all": np.ones(len(frame), bool),
    }
    report: dict[str, Any] = {"corpus": CORPUS, "encoder_adapter": adapter, "views": {}}
    for view, rows in views.items():
        texts = frame.loc[rows, "text"].tolist()
        truth = frame.loc[rows, "domain"].to_numpy()
        started = time.perf_counter()
        model = ThemeDiscoverer(min_theme_size=min_theme_size, random_state=seed).fit(
            texts, vectors[rows], languages=frame.loc[rows, "language"].tolist()
        )
        fit_s = time.perf_counter() - started
        k = len(set(truth))
        kmeans = KMeans(k, n_init=10, random_state=seed).fit_predict(vectors[rows])
        report["views"][view] = {
            "rows": int(rows.sum()),
            "labels": k,
            "discovery": {**scores(truth, model.labels_), "fit_s": round(fit_s, 1)},
            "kmeans_k_given": scores(truth, np.asarray(kmeans, dtype=np.int64)),
            "themes": [
                {
                    "theme_id": t.theme_id,
                    "size": t.size,
                    "keywords": t.keywords[:6],
                    "majority_domain": str(
                        max(
                            set(truth[model.labels_ == i]),
                            key=list(truth[model.labels_ == i]).count,
                        )
                    ),
                }
                for i, t in enumerate(model.themes_.themes)
            ],
        }
    return report


def print_report(report: dict[str, Any]) -> None:
    print(f"{report['corpus']}: discovered themes vs domain labels")
    print(
        f"{'view':<12}{'rows':>6}{'labels':>8}  {'method':<16}{'clusters':>9}{'outl.':>7}"
        f"{'NMI':>7}{'ARI':>7}{'NMI in':>8}{'ARI in':>8}"
    )
    for view, result in report["views"].items():
        for method in ("discovery", "kmeans_k_given"):
            s = result[method]
            print(
                f"{view:<12}{result['rows']:>6}{result['labels']:>8}  {method:<16}"
                f"{s['clusters']:>9}{s['outlier_share']:>7}{s['nmi']:>7}{s['ari']:>7}"
                f"{s['nmi_inliers']:>8}{s['ari_inliers']:>8}"
            )
    for view, result in report["views"].items():
        print(f"\nthemes ({view}):")
        for theme in result["themes"]:
            print(
                f"  {theme['theme_id']} n={theme['size']:<5} {theme['majority_domain']:<13} "
                f"{', '.join(theme['keywords'])}"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--report", type=Path, help="write the JSON report here")
    parser.add_argument("--min-theme-size", type=int, default=None)
    parser.add_argument("--cache-dir", type=Path, default=None, help="embedding cache")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--adapter", default=None, help="a LoRA adapter in models/adapters")
    args = parser.parse_args(argv)
    try:
        report = evaluate(args.min_theme_size, args.cache_dir, args.seed, args.adapter)
    except (CorpusError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print_report(report)
    if args.report:
        args.report.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
