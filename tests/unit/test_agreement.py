"""Annotator agreement on the seed test split: the loader checks files, the scores are F1."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from training.agreement import ANNOTATIONS_DIR, load_annotations, main, pairwise_agreement
from training.corpora import load_seed_topics


def write_annotations(directory: Path, name: str, rows: list[dict[str, object]]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    (directory / f"{name}.jsonl").write_text(text, encoding="utf-8")


def labeling(topics: dict[str, list[str]]) -> pd.Series:
    return pd.Series(topics)


LANGUAGES = pd.Series({"a": "fr", "b": "fr", "c": "en", "d": "en"})


def test_identical_labelings_agree_fully() -> None:
    same = labeling({"a": ["delays"], "b": ["fees"], "c": ["delays", "fees"], "d": ["fees"]})

    [pair] = pairwise_agreement({"x": same, "y": same.copy()}, LANGUAGES)

    assert pair["macro_f1"] == 1.0
    assert pair["exact_match"] == 1.0
    assert pair["by_language"] == {"en": 1.0, "fr": 1.0}


def test_agreement_is_f1_and_does_not_depend_on_which_side_is_truth() -> None:
    first = labeling({"a": ["delays"], "b": ["fees"], "c": ["delays"], "d": ["fees"]})
    second = labeling({"a": ["delays"], "b": ["delays"], "c": ["delays"], "d": ["fees"]})

    [forward] = pairwise_agreement({"x": first, "y": second}, LANGUAGES)
    [backward] = pairwise_agreement({"y": second, "x": first}, LANGUAGES)

    # delays: 2 shared, 1 extra -> F1 0.8; fees: 1 shared, 1 missing -> F1 2/3
    assert forward["by_topic"]["delays"] == pytest.approx(0.8)
    assert forward["by_topic"]["fees"] == pytest.approx(2 / 3, abs=1e-4)
    assert forward["macro_f1"] == backward["macro_f1"]
    assert forward["exact_match"] == 0.75


def test_only_shared_ids_are_compared() -> None:
    full = labeling({"a": ["delays"], "b": ["fees"], "c": ["delays"], "d": ["fees"]})
    partial = labeling({"a": ["delays"], "b": ["fees"]})

    [pair] = pairwise_agreement({"x": full, "y": partial}, LANGUAGES)

    assert pair["n"] == 2
    assert pair["by_language"] == {"fr": 1.0}


def test_a_bad_line_is_named_by_file_and_number(tmp_path: Path) -> None:
    write_annotations(
        tmp_path,
        "annotator-x",
        [{"id": "en-0001", "topics": ["delays"]}, {"id": "en-0002", "topics": ["weather"]}],
    )

    with pytest.raises(ValueError, match=r"annotator-x\.jsonl:2: .*'weather'"):
        load_annotations(tmp_path)


def test_shipped_annotations_cover_exactly_the_test_split() -> None:
    annotations = load_annotations()
    if not annotations:
        pytest.skip(f"no annotations under {ANNOTATIONS_DIR}")
    seed = load_seed_topics()
    test_ids = set(seed.loc[seed["split"] == "test", "id"])

    for name, topics in annotations.items():
        assert set(topics.index) == test_ids, name


def test_cli_prints_one_row_per_pair(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    if not load_annotations():
        pytest.skip(f"no annotations under {ANNOTATIONS_DIR}")
    out = tmp_path / "agreement.json"

    assert main(["--json", str(out)]) == 0

    pairs = json.loads(out.read_text(encoding="utf-8"))
    n = len(load_annotations()) + 1
    assert len(pairs) == n * (n - 1) // 2
    assert all(0.0 <= pair["macro_f1"] <= 1.0 for pair in pairs)
    assert capsys.readouterr().out.count(" vs ") == len(pairs)
