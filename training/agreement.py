"""Agreement between independent topic annotations of the seed set's `test` split.

The topic targets are macro-F1 against the authors' labels. Two more annotators labelled the
same `test` lines from the labelling guide alone (never the authors' labels, never a model's
output); their agreement with the authors and with each other is the ceiling a model's score
against one annotator should be read against, and the model's agreement with each annotator
shows whether it errs where people disagree or elsewhere.

    python -m training.agreement [--model] [--json OUT]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from training.baseline import TAXONOMY, indicator, topic_scores
from training.corpora import SEED_TOPICS_DIR, load_seed_topics

ANNOTATIONS_DIR = SEED_TOPICS_DIR / "agreement"
AUTHORS = "authors"
MODEL = "model"


def load_annotations(directory: Path = ANNOTATIONS_DIR) -> dict[str, pd.Series]:
    """``{annotator: topics per test id}`` from ``<directory>/<annotator>.jsonl``, each line
    ``{"id", "topics"}``; a malformed line is an error naming its file and line number."""
    annotations: dict[str, pd.Series] = {}
    for path in sorted(directory.glob("*.jsonl")):
        topics: dict[str, list[str]] = {}
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path.name}:{number}: not JSON ({error.msg})") from None
            labels = row.get("topics")
            unknown = set(labels or []) - set(TAXONOMY)
            if not labels or unknown or len(set(labels)) != len(labels):
                raise ValueError(
                    f"{path.name}:{number}: topics must be a non-empty list of distinct "
                    f"taxonomy ids (got {labels!r})"
                )
            if row["id"] in topics:
                raise ValueError(f"{path.name}:{number}: id {row['id']!r} repeated")
            topics[row["id"]] = list(labels)
        annotations[path.stem] = pd.Series(topics, name=path.stem)
    return annotations


def pairwise_agreement(
    labelings: Mapping[str, pd.Series], languages: pd.Series
) -> list[dict[str, Any]]:
    """Macro-F1 of every pair of labelings over the ids they share, overall and per variety.

    Per-topic F1 is symmetric in its two arguments, so macro-F1 between two annotators does
    not depend on which one is called the truth. Topics that neither side uses on the rows
    compared are left out of the mean rather than counted as zero."""
    pairs = []
    for first, second in itertools.combinations(labelings, 2):
        ids = languages.index.intersection(labelings[first].index).intersection(
            labelings[second].index
        )
        used = {
            t for rows in (labelings[first], labelings[second]) for ts in rows.loc[ids] for t in ts
        }
        labels = [topic for topic in TAXONOMY if topic in used]
        a = indicator(labelings[first].loc[ids], labels)
        b = indicator(labelings[second].loc[ids], labels)
        overall = topic_scores(a, b, labels)
        by_language = {}
        for language in sorted(set(languages.loc[ids])):
            rows = (languages.loc[ids] == language).to_numpy()
            present = (a[rows] | b[rows]).any(axis=0)
            by_language[language] = topic_scores(
                a[rows][:, present],
                b[rows][:, present],
                [t for t, p in zip(labels, present, strict=True) if p],
            )["macro_f1"]
        pairs.append(
            {
                "pair": [first, second],
                "n": len(ids),
                "macro_f1": overall["macro_f1"],
                "exact_match": overall["exact_match"],
                "by_language": by_language,
                "by_topic": {t: v["f1"] for t, v in overall["per_topic"].items()},
            }
        )
    return pairs


def model_labeling(test: pd.DataFrame) -> pd.Series:
    """The promoted topic model's labels for the test rows (same path as `sawt evaluate`)."""
    from models.registry import Registry
    from training.evaluate import EvaluationData, predict_seed_test_topics
    from training.fit import EmbeddingCache

    registry = Registry()
    model, meta = registry.load("topics")
    trained_with = meta.extra.get("training_config", {})
    cache = EmbeddingCache(
        variant=str(trained_with.get("encoder_variant", "int8")),
        adapter=trained_with.get("encoder_adapter"),
    )
    rows, predicted, _ = predict_seed_test_topics(model, EvaluationData(cache))
    labels = list(model.labels_)
    topics = [[labels[j] for j in np.flatnonzero(row)] for row in predicted]
    series = pd.Series(topics, index=rows["id"].to_numpy(), name=f"{MODEL} {meta.version}")
    return series.loc[test["id"].to_numpy()]


def markdown(pairs: Sequence[dict[str, Any]]) -> str:
    languages = sorted({lang for pair in pairs for lang in pair["by_language"]})
    head = ["pair", "n", "macro-F1", *languages, "exact match"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for pair in pairs:
        cells = [
            " vs ".join(pair["pair"]),
            str(pair["n"]),
            f"{pair['macro_f1']:.3f}",
            *(f"{pair['by_language'].get(lang, float('nan')):.3f}" for lang in languages),
            f"{pair['exact_match']:.3f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="store_true", help="add the promoted topic model")
    parser.add_argument("--json", type=Path, help="also write the full report here")
    args = parser.parse_args(argv)
    seed = load_seed_topics()
    test = seed[seed["split"] == "test"]
    labelings: dict[str, pd.Series] = {
        AUTHORS: pd.Series(test["topics"].to_numpy(), index=test["id"].to_numpy())
    }
    annotations = load_annotations()
    if not annotations:
        print(f"no annotations under {ANNOTATIONS_DIR}", file=sys.stderr)
        return 1
    labelings.update(annotations)
    if args.model:
        series = model_labeling(test)
        labelings[str(series.name)] = series
    languages = pd.Series(test["language"].astype(str).to_numpy(), index=test["id"].to_numpy())
    pairs = pairwise_agreement(labelings, languages)
    print(markdown(pairs))
    if args.json:
        args.json.write_text(json.dumps(pairs, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
