"""Evaluation reports: ``evaluation.json``, ``evaluation.md``, confusion-matrix PNGs, card section.

Every report carries a side-by-side table against the previous version of the task and the
TF-IDF baseline, evaluated by the same code on the same held-out splits.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

EVALUATION_JSON = "evaluation.json"
EVALUATION_MD = "evaluation.md"
CARD_START = "<!-- evaluation:start -->"
CARD_END = "<!-- evaluation:end -->"


def table(rows: list[list[str]], header: list[str]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join([*lines, *("| " + " | ".join(row) + " |" for row in rows)])


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "—" if value is None else str(value)
    if isinstance(value, float | int):
        return f"{value:.3f}" if isinstance(value, float) else str(value)
    return str(value)


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.write_text(
        json.dumps(payload, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8"
    )


def confusion_pngs(evaluation: dict[str, Any], directory: Path) -> list[Path]:
    """One PNG per confusion matrix (rows: gold, columns: predicted), counts and row shares."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    confusion = evaluation.get("confusion_matrices", {})
    labels = confusion.get("labels", [])
    written = []
    for group, matrix in confusion.get("matrices", {}).items():
        counts = np.asarray(matrix, dtype=float)
        shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
        fig, ax = plt.subplots(figsize=(4.2, 3.8), dpi=90)
        ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
        for i in range(counts.shape[0]):
            for j in range(counts.shape[1]):
                ax.text(
                    j,
                    i,
                    f"{int(counts[i, j])}\n{shares[i, j]:.0%}",
                    ha="center",
                    va="center",
                    color="white" if shares[i, j] > 0.6 else "black",
                    fontsize=8,
                )
        ax.set_xticks(range(len(labels)), labels, fontsize=8)
        ax.set_yticks(range(len(labels)), labels, fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("gold")
        ax.set_title(group, fontsize=9)
        fig.tight_layout()
        path = directory / f"confusion-{slug(group)}.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written


def _sentiment_rows(evaluation: dict[str, Any]) -> list[list[str]]:
    rows = []
    for group, scores in evaluation["test"].items():
        if "macro_f1" not in scores:
            continue
        rows.append(
            [
                group,
                str(scores["n"]),
                _fmt(scores["macro_f1"]),
                _fmt(scores["weighted_f1"]),
                _fmt(scores.get("ece")),
                "train+test" if scores.get("trainable") else "evaluation only",
            ]
        )
    return rows


def _targets(evaluation: dict[str, Any]) -> str:
    rows = [
        [
            t["group"],
            t["metric"],
            f"{t['target']:.2f}",
            _fmt(t["value"]),
            "met" if t["met"] else "NOT met",
        ]
        for t in evaluation.get("targets", [])
    ]
    return table(rows, ["group", "metric", "target", "value", ""])


def side_by_side(
    task: str, evaluation: dict[str, Any], others: dict[str, dict[str, Any] | None]
) -> str:
    """This version next to each named other (previous version, baseline) per test group."""
    present = {name: other for name, other in others.items() if other is not None}
    names = list(present)
    header = ["test set", "metric", "this", *names]
    rows: list[list[str]] = []
    if task == "sentiment":
        primary = "macro_f1_mean"
        rows.append(
            [
                "primary",
                primary,
                _fmt(evaluation[primary]),
                *(_fmt(present[n].get(primary)) for n in names),
            ]
        )
        for group, scores in evaluation["test"].items():
            for metric in ("macro_f1", "weighted_f1"):
                if metric in scores:
                    values = [_fmt(present[n]["test"].get(group, {}).get(metric)) for n in names]
                    rows.append([group, metric, _fmt(scores[metric]), *values])
        rows.append(
            [
                "pooled trainable tests",
                "ECE",
                _fmt(evaluation["calibration"]["ece"]),
                *(_fmt(present[n].get("calibration", {}).get("ece")) for n in names),
            ]
        )
    else:

        def pick(ev: dict[str, Any], part: str, metric: str) -> Any:
            node = (
                ev["test"]["overall"]
                if part == "overall"
                else ev["test"]["per_language"].get(part, {})
            )
            return node.get(metric)

        parts = ["overall", *evaluation["test"]["per_language"]]
        for part in parts:
            for metric in ("macro_f1", "micro_f1"):
                rows.append(
                    [
                        part,
                        metric,
                        _fmt(pick(evaluation, part, metric)),
                        *(_fmt(pick(present[n], part, metric)) for n in names),
                    ]
                )
        for topic, scores in evaluation["test"]["overall"]["per_topic"].items():
            values = [
                _fmt(present[n]["test"]["overall"]["per_topic"].get(topic, {}).get("f1"))
                for n in names
            ]
            rows.append([f"topic {topic}", "f1", _fmt(scores["f1"]), *values])
        rows.append(
            [
                "off-domain tweets",
                "share tagged (lower is better)",
                _fmt(evaluation.get("off_domain", {}).get("tagged")),
                *(_fmt(present[n].get("off_domain", {}).get("tagged")) for n in names),
            ]
        )
    return table(rows, header)


def _interval(scores: dict[str, Any]) -> str:
    interval = scores.get("macro_f1_ci95")
    return f"{interval[0]:.3f}–{interval[1]:.3f}" if interval else "—"


def _off_domain(off_domain: dict[str, Any] | None) -> str:
    if not off_domain or not off_domain.get("available"):
        reason = (off_domain or {}).get("reason", "not measured")
        return f"Off-domain tagging: not measured ({reason})."
    rows = [[group, str(v["n"]), f"{v['tagged']:.1%}"] for group, v in off_domain["groups"].items()]
    return "\n".join(
        [
            f"Off-domain tagging: {off_domain['tagged']:.1%} of {off_domain['n']} general tweets "
            "(test splits, not complaints) get at least one topic; lower is better.",
            "",
            table(rows, ["tweets", "n", "tagged"]),
        ]
    )


def evaluation_markdown(
    task: str,
    version: str,
    evaluation: dict[str, Any],
    others: dict[str, dict[str, Any] | None],
    others_versions: dict[str, str | None],
    pngs: list[Path],
) -> str:
    lines = [f"## Evaluation of {task} `{version}` (held-out test splits)", ""]
    if task == "sentiment":
        lines += [
            f"Primary metric `macro_f1_mean` (mean test macro-F1 over the four training corpora): "
            f"**{evaluation['macro_f1_mean']:.3f}**. Pooled calibration on those test splits: "
            f"ECE {evaluation['calibration']['ece']:.3f}, log-loss "
            f"{evaluation['calibration']['log_loss']:.3f} (n = {evaluation['calibration']['n']}).",
            "",
            table(
                _sentiment_rows(evaluation),
                ["test set", "n", "macro-F1", "weighted-F1", "ECE", "use"],
            ),
        ]
        proxy = evaluation["test"].get("complaints_social_media (proxy)")
        if proxy:
            lines += [
                "",
                "complaints_social_media (complaint labels, not sentiment): `negative` predicted "
                f"on {proxy['negative_rate_complaints']:.1%} of complaints vs "
                f"{proxy['negative_rate_non_complaints']:.1%} of non-complaints (as a complaint "
                f"detector F1 {proxy['negative_as_complaint_f1']:.3f}).",
            ]
    else:
        overall = evaluation["test"]["overall"]
        per_topic = [
            [t, _fmt(v["precision"]), _fmt(v["recall"]), _fmt(v["f1"]), str(v["support"])]
            for t, v in overall["per_topic"].items()
        ]
        per_language = [
            [
                lang,
                str(v["n"]),
                _fmt(v["macro_f1"]),
                _interval(v),
                _fmt(v["micro_f1"]),
                _fmt(v["exact_match"]),
            ]
            for lang, v in evaluation["test"]["per_language"].items()
        ]
        lines += [
            f"Seed set `test` split ({overall['n']} texts): "
            f"macro-F1 **{overall['macro_f1']:.3f}** "
            f"(95% bootstrap interval {_interval(overall)}), "
            f"micro-F1 {overall['micro_f1']:.3f}, exact match {overall['exact_match']:.3f}.",
            "",
            table(per_topic, ["topic", "precision", "recall", "F1", "support"]),
            "",
            table(
                per_language,
                ["variety", "n", "macro-F1", "95% interval", "micro-F1", "exact match"],
            ),
            "",
            _off_domain(evaluation.get("off_domain")),
        ]
    lines += ["", "### Targets", "", _targets(evaluation), ""]
    compared = ", ".join(
        f"{name} = `{others_versions[name]}`" for name in others if others[name] is not None
    )
    lines += [
        "### Side by side",
        "",
        f"Compared with: {compared or 'nothing (first version)'}; same code, same splits.",
        "",
        side_by_side(task, evaluation, others),
        "",
    ]
    if pngs:
        lines += ["Confusion matrices: " + ", ".join(f"[{p.name}]({p.name})" for p in pngs), ""]
    return "\n".join(lines)


def write_reports(
    directory: Path,
    task: str,
    version: str,
    evaluation: dict[str, Any],
    others: dict[str, dict[str, Any] | None],
    others_versions: dict[str, str | None],
) -> str:
    """Write JSON, Markdown and PNGs into `directory`; return the Markdown."""
    directory.mkdir(parents=True, exist_ok=True)
    pngs = confusion_pngs(evaluation, directory) if task == "sentiment" else []
    markdown = evaluation_markdown(task, version, evaluation, others, others_versions, pngs)
    payload = {
        **evaluation,
        "version": version,
        "compared_with": {
            name: {"version": others_versions[name], "evaluation": other}
            for name, other in others.items()
            if other is not None
        },
    }
    write_json(directory / EVALUATION_JSON, payload)
    (directory / EVALUATION_MD).write_text(markdown, encoding="utf-8")
    return markdown


def with_evaluation_section(card: str, markdown: str) -> str:
    """`card` with its evaluation section replaced (or appended) between fixed markers."""
    block = f"{CARD_START}\n{markdown.rstrip()}\n{CARD_END}"
    if CARD_START in card and CARD_END in card:
        head, rest = card.split(CARD_START, 1)
        _, tail = rest.split(CARD_END, 1)
        return f"{head}{block}{tail}"
    return f"{card.rstrip()}\n\n{block}\n"
