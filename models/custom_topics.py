"""Tenant-defined topics scored by similarity to a handful of examples: no retraining.

A topic is the centroid of its examples' embeddings. Its threshold is the lower of two cuts:
the one maximising Youden's J between the examples (each scored against the centroid of the
others) and reference complaints of other themes (the project's seed set), and the cut that lets
through `false_positive_rate` of those reference complaints. With a handful of examples the J
cut overfits them; the second bounds the false-positive rate on ordinary complaints while
favouring recall. Scores are a logistic of the cosine around the threshold: 0.5 = at it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

import numpy as np

MIN_EXAMPLES = 3


@dataclass(frozen=True)
class TopicPrototype:
    """What is stored per custom topic and applied at analysis time."""

    id: str
    centroid: np.ndarray
    threshold: float
    scale: float

    def scores(self, embeddings: np.ndarray) -> np.ndarray:
        cosine = np.asarray(embeddings, dtype=np.float32) @ self.centroid
        return 1.0 / (1.0 + np.exp(-(cosine - self.threshold) / self.scale))


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


class SimilarityTopic:
    """scikit-learn-style: `fit(examples, negatives)`, then `predict_proba(embeddings)`."""

    def __init__(
        self,
        false_positive_rate: float = 0.05,
        min_threshold: float = 0.75,
        max_threshold: float = 0.97,
    ) -> None:
        self.false_positive_rate = false_positive_rate
        self.min_threshold = min_threshold
        self.max_threshold = max_threshold

    def fit(self, example_embeddings: np.ndarray, negative_embeddings: np.ndarray) -> Self:
        examples = np.asarray(example_embeddings, dtype=np.float32)
        negatives = np.asarray(negative_embeddings, dtype=np.float32)
        if len(examples) < MIN_EXAMPLES:
            raise ValueError(f"a topic needs at least {MIN_EXAMPLES} examples, got {len(examples)}")
        total = examples.sum(axis=0)
        self.centroid_ = _unit(total).astype(np.float32)
        leave_one_out = np.array([float(e @ _unit(total - e)) for e in examples], dtype=np.float32)
        negative_scores = negatives @ self.centroid_ if len(negatives) else np.zeros(0)
        self.threshold_ = self._best_threshold(leave_one_out, negative_scores)
        spread = np.concatenate([leave_one_out, negative_scores])
        self.scale_ = float(max(np.std(spread) / 4.0, 0.005))
        return self

    def _best_threshold(self, positives: np.ndarray, negatives: np.ndarray) -> float:
        if len(negatives) == 0:
            return float(np.clip(positives.min() - 0.01, self.min_threshold, self.max_threshold))
        candidates = np.unique(np.concatenate([positives, negatives]))
        best, best_j = float(positives.min()), -1.0
        for threshold in candidates:
            j = float((positives >= threshold).mean() - (negatives >= threshold).mean())
            if j > best_j:
                best, best_j = float(threshold), j
        bounded = float(np.quantile(negatives, 1.0 - self.false_positive_rate))
        return float(np.clip(min(best, bounded), self.min_threshold, self.max_threshold))

    def prototype(self, topic_id: str) -> TopicPrototype:
        return TopicPrototype(
            id=topic_id, centroid=self.centroid_, threshold=self.threshold_, scale=self.scale_
        )

    def predict_proba(self, embeddings: np.ndarray) -> np.ndarray:
        return self.prototype("_").scores(embeddings)

    def predict(self, embeddings: np.ndarray) -> np.ndarray:
        return self.predict_proba(embeddings) >= 0.5
