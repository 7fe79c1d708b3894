"""The analysis pipeline: one encoder pass feeds every head, whatever each head reads."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from models.heads.encoder_heads import EmbeddingTopicClassifier
from models.pipeline import AnalysisPipeline
from tests.api.readside import StubLanguage

TOPICS = ["delays", "fees"]
TEXTS = ["tsnit bzaf f lbaladiya", "khlest flous bzaf", "retard encore", "frais doublés"]


class CountingEncoder:
    """Three 'layers' per text; counts calls so a second encoder pass would show."""

    version = "counting"

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.encoded: list[list[str]] = []
        self.returned: np.ndarray | None = None

    def _layers(self, texts: Sequence[str]) -> np.ndarray:
        rng = np.random.default_rng([len(t) for t in texts])
        out = rng.normal(size=(len(texts), 3, 8)).astype(np.float32)
        return out / np.linalg.norm(out, axis=2, keepdims=True)

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        self.calls.append("encode")
        return self._layers(texts)[:, -1]

    def encode_layers(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        self.calls.append("encode_layers")
        self.encoded.append(list(texts))
        self.returned = self._layers(texts)
        return self.returned


class EmbeddingSentiment:
    """Reads the last layer only: what the stored embedding must be."""

    input_kind = "embedding"
    labels_ = ("negative", "neutral", "positive")

    def __init__(self) -> None:
        self.seen: np.ndarray | None = None

    def predict_proba(self, embeddings: np.ndarray) -> np.ndarray:
        self.seen = np.asarray(embeddings)
        return np.tile([0.7, 0.2, 0.1], (len(embeddings), 1))


@pytest.fixture
def layered_topics() -> EmbeddingTopicClassifier:
    rng = np.random.default_rng(0)
    layers = rng.normal(size=(40, 3, 8))
    rows = [[TOPICS[i % 2]] for i in range(40)]
    return EmbeddingTopicClassifier(cv=2, encoder_layers=(1, 3)).fit(layers, rows, labels=TOPICS)


def test_a_layered_topic_head_and_an_embedding_head_share_one_encoder_pass(layered_topics):
    encoder = CountingEncoder()
    sentiment = EmbeddingSentiment()
    pipeline = AnalysisPipeline(
        language_identifier=StubLanguage(),
        sentiment_model=sentiment,
        topic_model=layered_topics,
        versions={"langid": "t", "sentiment": "t", "topics": "t"},
        encoder=encoder,
    )
    results = pipeline.analyze(TEXTS)

    assert encoder.calls == ["encode_layers"]
    layers = encoder.returned
    assert layers is not None
    assert sentiment.seen is not None
    np.testing.assert_allclose(sentiment.seen, layers[:, -1])
    for result, row in zip(results, layers[:, -1], strict=True):
        assert result.embedding is not None and result.embedding.flags["C_CONTIGUOUS"]
        np.testing.assert_allclose(result.embedding, row)
    expected = layered_topics.predict_proba(layers)
    for result, scores in zip(results, expected, strict=True):
        chosen = {t.id for t in result.topics}
        assert chosen == {
            label
            for label, score, cut in zip(TOPICS, scores, layered_topics.thresholds_, strict=True)
            if score >= cut
        }


def test_heads_that_read_the_embedding_only_never_ask_for_layers():
    rng = np.random.default_rng(1)
    topics = EmbeddingTopicClassifier(cv=2).fit(
        rng.normal(size=(40, 8)), [[TOPICS[i % 2]] for i in range(40)], labels=TOPICS
    )
    encoder = CountingEncoder()
    pipeline = AnalysisPipeline(
        language_identifier=StubLanguage(),
        sentiment_model=EmbeddingSentiment(),
        topic_model=topics,
        versions={"langid": "t", "sentiment": "t", "topics": "t"},
        encoder=encoder,
    )
    pipeline.analyze(TEXTS)
    assert encoder.calls == ["encode"]


class DarijaAwareSentiment(EmbeddingSentiment):
    """Reads the Arabic spelling of the texts it calls Latin-script Darija (those with 'bzaf')."""

    input_kind = "embedding+text+arabizi"

    def arabizi_rows(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(["bzaf" in text for text in texts])

    def predict_proba(self, inputs: tuple[np.ndarray, list[str], np.ndarray]) -> np.ndarray:
        _, texts, arabizi = inputs
        self.seen = arabizi
        return np.tile([0.7, 0.2, 0.1], (len(texts), 1))


def test_only_latin_darija_posts_pay_for_the_arabic_spelling_in_the_same_pass(layered_topics):
    encoder = CountingEncoder()
    sentiment = DarijaAwareSentiment()
    pipeline = AnalysisPipeline(
        language_identifier=StubLanguage(),
        sentiment_model=sentiment,
        topic_model=layered_topics,
        versions={},
        encoder=encoder,
    )
    results = pipeline.analyze(TEXTS)
    # one pass: every text, then the spellings of the two Darija posts, bucketed together
    assert encoder.calls == ["encode_layers"]
    spellings = ["تسنيت بزاف ف لبالادييا", "خلست فلوس بزاف"]
    assert encoder.encoded == [[*TEXTS, *spellings]]
    returned = encoder.returned
    assert returned is not None
    assert sentiment.seen is not None
    np.testing.assert_allclose(sentiment.seen[:2], returned[4:, -1])
    assert np.isnan(sentiment.seen[2:]).all()
    # the stored embeddings are the texts' own, not their spellings'
    assert len(results) == len(TEXTS)
    for result, row in zip(results, returned[:4, -1], strict=True):
        assert result.embedding is not None and result.embedding.flags["C_CONTIGUOUS"]
        np.testing.assert_allclose(result.embedding, row)
    topic_inputs = layered_topics.predict_proba(returned[:4])
    assert {t.id for t in results[0].topics} == {
        label
        for label, score, cut in zip(
            TOPICS, topic_inputs[0], layered_topics.thresholds_, strict=True
        )
        if score >= cut
    }
