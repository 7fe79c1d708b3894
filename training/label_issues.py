"""Suspect topic labels in the seed set's `train` split, found by confident learning and settled
by people re-reading them blind.

Eleven batches by different writers drift: a line may lack a topic that its look-alikes carry, or
carry one the conventions rule out. `find` scores every `train` line out of fold with the recipe
the promoted topic version chose (no line is scored by a model that saw it) and flags a
(line, topic) pair when cleanlab's confident learning calls that topic's label an issue *and* the
score is far on the other side (below ``margin`` for a given topic, above ``1 - margin`` for a
missing one). It writes review sheets that hold only the texts, flagged lines shuffled among
unflagged controls, so a reviewer labels each line from the guide without seeing the given labels,
the flags or any score. `apply` then changes a flagged pair only where the reviewer sided against
the given label; the controls measure how often the reviewer disagrees with unflagged labels,
the base rate the flags are read against. `test` lines are never read or changed.

    python -m training.label_issues find --out DIR [--margin 0.1] [--controls 20]
    python -m training.label_issues apply --out DIR
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from training.corpora import SEED_TOPICS_DIR, load_seed_topics

SUSPECTS_FILE = "suspects.jsonl"
SHEETS_DIR = "sheets"
REVIEWS_DIR = "reviews"
CHANGES_FILE = "changes.jsonl"


def suspect_pairs(
    y: npt.NDArray[np.int8], scores: npt.NDArray[np.floating[Any]], margin: float = 0.1
) -> npt.NDArray[np.bool_]:
    """(rows, topics) True where confident learning (one binary problem per topic) calls the
    label an issue and the out-of-fold score lies beyond ``margin`` of the other side."""
    from cleanlab.filter import find_label_issues

    if y.shape != scores.shape:
        raise ValueError(f"labels {y.shape} and scores {scores.shape} differ in shape")
    flagged = np.zeros(y.shape, dtype=bool)
    for topic in range(y.shape[1]):
        p = np.clip(scores[:, topic], 1e-6, 1 - 1e-6)
        if y[:, topic].min() == y[:, topic].max():
            continue  # one class only: nothing to contrast
        # n_jobs=1: its process pool deadlocks when forked from a process running torch threads
        flagged[:, topic] = find_label_issues(y[:, topic], np.stack([1 - p, p], axis=1), n_jobs=1)
    far = np.where(y == 1, scores < margin, scores > 1 - margin)
    return flagged & far


def suspects_frame(
    frame: pd.DataFrame,
    y: npt.NDArray[np.int8],
    scores: npt.NDArray[np.floating[Any]],
    labels: Sequence[str],
    margin: float,
) -> pd.DataFrame:
    """One row per line with at least one suspect topic: id, language, text, topics, suspects."""
    pairs = suspect_pairs(y, scores, margin)
    rows = []
    for i in np.flatnonzero(pairs.any(axis=1)):
        suspects = [
            {"topic": labels[k], "given": int(y[i, k]), "score": round(float(scores[i, k]), 4)}
            for k in np.flatnonzero(pairs[i]).tolist()
        ]
        record = frame.iloc[i]
        rows.append(
            {
                "id": str(record["id"]),
                "language": str(record["language"]),
                "text": str(record["text"]),
                "topics": list(record["topics"]),
                "suspects": suspects,
            }
        )
    return pd.DataFrame(rows, columns=["id", "language", "text", "topics", "suspects"])


def review_sheets(
    train: pd.DataFrame, suspects: pd.DataFrame, controls: int, seed: int = 0
) -> dict[str, list[dict[str, str]]]:
    """Per language, ``{"id", "text"}`` of the suspect lines and ``controls`` unflagged lines,
    shuffled together: nothing on a sheet tells a reviewer which line was flagged or why."""
    rng = np.random.default_rng(seed)
    flagged = set(suspects["id"])
    sheets: dict[str, list[dict[str, str]]] = {}
    for language, group in train.groupby("language", sort=True):
        chosen = group[group["id"].isin(flagged)]
        unflagged = group[~group["id"].isin(flagged)]
        take = min(controls, len(unflagged))
        control_rows = unflagged.iloc[rng.choice(len(unflagged), take, replace=False)]
        sheet = pd.concat([chosen, control_rows]).sample(frac=1.0, random_state=seed)
        sheets[str(language)] = [
            {"id": str(row.id), "text": str(row.text)} for row in sheet.itertuples()
        ]
    return sheets


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise ValueError(f"{path.name}:{number}: not JSON ({error.msg})") from None
    return rows


def write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8"
    )


def read_reviews(directory: Path) -> dict[str, list[str]]:
    """``{id: topics}`` from every ``*.jsonl`` in ``directory`` (lines ``{"id", "topics"}``,
    checked as the agreement annotations are); an id reviewed in two files is an error."""
    from training.agreement import load_annotations

    reviews: dict[str, list[str]] = {}
    for name, topics in load_annotations(directory).items():
        for line_id, labels in topics.items():
            if line_id in reviews:
                raise ValueError(f"{name}.jsonl: id {line_id!r} reviewed in another file too")
            reviews[str(line_id)] = list(labels)
    return reviews


def decide(
    suspects: Sequence[dict[str, Any]], reviews: dict[str, list[str]]
) -> list[dict[str, Any]]:
    """The changes: a suspect pair whose reviewer, labelling blind, sided against the given
    label. A pair the reviewer confirmed, or a line not reviewed, keeps its label."""
    changes = []
    for line in suspects:
        reviewed = reviews.get(line["id"])
        if reviewed is None:
            continue
        for pair in line["suspects"]:
            reviewer_says = int(pair["topic"] in reviewed)
            if reviewer_says != pair["given"]:
                changes.append(
                    {
                        "id": line["id"],
                        "topic": pair["topic"],
                        "action": "add" if reviewer_says else "remove",
                        "score": pair["score"],
                    }
                )
    return changes


def apply_changes(
    changes: Sequence[dict[str, Any]], taxonomy: Sequence[str], seed_dir: Path = SEED_TOPICS_DIR
) -> int:
    """Rewrite the seed files with ``changes`` applied to `train` lines (topics kept in taxonomy
    order); a change that would leave a line with no topic, or touch a `test` line, is refused."""
    by_id: dict[str, list[dict[str, Any]]] = {}
    for change in changes:
        by_id.setdefault(change["id"], []).append(change)
    applied = 0
    for path in sorted(seed_dir.glob("*.jsonl")):
        rows = read_jsonl(path)
        touched = False
        for row in rows:
            for change in by_id.pop(row["id"], []):
                if row["split"] != "train":
                    raise ValueError(f"{row['id']}: a {row['split']} line may not be relabelled")
                topics = set(row["topics"])
                if change["action"] == "add":
                    topics.add(change["topic"])
                else:
                    topics.discard(change["topic"])
                if not topics:
                    raise ValueError(f"{row['id']}: removing {change['topic']} leaves no topic")
                row["topics"] = [t for t in taxonomy if t in topics]
                applied += 1
                touched = True
        if touched:
            write_jsonl(path, rows)
    if by_id:
        raise ValueError(f"no seed line with id(s) {sorted(by_id)}")
    return applied


def control_agreement(
    suspects: Sequence[dict[str, Any]],
    reviews: dict[str, list[str]],
    seed_dir: Path = SEED_TOPICS_DIR,
) -> dict[str, Any]:
    """How the reviewers' blind labels compare with the given ones on the unflagged controls
    (the base rate) and on the flagged pairs."""
    seed = load_seed_topics(seed_dir).set_index("id")
    flagged = {line["id"] for line in suspects}
    controls = [i for i in reviews if i not in flagged]
    exact = sum(set(reviews[i]) == set(seed.loc[i, "topics"]) for i in controls)
    pairs = [
        (line["id"], p) for line in suspects for p in line["suspects"] if line["id"] in reviews
    ]
    against = sum(int(p["topic"] in reviews[i]) != p["given"] for i, p in pairs)
    return {
        "controls": len(controls),
        "controls_exact_match": round(exact / len(controls), 4) if controls else None,
        "flagged_pairs_reviewed": len(pairs),
        "flagged_pairs_reviewer_against_given": against,
    }


def find(args: argparse.Namespace) -> int:
    from models.heads.encoder_heads import topic_indicator
    from models.registry import Registry
    from training.config import TopicsConfig
    from training.fit import (
        EmbeddingCache,
        load_topic_negatives,
        load_topics_data,
        negative_rows,
        served_recipe_oof_scores,
    )

    meta = Registry().load_meta("topics")
    trained_with = dict(meta.extra["training_config"])
    trained_with.pop("task", None)
    config = TopicsConfig(**trained_with)
    cache = EmbeddingCache(variant=config.encoder_variant, adapter=config.encoder_adapter)
    negatives = load_topic_negatives(config, args.data_dir)
    data = load_topics_data(config, cache, negatives=negatives)
    scores = served_recipe_oof_scores(config, data, meta.extra["selection"])
    complaints = ~negative_rows(data.train.frame)
    frame = data.train.frame[complaints].reset_index(drop=True)
    y = topic_indicator(frame["topics"].tolist(), data.labels)
    suspects = suspects_frame(frame, y, scores[complaints], data.labels, args.margin)
    suspect_lines = suspects.to_dict(orient="records")
    out: Path = args.out
    write_jsonl(out / SUSPECTS_FILE, suspect_lines)
    for language, sheet in review_sheets(frame, suspects, args.controls).items():
        write_jsonl(out / SHEETS_DIR / f"{language}.jsonl", sheet)
    directions = Counter(
        (line["language"], "missing" if pair["given"] == 0 else "doubtful")
        for line in suspect_lines
        for pair in line["suspects"]
    )
    print(
        json.dumps(
            {
                "version": meta.version,
                "train_lines": len(frame),
                "suspect_lines": len(suspects),
                "suspect_pairs": {
                    f"{lang} {kind}": n for (lang, kind), n in sorted(directions.items())
                },
                "sheets": str(out / SHEETS_DIR),
            },
            indent=2,
        )
    )
    return 0


def apply(args: argparse.Namespace) -> int:
    from training.baseline import TAXONOMY

    out: Path = args.out
    suspects = read_jsonl(out / SUSPECTS_FILE)
    reviews = read_reviews(out / REVIEWS_DIR)
    summary = control_agreement(suspects, reviews, args.seed_dir)
    changes = decide(suspects, reviews)
    summary["changed"] = 0 if args.dry_run else apply_changes(changes, TAXONOMY, args.seed_dir)
    summary["changes"] = dict(Counter(f"{c['action']} {c['topic']}" for c in changes))
    write_jsonl(out / CHANGES_FILE, changes)
    print(json.dumps(summary, indent=2))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    find_parser = commands.add_parser("find", help="flag suspect labels, write review sheets")
    find_parser.add_argument("--out", type=Path, required=True, help="review directory")
    find_parser.add_argument("--margin", type=float, default=0.1)
    find_parser.add_argument("--controls", type=int, default=20, help="unflagged lines a sheet")
    find_parser.add_argument("--data-dir", type=Path, default=None, help="corpora (negatives)")
    find_parser.set_defaults(run=find)
    apply_parser = commands.add_parser("apply", help="apply the reviewers' verdicts")
    apply_parser.add_argument("--out", type=Path, required=True, help="review directory")
    apply_parser.add_argument("--dry-run", action="store_true", help="report, change nothing")
    apply_parser.add_argument("--seed-dir", type=Path, default=SEED_TOPICS_DIR, help="seed files")
    apply_parser.set_defaults(run=apply)
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
