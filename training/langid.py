"""Train, evaluate and publish the language identifier (``python -m training.langid``).

Training rows come from the train splits of corpora the shipped model may learn from; ``C`` is
chosen on their dev splits; every number reported is on held-out test splits (plus corpora never
trained on: complaints_social_media, and the seed set's test split when present).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import classification_report, f1_score

from models.language import LANGUAGES, LanguageIdentifier
from models.registry import Registry
from training.corpora import load_corpus, load_seed_topics, provenance

C_GRID = (1.0, 4.0, 16.0)
COLUMNS = ["text", "language", "source"]


def labelled_rows(split: str, data_dir: Path | None = None) -> pd.DataFrame:
    """``text, language, source`` rows of one split from the trainable corpora (+ seed train).

    MSA rows of ArSarcasm-v2 add standard Arabic from outside Morocco, which MAC's short
    `standard` tweets alone under-represent; its other dialects fit neither `ar` nor `ary`.
    """
    mac = load_corpus("mac", data_dir, include_unmapped=True)
    afrisenti = load_corpus("afrisenti_ary", data_dir)
    umsab = load_corpus("umsab_xlm_t", data_dir)
    arsarcasm = load_corpus("arsarcasm_v2", data_dir)
    arsarcasm = arsarcasm[arsarcasm["language"] == "ar"]
    frames = [
        frame[frame["split"] == split][COLUMNS] for frame in (mac, afrisenti, umsab, arsarcasm)
    ]
    seed = load_seed_topics()
    if split == "train" and len(seed):
        # Project-authored complaints: the only in-domain text (the seed test split stays out).
        frames.append(seed[seed["split"] == "train"].assign(source="seed_topics")[COLUMNS])
    return pd.concat(frames, ignore_index=True)


def evaluation_sets(data_dir: Path | None = None) -> dict[str, pd.DataFrame]:
    """Held-out sets: corpus test splits, never-trained corpora, the seed set's test split."""
    test = labelled_rows("test", data_dir)
    sets = {str(name): frame for name, frame in test.groupby("source")}
    complaints = load_corpus("complaints_social_media", data_dir)
    sets["complaints_social_media"] = complaints[complaints["script"] == "Latn"][COLUMNS]
    seed = load_seed_topics()
    if len(seed):
        seed = seed[seed["split"] == "test"]
        sets["seed_topics"] = seed.assign(source="seed_topics")[COLUMNS]
    return sets


def scores(truth: pd.Series, predicted: np.ndarray) -> dict[str, Any]:
    labels = sorted(set(truth) | set(predicted))
    report = classification_report(
        truth, predicted, labels=labels, output_dict=True, zero_division=0.0
    )
    return {
        "n": len(truth),
        "accuracy": round(float(np.mean(truth.to_numpy() == predicted)), 4),
        "macro_f1": round(
            float(
                f1_score(
                    truth, predicted, labels=sorted(set(truth)), average="macro", zero_division=0.0
                )
            ),
            4,
        ),
        "per_class": {
            label: {
                "precision": round(report[label]["precision"], 4),
                "recall": round(report[label]["recall"], 4),
                "f1": round(report[label]["f1-score"], 4),
                "support": int(report[label]["support"]),
            }
            for label in labels
        },
    }


def evaluate(model: LanguageIdentifier, sets: dict[str, pd.DataFrame]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    pooled_truth, pooled_pred = [], []
    for name, frame in sets.items():
        identified = model.identify(frame["text"].tolist())
        predicted = np.asarray([r.language for r in identified], dtype=object)
        results[name] = scores(frame["language"], predicted)
        results[name]["mixed_share"] = round(float(np.mean([bool(r.mix) for r in identified])), 4)
        pooled_truth.append(frame["language"])
        pooled_pred.append(predicted)
    pooled = scores(pd.concat(pooled_truth, ignore_index=True), np.concatenate(pooled_pred))
    return {"pooled": pooled, "sets": results}


def select_c(train: pd.DataFrame, dev: pd.DataFrame) -> tuple[float, dict[str, float]]:
    """``C`` with the best dev macro-F1 (test splits are not looked at)."""
    dev_scores = {}
    for c in C_GRID:
        model = LanguageIdentifier(C=c).fit(train["text"].tolist(), train["language"].tolist())
        predicted = model.predict(dev["text"].tolist())
        dev_scores[str(c)] = round(float(f1_score(dev["language"], predicted, average="macro")), 4)
    best = max(C_GRID, key=lambda c: dev_scores[str(c)])
    return best, dev_scores


def _table(rows: list[list[str]], header: list[str]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def model_card(metrics: dict[str, Any], training_data: list[dict[str, Any]]) -> str:
    pooled = metrics["test"]["pooled"]
    per_class = [
        [lang, f"{v['precision']:.3f}", f"{v['recall']:.3f}", f"{v['f1']:.3f}", str(v["support"])]
        for lang, v in pooled["per_class"].items()
    ]
    per_set = []
    for name, v in metrics["test"]["sets"].items():
        gold = [lang for lang, c in v["per_class"].items() if c["support"]]
        cells = []
        for lang in gold:
            scores_ = v["per_class"][lang]
            precision = f"P {scores_['precision']:.3f} " if len(gold) > 1 else ""
            cells.append(f"{lang} {precision}R {scores_['recall']:.3f}")
        detail = "; ".join(cells)
        per_set.append(
            [name, str(v["n"]), f"{v['accuracy']:.3f}", detail, f"{v['mixed_share']:.3f}"]
        )
    corpora = [
        [d["corpus"], d["licence"], ", ".join(d["splits"]), str(d["rows"])] for d in training_data
    ]
    p = metrics["params"]
    dev_by_c = metrics["dev_macro_f1_by_C"]
    train_s, select_s = metrics["train_seconds"], metrics["selection_seconds"]
    return f"""# Language identifier (`langid-charlr`)

Identifies `ar` (MSA), `ary` (Darija, Arabic script), `ary-Latn` (Darija, Latin script), `fr`,
`en`, `zgh` (Tifinagh) and `und`, plus the languages of code-switched texts (`mix`).

## How it decides
1. Rules: the script with most letters (URLs, handles, emoji ignored). Tifinagh -> `zgh`;
   fewer than {p["min_letters"]} letters or another script -> `und`.
2. A char_wb 1-4-gram TF-IDF + class-balanced logistic regression per script: Arabic script
   chooses `ar`/`ary`, Latin script `fr`/`en`/`ary-Latn`.
3. Mix: the text is cut at script changes and clause punctuation, long runs in windows of
   {p["window"]} words. A part counts when it has >= {p["min_segment_letters"]} letters and its
   language probability is >= {p["mix_min_confidence"]} (>= {p["mix_same_script_confidence"]}
   in the text's main script). Languages holding >= {p["mix_min_share"]:.0%} of the counted
   letters form `mix`.

`C` = {p["C"]} chosen on dev splits (dev macro-F1 per C: {dev_by_c}).

## Held-out results (test splits)

Pooled macro-F1 {pooled["macro_f1"]:.3f}, accuracy {pooled["accuracy"]:.3f}.

{_table(per_class, ["language", "precision", "recall", "F1", "support"])}

Per evaluation set (P/R = precision/recall; precision is only shown where the set has more
than one gold language; `mixed share` = texts reported as code-switched):

{_table(per_set, ["set", "n", "accuracy", "per gold language", "mixed share"])}

Read with care: gold languages are corpus-level tags where the corpus has no per-row variety.
AfriSenti's Arabic-script rows are all tagged `ary`, yet many are MSA or other dialects, so `ary`
precision/recall on afrisenti_ary is a floor, not a measurement; MAC's `standard`/`dialectal`
is annotated per tweet and is the cleanest `ar`/`ary` check. complaints_social_media was never
trained on (English, out of domain). No Tifinagh test data exists: `zgh` is a rule.

## Training data (train splits only)

{_table(corpora, ["corpus", "licence / terms", "splits", "rows"])}

Training time {train_s:.0f} s (selection {select_s:.0f} s) on 2 CPU cores.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=None, help="corpora root")
    parser.add_argument("--registry", type=Path, default=None, help="artifact root")
    parser.add_argument("--no-publish", action="store_true", help="evaluate only")
    parser.add_argument("--report", type=Path, default=None, help="also write metrics JSON here")
    args = parser.parse_args(argv)

    train = labelled_rows("train", args.data_dir).drop_duplicates(["text", "language"])
    dev = labelled_rows("dev", args.data_dir)
    started = time.perf_counter()
    best_c, dev_scores = select_c(train, dev)
    selection_seconds = time.perf_counter() - started
    started = time.perf_counter()
    model = LanguageIdentifier(C=best_c).fit(train["text"].tolist(), train["language"].tolist())
    train_seconds = time.perf_counter() - started
    test = evaluate(model, evaluation_sets(args.data_dir))
    metrics: dict[str, Any] = {
        "macro_f1": test["pooled"]["macro_f1"],
        "accuracy": test["pooled"]["accuracy"],
        "test": test,
        "dev_macro_f1_by_C": dev_scores,
        "params": model.get_params(),
        "train_seconds": round(train_seconds, 1),
        "selection_seconds": round(selection_seconds, 1),
        "labels": list(LANGUAGES),
    }
    training_data = [
        provenance(name, ["train"], int((train["source"] == name).sum()))
        for name in sorted(train["source"].unique())
    ]
    print(json.dumps({k: v for k, v in metrics.items() if k != "test"}, indent=2))
    print(json.dumps(test, indent=2))
    if args.report:
        args.report.write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    if not args.no_publish:
        meta = Registry(args.registry).publish(
            model,
            task="langid",
            metrics=metrics,
            primary_metric="macro_f1",
            training_data=training_data,
            card=model_card(metrics, training_data),
            promote=True,
        )
        print(f"published langid/{meta.version} (promoted)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
