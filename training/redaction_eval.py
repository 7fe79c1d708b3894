"""Redaction evaluation on the project-authored planted set (``datasets/redaction/planted.jsonl``).

A planted value counts as caught when it no longer appears anywhere in the redacted text *and*
a redaction of the right kind overlaps it: removing a phone number as ``[CARD]`` still leaks
what kind of data it was and would skew the PII counts we report. A redaction that overlaps no
planted value is a false positive (it destroyed text the analysis needed).

Run ``python -m training.redaction_eval [path]`` for the table.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from models.text.redact import KINDS, redact

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PATH = REPO_ROOT / "datasets" / "redaction" / "planted.jsonl"


def _occurrences(text: str, value: str) -> list[tuple[int, int]]:
    spans = []
    start = text.find(value)
    while start != -1:
        spans.append((start, start + len(value)))
        start = text.find(value, start + 1)
    return spans


def _overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def _ratio(numerator: int, denominator: int) -> float:
    """Share, with 1.0 for an empty denominator (nothing to miss / nothing wrongly redacted)."""
    return numerator / denominator if denominator else 1.0


def evaluate_redaction(path: str | Path = DEFAULT_PATH) -> dict[str, Any]:
    """Recall per kind and per language, precision per reported kind and per language."""
    rows = [
        json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line
    ]
    planted_n: dict[str, int] = defaultdict(int)
    caught_n: dict[str, int] = defaultdict(int)
    reported_n: dict[str, int] = defaultdict(int)
    false_pos_n: dict[str, int] = defaultdict(int)
    lang: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    misses: list[dict[str, str]] = []
    false_positives: list[dict[str, str]] = []

    for row in rows:
        text, language = row["text"], row["language"]
        result = redact(text)
        planted_spans: list[tuple[int, int]] = []
        for item in row["planted"]:
            kind, value = item["kind"], item["value"]
            spans = _occurrences(text, value)
            if not spans:
                raise ValueError(f"{row['id']}: planted value {value!r} is not in the text")
            planted_spans.extend(spans)
            right_kind = any(
                r.kind == kind and _overlaps((r.start, r.end), span)
                for r in result.redactions
                for span in spans
            )
            gone = value not in result.text
            planted_n[kind] += 1
            lang[language]["planted"] += 1
            if gone and right_kind:
                caught_n[kind] += 1
                lang[language]["caught"] += 1
            else:
                reason = "left in text" if not gone else "wrong kind"
                misses.append({"id": row["id"], "kind": kind, "value": value, "reason": reason})
        for r in result.redactions:
            reported_n[r.kind] += 1
            lang[language]["redactions"] += 1
            if not any(_overlaps((r.start, r.end), span) for span in planted_spans):
                false_pos_n[r.kind] += 1
                lang[language]["false_positives"] += 1
                false_positives.append(
                    {"id": row["id"], "kind": r.kind, "text": text[r.start : r.end]}
                )

    per_kind = {
        kind: {
            "planted": planted_n[kind],
            "caught": caught_n[kind],
            "recall": _ratio(caught_n[kind], planted_n[kind]),
            "redactions": reported_n[kind],
            "false_positives": false_pos_n[kind],
            "precision": _ratio(reported_n[kind] - false_pos_n[kind], reported_n[kind]),
        }
        for kind in KINDS
    }
    per_language = {
        name: {
            "planted": counts["planted"],
            "caught": counts["caught"],
            "recall": _ratio(counts["caught"], counts["planted"]),
            "redactions": counts["redactions"],
            "false_positives": counts["false_positives"],
            "precision": _ratio(
                counts["redactions"] - counts["false_positives"], counts["redactions"]
            ),
        }
        for name, counts in sorted(lang.items())
    }
    total_planted, total_caught = sum(planted_n.values()), sum(caught_n.values())
    total_reported, total_fp = sum(reported_n.values()), sum(false_pos_n.values())
    return {
        "path": str(path),
        "texts": len(rows),
        "texts_without_pii": sum(1 for row in rows if not row["planted"]),
        "per_kind": per_kind,
        "per_language": per_language,
        "overall": {
            "planted": total_planted,
            "caught": total_caught,
            "recall": _ratio(total_caught, total_planted),
            "redactions": total_reported,
            "false_positives": total_fp,
            "precision": _ratio(total_reported - total_fp, total_reported),
        },
        "misses": misses,
        "false_positives": false_positives,
    }


def format_report(report: dict[str, Any]) -> str:
    """Plain-text table (no colour codes, so it can be pasted into notes and issues)."""
    columns = ("planted", 8), ("caught", 8), ("recall", 8), ("redacted", 10), ("FP", 5)
    header = (
        f"{'':<10}" + "".join(f"{name:>{width}}" for name, width in columns) + f"{'precision':>11}"
    )
    lines = [
        f"redaction eval: {report['texts']} texts ({report['texts_without_pii']} without PII)"
        f" from {report['path']}",
        header,
    ]

    def line(name: str, m: dict[str, Any]) -> str:
        return (
            f"{name:<10}{m['planted']:>8}{m['caught']:>8}{m['recall']:>8.3f}"
            f"{m['redactions']:>10}{m['false_positives']:>5}{m['precision']:>11.3f}"
        )

    lines += [line(kind, m) for kind, m in report["per_kind"].items()]
    lines.append("-" * len(header))
    lines += [line(name, m) for name, m in report["per_language"].items()]
    lines.append("-" * len(header))
    lines.append(line("all", report["overall"]))
    for miss in report["misses"]:
        lines.append(f"MISS {miss['id']} {miss['kind']} {miss['value']!r} ({miss['reason']})")
    for fp in report["false_positives"]:
        lines.append(f"FALSE POSITIVE {fp['id']} {fp['kind']} {fp['text']!r}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    report = evaluate_redaction(args[0] if args else DEFAULT_PATH)
    print(format_report(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
