"""Char + word n-gram TF-IDF heads: the honest baseline every encoder head must beat.

Character n-grams (``char_wb`` 2-5) survive the free spelling of Darija and Arabizi
(``bzaf``/``bzzaaf``, 3/7/9 for ع/ح/ق) where word features fragment; word uni/bigrams add the
lexical cues. Both heads normalise text with the pipeline's own ``normalize`` so that what is
evaluated is what is served.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import joblib
import numpy as np
from scipy import sparse
from scipy.special import expit
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, KFold
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import FeatureUnion

from models.registry import register_model_kind
from models.text.normalize import model_input

MODEL_FILE = "model.joblib"
# `one_vs_rest_scores` keeps its stacked coefficients on the classifier: derivable, and as large
# as the coefficients themselves, so `save` leaves it out
STACKED_CACHE = "_sawt_stacked"
# Words plus single non-space symbols, so emoji and "!" become word features too.
WORD_TOKEN_PATTERN = r"(?u)\w+|[^\w\s]"


def build_features(
    char_ngram_range: tuple[int, int],
    word_ngram_range: tuple[int, int],
    max_char_features: int,
    max_word_features: int,
    min_df: int,
) -> FeatureUnion:
    """The shared feature space: sublinear TF-IDF over char_wb and word n-grams, float32."""
    return FeatureUnion(
        [
            (
                "char",
                TfidfVectorizer(
                    analyzer="char_wb",
                    ngram_range=char_ngram_range,
                    min_df=min_df,
                    max_features=max_char_features,
                    sublinear_tf=True,
                    dtype=np.float32,
                ),
            ),
            (
                "word",
                TfidfVectorizer(
                    analyzer="word",
                    token_pattern=WORD_TOKEN_PATTERN,
                    ngram_range=word_ngram_range,
                    min_df=min_df,
                    max_features=max_word_features,
                    sublinear_tf=True,
                    dtype=np.float32,
                ),
            ),
        ]
    )


def normalize_all(texts: Iterable[str]) -> list[str]:
    """The heads train on exactly what they are served (see `model_input`)."""
    return [model_input(text) for text in texts]


def _shrink(features: FeatureUnion) -> None:
    """Drop what inference never reads: the pruned-term set can outweigh the vocabulary."""
    for _, vectorizer in features.transformer_list:
        if hasattr(vectorizer, "stop_words_"):
            del vectorizer.stop_words_


def _to_float32(model: LogisticRegression) -> None:
    model.coef_ = model.coef_.astype(np.float32)
    model.intercept_ = model.intercept_.astype(np.float32)


def union_transform(features: FeatureUnion, texts: Sequence[str]) -> sparse.csr_matrix:
    """`features.transform(texts)` without the joblib dispatch around each vectorizer, which
    costs about as much as the vectorizing itself for one complaint."""
    if features.transformer_weights:
        return features.transform(texts)
    blocks = [vectorizer.transform(texts) for _, vectorizer in features.transformer_list]
    return sparse.hstack(blocks, format="csr")


def one_vs_rest_scores(classifier: OneVsRestClassifier, matrix: Any) -> np.ndarray:
    """Per-label probabilities of a multi-label one-vs-rest of binary logistic regressions.

    One sparse product for every label instead of a validated sklearn call per label: for one
    complaint those per-call checks cost more than the product. Exactly sklearn's numbers
    (`expit` of each decision function); any other estimator falls back to sklearn.
    """
    estimators = classifier.estimators_
    stackable = all(isinstance(e, LogisticRegression) and e.coef_.shape[0] == 1 for e in estimators)
    if not stackable or getattr(classifier.label_binarizer_, "y_type_", "") != (
        "multilabel-indicator"
    ):
        return np.asarray(classifier.predict_proba(matrix), dtype=np.float64)
    cached = getattr(classifier, STACKED_CACHE, None)
    if cached is None:
        weights = np.vstack([e.coef_[0] for e in estimators]).T
        biases = np.asarray([e.intercept_[0] for e in estimators])
        cached = (np.ascontiguousarray(weights), biases)
        setattr(classifier, STACKED_CACHE, cached)
    weights, biases = cached
    # in the coefficients' own dtype, as sklearn computes it, then widened
    return np.asarray(expit(np.asarray(matrix @ weights) + biases), dtype=np.float64)


def _without_stacked_cache(value: Any) -> Any:
    """`value`, or a shallow copy of it without `one_vs_rest_scores`' cache (the served object
    keeps its cache)."""
    if not hasattr(value, STACKED_CACHE):
        return value
    stripped = copy.copy(value)
    delattr(stripped, STACKED_CACHE)
    return stripped


class _TfidfHead:
    """Persistence shared by both heads: one compressed joblib file of the fitted state."""

    kind: ClassVar[str]
    labels_: list[str]
    _STATE: ClassVar[tuple[str, ...]]

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        state = {name: _without_stacked_cache(getattr(self, name)) for name in self._STATE}
        payload = {"kind": self.kind, "params": self.get_params(), "state": state}
        joblib.dump(payload, directory / MODEL_FILE, compress=("xz", 6))

    @classmethod
    def load(cls, directory: Path) -> Self:
        payload = joblib.load(directory / MODEL_FILE)
        if payload.get("kind") != cls.kind:
            raise ValueError(f"{directory / MODEL_FILE} holds a '{payload.get('kind')}' model")
        model = cls(**payload["params"])
        for name, value in payload["state"].items():
            setattr(model, name, value)
        return model

    def get_params(self) -> dict[str, Any]:
        raise NotImplementedError


@register_model_kind
class TfidfSentimentClassifier(_TfidfHead):
    """3-class sentiment: TF-IDF + balanced logistic regression + temperature calibration.

    Calibration needs data the model did not fit: pass ``calibration_texts``/``_labels``
    (a dev split) to ``fit``; without them, temperature is fitted on 3-fold out-of-fold scores.
    """

    kind: ClassVar[str] = "tfidf-sentiment"
    _STATE: ClassVar[tuple[str, ...]] = ("features_", "classifier_", "calibrator_", "labels_")

    def __init__(
        self,
        C: float = 2.0,
        char_ngram_range: tuple[int, int] = (2, 5),
        word_ngram_range: tuple[int, int] = (1, 2),
        max_char_features: int = 150_000,
        max_word_features: int = 50_000,
        min_df: int = 2,
        calibrate: bool = True,
        max_iter: int = 1000,
    ) -> None:
        self.C = C
        self.char_ngram_range = char_ngram_range
        self.word_ngram_range = word_ngram_range
        self.max_char_features = max_char_features
        self.max_word_features = max_word_features
        self.min_df = min_df
        self.calibrate = calibrate
        self.max_iter = max_iter

    def get_params(self) -> dict[str, Any]:
        return {
            "C": self.C,
            "char_ngram_range": tuple(self.char_ngram_range),
            "word_ngram_range": tuple(self.word_ngram_range),
            "max_char_features": self.max_char_features,
            "max_word_features": self.max_word_features,
            "min_df": self.min_df,
            "calibrate": self.calibrate,
            "max_iter": self.max_iter,
        }

    def _new_classifier(self) -> LogisticRegression:
        return LogisticRegression(C=self.C, class_weight="balanced", max_iter=self.max_iter)

    def fit(
        self,
        texts: Sequence[str],
        labels: Sequence[str],
        *,
        calibration_texts: Sequence[str] | None = None,
        calibration_labels: Sequence[str] | None = None,
    ) -> Self:
        features = build_features(
            tuple(self.char_ngram_range),  # type: ignore[arg-type]
            tuple(self.word_ngram_range),  # type: ignore[arg-type]
            self.max_char_features,
            self.max_word_features,
            self.min_df,
        )
        matrix = features.fit_transform(normalize_all(texts))
        _shrink(features)
        return self.fit_features(
            features,
            matrix,
            labels,
            calibration_texts=calibration_texts,
            calibration_labels=calibration_labels,
        )

    def fit_features(
        self,
        features: FeatureUnion,
        matrix: sparse.spmatrix,
        labels: Sequence[str],
        *,
        calibration_texts: Sequence[str] | None = None,
        calibration_labels: Sequence[str] | None = None,
        classifier: LogisticRegression | None = None,
    ) -> Self:
        """Fit on an already vectorised matrix (lets a C search share one vectorisation).

        ``classifier``: one already fitted on ``matrix`` with these parameters (the winner of
        that search), reused instead of refitted.
        """
        y = np.asarray(labels, dtype=object)
        self.features_ = features
        self.calibrator_: CalibratedClassifierCV | None = None
        held_out = calibration_texts is not None and calibration_labels is not None
        if classifier is not None and self.calibrate and not held_out:
            raise ValueError(
                "a prefitted classifier is calibrated on held-out data only: "
                "pass calibration_texts and calibration_labels"
            )
        if classifier is not None:
            _to_float32(classifier)
        elif self.calibrate and not held_out:
            # Out-of-fold temperature; ensemble=False also refits one classifier on all data.
            calibrator = CalibratedClassifierCV(
                self._new_classifier(), method="temperature", cv=3, ensemble=False
            ).fit(matrix, y)
            classifier = calibrator.calibrated_classifiers_[0].estimator
            _to_float32(classifier)
            self.calibrator_ = calibrator
        else:
            classifier = self._new_classifier().fit(matrix, y)
            _to_float32(classifier)
        self.classifier_ = classifier
        # The out-of-fold path fits on encoded labels: its calibrator knows the names.
        named = self.calibrator_ if self.calibrator_ is not None else classifier
        self.labels_ = [str(label) for label in named.classes_]
        if self.calibrate and calibration_texts is not None and calibration_labels is not None:
            # A frozen model predicts the same whatever the folds: cv=2 only asks for 2 examples
            # per class (the default 5-fold split would refuse small calibration sets).
            calibrator = CalibratedClassifierCV(
                FrozenEstimator(classifier), method="temperature", cv=2
            )
            calibrator.fit(self._transform(calibration_texts), np.asarray(calibration_labels))
            self.calibrator_ = calibrator
        return self

    @property
    def temperature_(self) -> float:
        """The fitted softmax temperature (1.0 when uncalibrated); > 1 softens overconfidence."""
        if self.calibrator_ is None:
            return 1.0
        beta = getattr(self.calibrator_.calibrated_classifiers_[0].calibrators[0], "beta_", 1.0)
        return float(1.0 / float(beta))

    def _transform(self, texts: Sequence[str]) -> sparse.csr_matrix:
        return union_transform(self.features_, normalize_all(texts))

    def decision_function(self, texts: Sequence[str]) -> np.ndarray:
        """Uncalibrated per-class logits, columns in ``labels_`` order."""
        return np.asarray(self.classifier_.decision_function(self._transform(texts)))

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Calibrated probabilities, columns in ``labels_`` order."""
        matrix = self._transform(texts)
        model = self.calibrator_ if self.calibrator_ is not None else self.classifier_
        return np.asarray(model.predict_proba(matrix), dtype=np.float64)

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        proba = self.predict_proba(texts)
        return np.asarray(self.labels_, dtype=object)[proba.argmax(axis=1)]


def _with_augment(
    texts: Sequence[str],
    y: np.ndarray,
    rows: np.ndarray,
    augment: Sequence[tuple[int, str]],
) -> tuple[list[str], np.ndarray]:
    """`rows` of the data plus the augmented copies of those rows (labels of their source)."""
    keep = set(int(row) for row in rows)
    extra = [(row, text) for row, text in augment if row in keep]
    fold_texts = [texts[i] for i in rows] + [text for _, text in extra]
    sources = [int(i) for i in rows] + [row for row, _ in extra]
    return fold_texts, y[sources]


def cv_folds(
    n_rows: int, cv: int, random_state: int, groups: np.ndarray | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(train rows, held-out rows)`` per fold; rows sharing a group stay in the same fold.

    Groups keep a complaint and its retelling in another language out of each other's folds, so
    out-of-fold scores (thresholds, weights, C) are not inflated by near-copies.
    """
    rows = np.zeros((n_rows, 1))
    if groups is None:
        folds = KFold(n_splits=cv, shuffle=True, random_state=random_state)
        return list(folds.split(rows))
    grouped = GroupKFold(n_splits=cv, shuffle=True, random_state=random_state)
    return list(grouped.split(rows, groups=np.asarray(groups)))


def best_thresholds(
    y_true: np.ndarray, scores: np.ndarray, floor: float = 0.05, ceiling: float = 0.95
) -> np.ndarray:
    """Per-column threshold maximising F1 on held-out scores (0.5 where a column has no positive).

    Thresholds sit midway between consecutive distinct scores, within [floor, ceiling], so that
    a score equal to a tuning example's does not decide the cut.
    """
    thresholds = np.full(y_true.shape[1], 0.5)
    for column in range(y_true.shape[1]):
        truth = np.asarray(y_true[:, column], dtype=bool)
        positives = int(truth.sum())
        if positives == 0:
            continue
        order = np.argsort(-scores[:, column], kind="stable")
        ranked, hits = scores[order, column], truth[order]
        true_positives = np.cumsum(hits)
        predicted = np.arange(1, len(ranked) + 1)
        f1 = 2 * true_positives / (predicted + positives)
        following = np.append(ranked[1:], -np.inf)
        cuts = np.where(np.isfinite(following), (ranked + following) / 2, ranked)
        usable = (ranked > following) & (cuts >= floor) & (cuts <= ceiling)
        if usable.any():
            best = int(np.argmax(np.where(usable, f1, -1.0)))
            thresholds[column] = float(cuts[best])
    return thresholds


@register_model_kind
class TfidfTopicClassifier(_TfidfHead):
    """Multi-label topics: one balanced logistic regression per topic, per-topic thresholds.

    Thresholds are tuned on a dev split when one is passed to ``fit``, otherwise on
    ``cv``-fold out-of-fold scores of the training data.
    """

    kind: ClassVar[str] = "tfidf-topics"
    _STATE: ClassVar[tuple[str, ...]] = ("features_", "classifier_", "thresholds_", "labels_")

    def __init__(
        self,
        C: float = 4.0,
        char_ngram_range: tuple[int, int] = (2, 5),
        word_ngram_range: tuple[int, int] = (1, 2),
        max_char_features: int = 100_000,
        max_word_features: int = 30_000,
        min_df: int = 1,
        cv: int = 5,
        random_state: int = 0,
        max_iter: int = 1000,
    ) -> None:
        self.C = C
        self.char_ngram_range = char_ngram_range
        self.word_ngram_range = word_ngram_range
        self.max_char_features = max_char_features
        self.max_word_features = max_word_features
        self.min_df = min_df
        self.cv = cv
        self.random_state = random_state
        self.max_iter = max_iter

    def get_params(self) -> dict[str, Any]:
        return {
            "C": self.C,
            "char_ngram_range": tuple(self.char_ngram_range),
            "word_ngram_range": tuple(self.word_ngram_range),
            "max_char_features": self.max_char_features,
            "max_word_features": self.max_word_features,
            "min_df": self.min_df,
            "cv": self.cv,
            "random_state": self.random_state,
            "max_iter": self.max_iter,
        }

    def _indicator(self, topics: Sequence[Sequence[str]], labels: list[str]) -> np.ndarray:
        index = {label: i for i, label in enumerate(labels)}
        matrix = np.zeros((len(topics), len(labels)), dtype=np.int8)
        for row, row_topics in enumerate(topics):
            for topic in row_topics:
                if topic in index:
                    matrix[row, index[topic]] = 1
        return matrix

    def _fit_matrix(self, texts: list[str], y: np.ndarray) -> tuple[FeatureUnion, Any]:
        features = build_features(
            tuple(self.char_ngram_range),  # type: ignore[arg-type]
            tuple(self.word_ngram_range),  # type: ignore[arg-type]
            self.max_char_features,
            self.max_word_features,
            self.min_df,
        )
        matrix = features.fit_transform(texts)
        classifier = OneVsRestClassifier(
            # Dual liblinear: with far fewer texts than n-grams it is ~100x faster than primal.
            LogisticRegression(
                C=self.C,
                class_weight="balanced",
                solver="liblinear",
                dual=True,
                max_iter=self.max_iter,
            )
        ).fit(matrix, y)
        for estimator in classifier.estimators_:
            if isinstance(estimator, LogisticRegression):
                _to_float32(estimator)
        _shrink(features)
        return features, classifier

    def fit(
        self,
        texts: Sequence[str],
        topics: Sequence[Sequence[str]],
        *,
        labels: Sequence[str] | None = None,
        dev_texts: Sequence[str] | None = None,
        dev_topics: Sequence[Sequence[str]] | None = None,
        augment: Sequence[tuple[int, str]] | None = None,
    ) -> Self:
        """``topics``: the topic ids of each text; ``labels`` fixes the column order.

        ``augment``: extra ``(source row, text)`` pairs trained with their source row's topics
        (e.g. Arabizi spellings of Arabic-script Darija), never scored when tuning thresholds.
        """
        self.labels_ = (
            list(labels) if labels is not None else sorted({t for ts in topics for t in ts})
        )
        y = self._indicator(topics, self.labels_)
        missing = [
            label for label, count in zip(self.labels_, y.sum(axis=0), strict=True) if not count
        ]
        if missing:
            raise ValueError(
                f"no training example for topic(s) {missing}; add examples or drop them"
            )
        normalized = normalize_all(texts)
        extra = [(row, model_input(text)) for row, text in augment or ()]
        all_rows = np.arange(len(normalized))
        if dev_texts is not None and dev_topics is not None:
            self.features_, self.classifier_ = self._fit_matrix(
                *_with_augment(normalized, y, all_rows, extra)
            )
            self.thresholds_ = best_thresholds(
                self._indicator(dev_topics, self.labels_), self.predict_proba(dev_texts)
            )
        else:
            oof = self._out_of_fold_scores(normalized, y, augment=extra)
            self.thresholds_ = best_thresholds(y, oof)
            self.features_, self.classifier_ = self._fit_matrix(
                *_with_augment(normalized, y, all_rows, extra)
            )
        return self

    def _out_of_fold_scores(
        self,
        texts: list[str],
        y: np.ndarray,
        augment: Sequence[tuple[int, str]] | None = None,
        groups: np.ndarray | None = None,
    ) -> np.ndarray:
        """Scores of each row from a model that saw neither it, its augmented copies, nor (with
        ``groups``) any row of its group."""
        scores = np.zeros(y.shape, dtype=np.float64)
        for train_index, test_index in cv_folds(len(texts), self.cv, self.random_state, groups):
            fold_texts, fold_y = _with_augment(texts, y, train_index, augment or ())
            features, classifier = self._fit_matrix(fold_texts, fold_y)
            held_out = union_transform(features, [texts[i] for i in test_index])
            scores[test_index] = classifier.predict_proba(held_out)
        return scores

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Per-topic scores in [0, 1], columns in ``labels_`` order (not mutually exclusive)."""
        matrix = union_transform(self.features_, normalize_all(texts))
        return one_vs_rest_scores(self.classifier_, matrix)

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """Binary indicator matrix: 1 where a topic's score reaches its tuned threshold."""
        return (self.predict_proba(texts) >= self.thresholds_).astype(np.int8)

    def predict_topics(self, texts: Sequence[str]) -> list[list[str]]:
        return [
            [label for label, on in zip(self.labels_, row, strict=True) if on]
            for row in self.predict(texts)
        ]
