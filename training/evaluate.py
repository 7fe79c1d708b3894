"""Held-out evaluation of any sentiment or topic head, exactly as the pipeline would feed it.

Texts are prepared as in serving (``training.fit.prepare_text``), embedded once by the served
encoder (cached), and passed to each head according to its ``input_kind``, as the pipeline
does (``models.pipeline.head_inputs``). Group names, the F1 definitions and the primary metric
are those of ``training.baseline``, so numbers line up with the TF-IDF baseline's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix, log_loss, precision_recall_fscore_support

from models.pipeline import arabizi_view, head_inputs, input_kind, reads_arabizi, reads_layers
from training.baseline import (
    TAXONOMY,
    expected_calibration_error,
    f1_scores,
    indicator,
    sentiment_frames,
    sentiment_groups,
    topic_scores,
)
from training.corpora import (
    CORPORA,
    SENTIMENT_LABELS,
    CorpusError,
    load_corpus,
    load_seed_topics,
)
from training.fit import EmbeddingCache, prepare_texts

# bump a task's number when what is measured changes, so its stored evaluations are recomputed
# (topics 2: off-domain tagging added)
EVALUATION_VERSIONS = {"sentiment": 1, "topics": 2}
SENTIMENT_PRIMARY = "macro_f1_mean"
TOPICS_PRIMARY = "macro_f1"
TRAINABLE_SENTIMENT = ("afrisenti_ary", "arsarcasm_v2", "umsab_xlm_t", "mac")
# (metric group, metric, target) from the issue; every number is reported, met or not
SENTIMENT_TARGETS: tuple[tuple[str, str, float], ...] = (
    ("afrisenti_ary", "weighted_f1", 0.66),
    ("afrisenti_ary/Latn (ary-Latn)", "weighted_f1", 0.60),
    ("umsab_xlm_t/ar", "macro_f1", 0.69),
    ("umsab_xlm_t/fr", "macro_f1", 0.73),
    ("umsab_xlm_t/en", "macro_f1", 0.70),
)
TOPIC_TARGETS: tuple[tuple[str, str, float], ...] = (
    ("overall", "macro_f1", 0.80),
    *((f"per_language/{lang}", "macro_f1", 0.70) for lang in ("ar", "ary", "ary-Latn", "fr", "en")),
)
# general tweets (not complaints): what share of them gets a topic
OFF_DOMAIN_CORPORA = ("afrisenti_ary", "mac")
OFF_DOMAIN_SAMPLE = 1000
CONFUSION_GROUPS = (
    "afrisenti_ary",
    "afrisenti_ary/Arab (ary)",
    "afrisenti_ary/Latn (ary-Latn)",
    "arsarcasm_v2",
    "umsab_xlm_t/ar",
    "umsab_xlm_t/fr",
    "umsab_xlm_t/en",
    "mac",
)


@dataclass
class EvaluationData:
    """Test data and a cache of its embeddings, loaded once and shared by several models."""

    cache: EmbeddingCache
    data_dir: Path | None = None
    _frames: dict[str, pd.DataFrame] | None = field(default=None, repr=False)
    _seed: pd.DataFrame | None = field(default=None, repr=False)
    _off_domain: dict[str, pd.DataFrame] | None = field(default=None, repr=False)

    @property
    def frames(self) -> dict[str, pd.DataFrame]:
        if self._frames is None:
            self._frames = sentiment_frames(self.data_dir)
            self._frames["complaints_social_media"] = load_corpus(
                "complaints_social_media", self.data_dir
            )
        return self._frames

    @property
    def seed(self) -> pd.DataFrame:
        if self._seed is None:
            self._seed = load_seed_topics()
        return self._seed

    @property
    def off_domain(self) -> dict[str, pd.DataFrame]:
        """The seeded sample of each ``OFF_DOMAIN_CORPORA`` test split (raises CorpusError)."""
        if self._off_domain is None:
            samples = {}
            for name in OFF_DOMAIN_CORPORA:
                frame = load_corpus(name, self.data_dir)
                test = frame[frame["split"] == "test"]
                samples[name] = test.sample(n=min(OFF_DOMAIN_SAMPLE, len(test)), random_state=0)
            self._off_domain = samples
        return self._off_domain

    def proba(self, model: Any, name: str, texts: Sequence[str]) -> np.ndarray:
        """`model`'s scores for `texts` (a named split, whose embeddings are cached)."""
        prepared = prepare_texts(texts)
        embeddings = layers = None
        if reads_layers(model):
            layers = self.cache.get_layers(name, prepared)
        elif input_kind(model) != "text":
            embeddings = self.cache.get(name, prepared)
        arabizi = None
        if reads_arabizi(model):
            # the same second view as serving, its rows' spellings cached beside the split
            last = embeddings if embeddings is not None else np.asarray(layers)[:, -1]
            view_name = f"{name}-arabizi"
            arabizi = arabizi_view(
                model, prepared, last.shape[1], lambda batch: self.cache.get(view_name, batch)
            )
        inputs = head_inputs(model, prepared, embeddings, layers, arabizi)
        return np.asarray(model.predict_proba(inputs))


def _labels_of(proba: np.ndarray, labels: list[str]) -> np.ndarray:
    return np.asarray(labels, dtype=object)[proba.argmax(axis=1)]


def _round(value: float) -> float:
    return round(float(value), 4)


def evaluate_sentiment(model: Any, data: EvaluationData) -> dict[str, Any]:
    """Per corpus / language / script F1, ECE, confusion matrices, targets, primary metric."""
    labels = list(model.labels_)
    if sorted(labels) != sorted(SENTIMENT_LABELS):
        raise ValueError(f"sentiment labels {labels} != {list(SENTIMENT_LABELS)}")
    frames = data.frames
    proba_by_corpus: dict[str, tuple[pd.DataFrame, np.ndarray]] = {}
    for name in (*TRAINABLE_SENTIMENT, "astd"):
        test = frames[name][frames[name]["split"] == "test"]
        proba_by_corpus[name] = (test, data.proba(model, f"{name}-test", test["text"].tolist()))
    results: dict[str, Any] = {}
    confusions: dict[str, list[list[int]]] = {}
    for group, frame in sentiment_groups(frames):
        corpus = group.split("/")[0]
        test, proba = proba_by_corpus[corpus]
        rows = test.index.get_indexer(frame.index)
        group_proba = proba[rows]
        predicted = _labels_of(group_proba, labels)
        truth = frame["label"].to_numpy()
        scores = f1_scores(truth, predicted)
        scores["trainable"] = CORPORA[corpus].trainable
        truth_index = np.asarray([labels.index(label) for label in truth])
        scores["ece"] = _round(expected_calibration_error(group_proba, truth_index))
        results[group] = scores
        if group in CONFUSION_GROUPS:
            confusions[group] = confusion_matrix(
                truth, predicted, labels=list(SENTIMENT_LABELS)
            ).tolist()
    # ASTD subjective tweets as a binary task (positive vs negative probability only).
    test, proba = proba_by_corpus["astd"]
    keep = test["label"].isin(["positive", "negative"]).to_numpy()
    pos, neg = labels.index("positive"), labels.index("negative")
    binary = np.where(proba[keep, pos] >= proba[keep, neg], "positive", "negative")
    results["astd/pos-neg only"] = f1_scores(test["label"].to_numpy()[keep], binary)
    results["astd/pos-neg only"]["trainable"] = False
    results["complaints_social_media (proxy)"] = _complaint_proxy(model, data)
    seed_test = data.seed[data.seed["split"] == "test"] if len(data.seed) else data.seed
    if len(seed_test):
        seed_all = data.proba(model, "seed_topics-all", data.seed["text"].tolist())
        seed_proba = seed_all[data.seed.index.get_indexer(seed_test.index)]
        predicted = _labels_of(seed_proba, labels)
        results["seed_topics"] = f1_scores(seed_test["sentiment"].to_numpy(), predicted)
        for language, group in seed_test.groupby("language"):
            rows = seed_test.index.get_indexer(group.index)
            results[f"seed_topics/{language}"] = f1_scores(
                group["sentiment"].to_numpy(), predicted[rows]
            )
    pooled_truth: list[int] = []
    pooled_proba: list[np.ndarray] = []
    for name in TRAINABLE_SENTIMENT:
        test, proba = proba_by_corpus[name]
        pooled_truth.extend(labels.index(label) for label in test["label"])
        pooled_proba.append(proba)
    truth_all = np.asarray(pooled_truth)
    proba_all = np.concatenate(pooled_proba)
    calibration = {
        "ece": _round(expected_calibration_error(proba_all, truth_all)),
        "log_loss": _round(log_loss(truth_all, proba_all, labels=list(range(len(labels))))),
        "n": len(truth_all),
    }
    primary = float(np.mean([results[name]["macro_f1"] for name in TRAINABLE_SENTIMENT]))
    return {
        "evaluation_version": EVALUATION_VERSIONS["sentiment"],
        SENTIMENT_PRIMARY: _round(primary),
        "test": results,
        "calibration": calibration,
        "confusion_matrices": {"labels": list(SENTIMENT_LABELS), "matrices": confusions},
        "targets": targets_report(results, SENTIMENT_TARGETS),
    }


def _complaint_proxy(model: Any, data: EvaluationData) -> dict[str, Any]:
    """Complaints are not sentiment labels: scores `negative` as a detector of `complaint`."""
    frame = data.frames["complaints_social_media"]
    proba = data.proba(model, "complaints_social_media-test", frame["text"].tolist())
    negative = _labels_of(proba, list(model.labels_)) == "negative"
    truth = frame["complaint"].to_numpy(dtype=bool)
    precision, recall, f1, _ = precision_recall_fscore_support(
        truth, negative, average="binary", zero_division=0.0
    )
    return {
        "n": len(frame),
        "negative_rate_complaints": _round(negative[truth].mean()),
        "negative_rate_non_complaints": _round(negative[~truth].mean()),
        "negative_as_complaint_precision": _round(precision),
        "negative_as_complaint_recall": _round(recall),
        "negative_as_complaint_f1": _round(f1),
        "trainable": False,
    }


def targets_report(
    results: dict[str, Any], targets: Sequence[tuple[str, str, float]]
) -> list[dict[str, Any]]:
    report = []
    for path, metric, target in targets:
        node: Any = results
        for part in path.split("/", 1) if path.startswith("per_language/") else [path]:
            node = node.get(part, {}) if isinstance(node, dict) else {}
        value = node.get(metric) if isinstance(node, dict) else None
        report.append(
            {
                "group": path,
                "metric": metric,
                "target": target,
                "value": value,
                "met": value is not None and value >= target,
            }
        )
    return report


def predict_seed_test_topics(
    model: Any, data: EvaluationData
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The seed set's test rows, the model's topic indicator for them (columns in
    ``model.labels_`` order) and the thresholds that made it."""
    seed = data.seed
    if not len(seed):
        raise ValueError("no datasets/seed_topics/*.jsonl: nothing to evaluate topics on")
    labels = list(model.labels_)
    test = seed[seed["split"] == "test"]
    scores_all = data.proba(model, "seed_topics-all", seed["text"].tolist())
    scores = scores_all[seed.index.get_indexer(test.index)]
    thresholds = np.asarray(getattr(model, "thresholds_", np.full(len(labels), 0.5)), dtype=float)
    return test, (scores >= thresholds).astype(np.int8), thresholds


def evaluate_topics(model: Any, data: EvaluationData) -> dict[str, Any]:
    """Seed-set test split: macro-F1 overall, per topic and per language variety."""
    labels = list(model.labels_)
    test, predicted, thresholds = predict_seed_test_topics(model, data)
    truth = indicator(test["topics"], labels)
    overall = topic_scores(truth, predicted, labels)
    per_language = {}
    for language, group in test.groupby("language"):
        rows = test.index.get_indexer(group.index)
        per_language[str(language)] = topic_scores(truth[rows], predicted[rows], labels)
    results = {"overall": overall, "per_language": per_language}
    return {
        "evaluation_version": EVALUATION_VERSIONS["topics"],
        TOPICS_PRIMARY: overall["macro_f1"],
        "test": results,
        "thresholds": {t: _round(v) for t, v in zip(labels, thresholds, strict=True)},
        "targets": targets_report(results, TOPIC_TARGETS),
        "taxonomy_matches": labels == list(TAXONOMY),
        "off_domain": off_domain_tagging(model, data, thresholds),
    }


# A target group's gold labels and a model's predictions, row by row (for paired tests).
GroupRows = dict[str, tuple[np.ndarray, np.ndarray]]


def target_group_rows(model: Any, task: str, data: EvaluationData) -> GroupRows:
    """Each target group's truth and `model`'s predictions, rows in a fixed order, so that two
    versions can be compared row by row (``paired_deltas``)."""
    labels = list(model.labels_)
    if task == "topics":
        test, predicted, _ = predict_seed_test_topics(model, data)
        truth = indicator(test["topics"], labels)
        rows: GroupRows = {"overall": (truth, predicted)}
        for language, group in test.groupby("language"):
            index = test.index.get_indexer(group.index)
            rows[f"per_language/{language}"] = (truth[index], predicted[index])
        return rows
    wanted = {group for group, _, _ in SENTIMENT_TARGETS}
    frames = data.frames
    proba_by_corpus: dict[str, tuple[pd.DataFrame, np.ndarray]] = {}
    rows = {}
    for group, frame in sentiment_groups(frames):
        if group not in wanted:
            continue
        corpus = group.split("/")[0]
        if corpus not in proba_by_corpus:
            test = frames[corpus][frames[corpus]["split"] == "test"]
            proba = data.proba(model, f"{corpus}-test", test["text"].tolist())
            proba_by_corpus[corpus] = (test, proba)
        test, proba = proba_by_corpus[corpus]
        index = test.index.get_indexer(frame.index)
        rows[group] = (frame["label"].to_numpy(), _labels_of(proba[index], labels))
    return rows


def _one_hot(truth: np.ndarray, predicted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indicator matrices over the gold label set (topic rows already are indicators)."""
    if truth.ndim == 2:
        return truth.astype(np.float64), predicted.astype(np.float64)
    classes = np.asarray(sorted(set(truth.tolist())), dtype=object)
    as_objects = (truth.astype(object), predicted.astype(object))
    gold, guess = (
        (values[:, None] == classes[None, :]).astype(np.float64) for values in as_objects
    )
    return gold, guess


def weighted_f1_scores(
    truth: np.ndarray, predicted: np.ndarray, row_weights: np.ndarray, average: str
) -> np.ndarray:
    """F1 (``macro`` or ``weighted`` over the gold labels, zero where undefined, as
    scikit-learn's ``zero_division=0``) for each row of `row_weights` (resamples x rows):
    one matrix product scores every bootstrap resample at once."""
    gold, guess = _one_hot(truth, predicted)
    true_positive = row_weights @ (gold * guess)
    false_positive = row_weights @ ((1.0 - gold) * guess)
    false_negative = row_weights @ (gold * (1.0 - guess))
    denominator = 2 * true_positive + false_positive + false_negative
    per_label = np.divide(
        2 * true_positive, denominator, out=np.zeros_like(denominator), where=denominator > 0
    )
    if average == "macro":
        return np.asarray(per_label.mean(axis=1))
    support = row_weights @ gold
    total = support.sum(axis=1)
    weighted = (per_label * support).sum(axis=1)
    return np.divide(weighted, total, out=np.zeros_like(total), where=total > 0)


def target_average(task: str, group: str) -> str:
    """How the targets table averages F1 over labels for `group`."""
    if task == "topics":
        return "macro"
    metric = next(m for g, m, _ in SENTIMENT_TARGETS if g == group)
    return "weighted" if metric == "weighted_f1" else "macro"


def paired_deltas(
    task: str,
    candidate: GroupRows,
    served: GroupRows,
    *,
    resamples: int = 2000,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Per target group: the candidate's score minus the served version's on the same rows,
    with a 95% paired bootstrap interval; ``worse`` when the whole interval is below zero, i.e.
    a drop that resampling the test rows does not explain. A mean can rise while one language
    falls: this keeps a variety from hiding behind it."""
    rng = np.random.default_rng(seed)
    report = []
    for group, (truth, predicted) in candidate.items():
        if group not in served:
            continue
        served_truth, served_predicted = served[group]
        if not np.array_equal(truth, served_truth):
            raise ValueError(f"{group}: the two versions were scored on different rows")
        n = len(truth)
        drawn = rng.integers(0, n, size=(resamples, n))
        counts = np.zeros((resamples + 1, n))
        np.add.at(counts, (np.repeat(np.arange(resamples), n), drawn.ravel()), 1.0)
        counts[-1] = 1.0  # the last "resample" is the test set itself
        average = target_average(task, group)
        deltas = weighted_f1_scores(truth, predicted, counts, average) - weighted_f1_scores(
            truth, served_predicted, counts, average
        )
        low, high = np.percentile(deltas[:-1], [2.5, 97.5])
        report.append(
            {
                "group": group,
                "n": n,
                "delta": _round(deltas[-1]),
                "ci95": [_round(low), _round(high)],
                "worse": bool(high < 0),
            }
        )
    return report


def off_domain_tagging(model: Any, data: EvaluationData, thresholds: np.ndarray) -> dict[str, Any]:
    """Share of general tweets given at least one topic: false themes a dashboard would show.

    Test splits of ``OFF_DOMAIN_CORPORA`` (Moroccan tweets about anything, not complaints;
    ``OFF_DOMAIN_SAMPLE`` rows each, seeded), by corpus and by language. A few are about
    public services, so 0 is not the ideal, but lower is better at equal seed-set F1.
    """
    groups: dict[str, Any] = {}
    try:
        tests = data.off_domain
    except CorpusError as error:
        return {"available": False, "reason": str(error)}
    tagged_all: list[np.ndarray] = []
    for name, test in tests.items():
        scores = data.proba(model, f"{name}-test-off-domain", test["text"].tolist())
        tagged = np.asarray((scores >= thresholds).any(axis=1), dtype=bool)
        tagged_all.append(tagged)
        groups[name] = {"n": len(test), "tagged": _round(tagged.mean())}
        for language, rows in test.groupby("language").indices.items():
            groups[f"{name}/{language}"] = {"n": len(rows), "tagged": _round(tagged[rows].mean())}
    pooled = np.concatenate(tagged_all)
    return {"available": True, "n": len(pooled), "tagged": _round(pooled.mean()), "groups": groups}


def evaluate(model: Any, task: str, data: EvaluationData) -> dict[str, Any]:
    if task == "sentiment":
        return evaluate_sentiment(model, data)
    if task == "topics":
        return evaluate_topics(model, data)
    raise ValueError(f"task must be 'sentiment' or 'topics', not {task!r}")
