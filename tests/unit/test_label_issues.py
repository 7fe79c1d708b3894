"""Label review: confident learning flags pairs, sheets stay blind, only reviewed flags change."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from training.label_issues import (
    REVIEWS_DIR,
    SHEETS_DIR,
    SUSPECTS_FILE,
    main,
    review_sheets,
    suspect_pairs,
    write_jsonl,
)


def seed_line(line_id: str, topics: list[str], split: str = "train") -> dict[str, object]:
    return {
        "id": line_id,
        "text": f"text of {line_id}",
        "language": "fr",
        "topics": topics,
        "sentiment": "negative",
        "service": "health",
        "region": "Casablanca-Settat",
        "split": split,
    }


def test_a_confidently_contradicted_label_is_flagged_and_an_ambiguous_one_is_not() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random((400, 2)) < 0.3).astype(np.int8)
    scores = np.where(y == 1, 0.85, 0.1) + rng.normal(0, 0.03, y.shape)
    scores[0, 0], y[0, 0] = 0.97, 0  # a topic the line clearly has, not given
    scores[1, 1], y[1, 1] = 0.02, 1  # a topic given that the line clearly lacks
    scores[2, 0], y[2, 0] = 0.55, 0  # uncertain: not for review

    flagged = suspect_pairs(y, np.clip(scores, 0, 1), margin=0.1)

    assert flagged[0, 0] and flagged[1, 1]
    assert not flagged[2, 0]
    assert flagged.sum() <= 4


def test_shapes_must_agree() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        suspect_pairs(np.zeros((3, 2), np.int8), np.zeros((3, 3)))


def test_sheets_hold_texts_only_with_suspects_hidden_among_controls() -> None:
    train = pd.DataFrame(
        {
            "id": [f"fr-{i:04d}" for i in range(30)],
            "text": [f"t{i}" for i in range(30)],
            "language": "fr",
            "topics": [["delays"]] * 30,
        }
    )
    suspects = pd.DataFrame({"id": ["fr-0003", "fr-0017"]})

    sheets = review_sheets(train, suspects, controls=5)

    assert set(sheets) == {"fr"}
    assert len(sheets["fr"]) == 7
    assert {"fr-0003", "fr-0017"} <= {row["id"] for row in sheets["fr"]}
    assert all(set(row) == {"id", "text"} for row in sheets["fr"])


def write_review(out: Path, seed_dir: Path, reviews: list[dict[str, object]]) -> None:
    write_jsonl(
        seed_dir / "fr.jsonl",
        [
            seed_line("fr-0001", ["delays"]),
            seed_line("fr-0002", ["delays", "information"]),
            seed_line("fr-0003", ["fees"]),
            seed_line("fr-0004", ["fees"], split="test"),
        ],
    )
    write_jsonl(
        out / SUSPECTS_FILE,
        [
            {"id": "fr-0001", "suspects": [{"topic": "access", "given": 0, "score": 0.95}]},
            {"id": "fr-0002", "suspects": [{"topic": "information", "given": 1, "score": 0.03}]},
            {"id": "fr-0003", "suspects": [{"topic": "corruption", "given": 0, "score": 0.92}]},
        ],
    )
    write_jsonl(
        out / SHEETS_DIR / "fr.jsonl",
        [{"id": i, "text": "…"} for i in ("fr-0002", "fr-0001", "fr-0003")],
    )
    write_jsonl(out / REVIEWS_DIR / "fr.jsonl", reviews)


def read_topics(seed_dir: Path) -> dict[str, list[str]]:
    lines = (seed_dir / "fr.jsonl").read_text(encoding="utf-8").splitlines()
    return {row["id"]: row["topics"] for row in map(json.loads, lines)}


def test_apply_changes_only_flagged_pairs_the_blind_reviewer_sided_against(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, seed_dir = tmp_path / "review", tmp_path / "seed"
    write_review(
        out,
        seed_dir,
        [
            # agrees with the flag on access, and differs on an unflagged topic: only access moves
            {"id": "fr-0002", "topics": ["delays"]},
            {"id": "fr-0001", "topics": ["access", "delays", "staff_conduct"]},
            # confirms the given label: the flag is overruled
            {"id": "fr-0003", "topics": ["fees"]},
        ],
    )

    assert main(["apply", "--out", str(out), "--seed-dir", str(seed_dir)]) == 0

    summary = json.loads(capsys.readouterr().out)
    assert summary["changed"] == 2
    assert summary["flagged_pairs_reviewer_against_given"] == 2
    assert read_topics(seed_dir) == {
        "fr-0001": ["delays", "access"],  # taxonomy order
        "fr-0002": ["delays"],
        "fr-0003": ["fees"],
        "fr-0004": ["fees"],
    }


def test_dry_run_changes_nothing(tmp_path: Path) -> None:
    out, seed_dir = tmp_path / "review", tmp_path / "seed"
    write_review(out, seed_dir, [{"id": "fr-0001", "topics": ["access"]}])
    before = (seed_dir / "fr.jsonl").read_bytes()

    assert main(["apply", "--out", str(out), "--seed-dir", str(seed_dir), "--dry-run"]) == 0

    assert (seed_dir / "fr.jsonl").read_bytes() == before


def test_a_review_outside_the_taxonomy_names_file_and_line(tmp_path: Path) -> None:
    out, seed_dir = tmp_path / "review", tmp_path / "seed"
    write_review(
        out, seed_dir, [{"id": "fr-0001", "topics": ["delays"]}, {"id": "x", "topics": ["weather"]}]
    )

    with pytest.raises(ValueError, match=r"fr.jsonl:2: topics must be"):
        main(["apply", "--out", str(out), "--seed-dir", str(seed_dir)])


def test_a_test_line_is_never_relabelled(tmp_path: Path) -> None:
    out, seed_dir = tmp_path / "review", tmp_path / "seed"
    write_review(out, seed_dir, [{"id": "fr-0004", "topics": ["fees", "access"]}])
    write_jsonl(
        out / SUSPECTS_FILE,
        [{"id": "fr-0004", "suspects": [{"topic": "access", "given": 0, "score": 0.95}]}],
    )

    with pytest.raises(ValueError, match="test line may not be relabelled"):
        main(["apply", "--out", str(out), "--seed-dir", str(seed_dir)])
