"""Redaction quality on the planted set, and the metric itself."""

from __future__ import annotations

import importlib.util
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from models.text.redact import KINDS
from training.redaction_eval import DEFAULT_PATH, evaluate_redaction, format_report

LANGUAGES = ("ar", "ary", "ary-Latn", "fr", "en")


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    return evaluate_redaction(DEFAULT_PATH)


@pytest.fixture(scope="module")
def rows() -> list[dict[str, Any]]:
    return [json.loads(line) for line in DEFAULT_PATH.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("kind", KINDS)
def test_recall_per_kind(report: dict[str, Any], kind: str) -> None:
    metrics = report["per_kind"][kind]
    assert metrics["planted"] >= 40
    assert metrics["recall"] >= 0.99, format_report(report)


@pytest.mark.parametrize("language", LANGUAGES)
def test_recall_per_language(report: dict[str, Any], language: str) -> None:
    assert report["per_language"][language]["recall"] >= 0.98, format_report(report)


def test_precision_is_reported(report: dict[str, Any], record_property: Any) -> None:
    print("\n" + format_report(report))
    record_property("redaction_precision", report["overall"]["precision"])
    for kind in KINDS:
        record_property(f"redaction_precision_{kind}", report["per_kind"][kind]["precision"])
    # Look-alikes (dates, amounts, case numbers, Arabizi) must mostly survive.
    assert report["overall"]["precision"] >= 0.95, format_report(report)


def test_dataset_shape(rows: list[dict[str, Any]]) -> None:
    assert len(rows) >= 300
    assert len({row["id"] for row in rows}) == len(rows)
    negatives = [row for row in rows if not row["planted"]]
    assert len(negatives) >= 80
    languages = Counter(row["language"] for row in rows)
    assert set(languages) == set(LANGUAGES)
    for language in LANGUAGES:
        assert sum(1 for row in negatives if row["language"] == language) >= 15
    kinds = Counter(item["kind"] for row in rows for item in row["planted"])
    assert set(kinds) == set(KINDS)
    for row in rows:
        for item in row["planted"]:
            assert item["value"] in row["text"], row["id"]


def test_committed_file_matches_its_generator(rows: list[dict[str, Any]]) -> None:
    script = DEFAULT_PATH.with_name("generate.py")
    spec = importlib.util.spec_from_file_location("redaction_generate", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.generate() == rows


def _write(tmp_path: Path, rows: list[dict[str, Any]]) -> Path:
    path = tmp_path / "planted.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    return path


def test_metric_counts_misses_wrong_kinds_and_false_positives(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        [
            {"id": "1", "language": "fr", "text": "tel 0612345678",
             "planted": [{"kind": "phone", "value": "0612345678"}]},
            {"id": "2", "language": "fr", "text": "mail ahmed at gmail dot com",
             "planted": [{"kind": "email", "value": "ahmed at gmail dot com"}]},
            {"id": "3", "language": "en", "text": "ref 0612345678",
             "planted": [{"kind": "cin", "value": "0612345678"}]},
            {"id": "4", "language": "en", "text": "my CIN AB123456 and 1500 DH", "planted": []},
        ],
    )  # fmt: skip
    report = evaluate_redaction(path)
    assert report["per_kind"]["phone"]["recall"] == 1.0
    assert report["per_kind"]["email"]["recall"] == 0.0
    assert report["per_kind"]["cin"]["recall"] == 0.0  # removed, but reported as a phone
    reasons = {m["id"]: m["reason"] for m in report["misses"]}
    assert reasons == {"2": "left in text", "3": "wrong kind"}
    assert report["per_kind"]["cin"]["false_positives"] == 1
    assert report["per_kind"]["cin"]["precision"] == 0.0
    assert report["overall"]["precision"] == pytest.approx(2 / 3)
    assert report["per_language"]["fr"]["recall"] == 0.5
    assert report["per_language"]["en"]["false_positives"] == 1


def test_planted_value_missing_from_text_is_an_error(tmp_path: Path) -> None:
    planted = [{"kind": "email", "value": "a@b.co"}]
    path = _write(tmp_path, [{"id": "x", "language": "fr", "text": "rien", "planted": planted}])
    with pytest.raises(ValueError, match="not in the text"):
        evaluate_redaction(path)
