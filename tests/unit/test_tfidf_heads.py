"""TF-IDF sentiment and topic heads: learning, calibration, thresholds, persistence, registry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.heads.tfidf import (
    TfidfSentimentClassifier,
    TfidfTopicClassifier,
    best_thresholds,
    normalize_all,
)
from models.registry import MODEL_KINDS, Registry

POSITIVE = [
    "merci beaucoup service excellent rapide",
    "shukran bzaf lmuwadaf drif w m9ad",
    "great service thank you very helpful staff",
    "bravo l'équipe, accueil excellent et rapide",
    "tbarkellah 3likom khdma zwina w sari3a",
    "excellent support, quick and friendly, thanks",
    "très satisfait, merci pour la rapidité",
    "zwin bzaf had sservice, shukran",
]
NEGATIVE = [
    "service nul, attente horrible, personne ne répond",
    "khayb bzaf, tsnna 3 sway3 w walou",
    "terrible service, rude staff and endless waiting",
    "c'est honteux, dossier perdu encore une fois",
    "m3a9din bzaf, ta7d ma jawb 3la telephone",
    "awful experience, nobody answers, waste of time",
    "scandale, attente interminable et agents impolis",
    "hchouma 3likom, lmuwadaf m9l9 w ma kayjawbch",
]
NEUTRAL = [
    "quels sont les horaires d'ouverture du bureau",
    "fin kayn lmaktab dyal lbaladiya",
    "what documents are needed for the application",
    "je voudrais savoir la liste des pièces à fournir",
    "imta kat7el lidara nhar sebt",
    "where is the nearest office located",
    "comment prendre rendez-vous en ligne",
    "ach khassni bach ndir lbitaqa",
]


@pytest.fixture(scope="module")
def sentiment_data() -> tuple[list[str], list[str]]:
    texts = POSITIVE + NEGATIVE + NEUTRAL
    labels = ["positive"] * 8 + ["negative"] * 8 + ["neutral"] * 8
    return texts, labels


@pytest.fixture(scope="module")
def sentiment_model(sentiment_data: tuple[list[str], list[str]]) -> TfidfSentimentClassifier:
    texts, labels = sentiment_data
    return TfidfSentimentClassifier(C=10.0, min_df=1).fit(texts, labels)


def test_sentiment_kinds_are_registered() -> None:
    assert MODEL_KINDS["tfidf-sentiment"] is TfidfSentimentClassifier
    assert MODEL_KINDS["tfidf-topics"] is TfidfTopicClassifier


def test_sentiment_learns_and_returns_distributions(
    sentiment_model: TfidfSentimentClassifier,
) -> None:
    assert sentiment_model.labels_ == ["negative", "neutral", "positive"]
    texts = ["merci, service excellent", "attente horrible, personne ne répond", "fin kayn lmaktab"]
    proba = sentiment_model.predict_proba(texts)
    assert proba.shape == (3, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert list(sentiment_model.predict(texts)) == ["positive", "negative", "neutral"]


def test_sentiment_input_is_normalised(sentiment_model: TfidfSentimentClassifier) -> None:
    # normalize() folds elongations and URLs: these pairs must score identically.
    pairs = [
        ("zwin bzaaaaaaaf", "zwin bzaaf"),
        ("merci https://example.org/x @someone", "merci"),
    ]
    for raw, canonical in pairs:
        np.testing.assert_allclose(
            sentiment_model.predict_proba([raw]), sentiment_model.predict_proba([canonical])
        )


def test_held_out_calibration_sets_a_temperature(
    sentiment_data: tuple[list[str], list[str]],
) -> None:
    texts, labels = sentiment_data
    train = [i for i in range(len(texts)) if i % 4]
    held = [i for i in range(len(texts)) if not i % 4]
    model = TfidfSentimentClassifier(C=10.0, min_df=1).fit(
        [texts[i] for i in train],
        [labels[i] for i in train],
        calibration_texts=[texts[i] for i in held],
        calibration_labels=[labels[i] for i in held],
    )
    assert model.temperature_ != pytest.approx(1.0)
    logits = model.decision_function(["merci"])
    softmax = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    assert not np.allclose(model.predict_proba(["merci"]), softmax)
    uncalibrated = TfidfSentimentClassifier(C=10.0, min_df=1, calibrate=False).fit(texts, labels)
    assert uncalibrated.temperature_ == 1.0


def test_prefitted_classifier_needs_held_out_calibration(
    sentiment_data: tuple[list[str], list[str]],
) -> None:
    texts, labels = sentiment_data
    probe = TfidfSentimentClassifier(min_df=1)
    from models.heads.tfidf import build_features

    features = build_features((2, 5), (1, 2), 1000, 1000, 1)
    matrix = features.fit_transform(texts)
    classifier = probe._new_classifier().fit(matrix, labels)
    with pytest.raises(ValueError, match="calibration_texts"):
        probe.fit_features(features, matrix, labels, classifier=classifier)


def test_sentiment_save_load_round_trip(
    sentiment_model: TfidfSentimentClassifier, tmp_path: Path
) -> None:
    sentiment_model.save(tmp_path)
    loaded = TfidfSentimentClassifier.load(tmp_path)
    texts = ["service nul", "merci bzaf", "where is the office"]
    np.testing.assert_array_equal(loaded.predict_proba(texts), sentiment_model.predict_proba(texts))
    assert loaded.labels_ == sentiment_model.labels_
    assert loaded.get_params() == sentiment_model.get_params()
    size = sum(p.stat().st_size for p in tmp_path.iterdir())
    assert size < 5_000_000


def test_load_refuses_another_kind(
    sentiment_model: TfidfSentimentClassifier, tmp_path: Path
) -> None:
    sentiment_model.save(tmp_path)
    with pytest.raises(ValueError, match="tfidf-sentiment"):
        TfidfTopicClassifier.load(tmp_path)


def test_sentiment_publishes_through_the_registry(
    sentiment_model: TfidfSentimentClassifier, tmp_path: Path
) -> None:
    registry = Registry(tmp_path)
    meta = registry.publish(
        sentiment_model,
        task="sentiment",
        metrics={"macro_f1": 0.5},
        primary_metric="macro_f1",
        promote=True,
    )
    model, loaded_meta = registry.load("sentiment")
    assert isinstance(model, TfidfSentimentClassifier)
    assert loaded_meta.version == meta.version
    assert loaded_meta.labels == ["negative", "neutral", "positive"]
    assert list(model.predict(["service nul"])) == list(sentiment_model.predict(["service nul"]))


# -- topics ------------------------------------------------------------------------------------

TOPIC_DATA: list[tuple[str, list[str]]] = [
    ("attente de trois mois pour le passeport", ["delays"]),
    ("tsnnit 3 chhour bach ykhrj lpasseport", ["delays"]),
    ("waiting two months for my passport, still nothing", ["delays"]),
    ("le rendez-vous est dans six mois", ["delays"]),
    ("lmaw3id ba9i lih 6 chhour", ["delays"]),
    ("appointment is six months away", ["delays"]),
    ("le site plante au paiement en ligne", ["digital_services"]),
    ("site dyal lkhlas ma khdamch", ["digital_services"]),
    ("the online portal crashes at login", ["digital_services"]),
    ("l'application refuse le code OTP", ["digital_services"]),
    ("application ma katsiftch code OTP", ["digital_services"]),
    ("the app rejects my OTP code", ["digital_services"]),
    ("on m'a facturé deux fois la taxe", ["fees"]),
    ("khllsoni joj mrat f nafs lfatoura", ["fees"]),
    ("I was charged twice for the same fee", ["fees"]),
    ("amende injuste et frais cachés", ["fees"]),
    ("site tay7 f lkhlas w khllsoni joj mrat", ["digital_services", "fees"]),
    ("the portal crashed and charged me twice", ["digital_services", "fees"]),
    ("le site a planté et j'ai payé deux fois", ["digital_services", "fees"]),
    ("tsnnit chhrin w site ma khdamch", ["delays", "digital_services"]),
    ("two months waiting and the portal still crashes", ["delays", "digital_services"]),
    ("deux mois d'attente et le site ne marche pas", ["delays", "digital_services"]),
]
TOPICS = ["delays", "digital_services", "fees"]


@pytest.fixture(scope="module")
def topic_model() -> TfidfTopicClassifier:
    texts = [t for t, _ in TOPIC_DATA]
    topics = [ts for _, ts in TOPIC_DATA]
    return TfidfTopicClassifier(C=10.0, cv=3).fit(texts, topics, labels=TOPICS)


def test_topics_predict_an_indicator_matrix(topic_model: TfidfTopicClassifier) -> None:
    texts = ["attente de six mois", "le portail plante", "charged twice"]
    predicted = topic_model.predict(texts)
    proba = topic_model.predict_proba(texts)
    assert topic_model.labels_ == TOPICS
    assert predicted.shape == proba.shape == (3, 3)
    assert set(np.unique(predicted)) <= {0, 1}
    assert ((proba >= 0) & (proba <= 1)).all()
    np.testing.assert_array_equal(predicted, (proba >= topic_model.thresholds_).astype(int))
    assert topic_model.thresholds_.shape == (3,)


def test_topic_scores_equal_sklearns_one_vs_rest_for_one_text_and_many(
    topic_model: TfidfTopicClassifier,
) -> None:
    """The served shortcut (one stacked product, no per-topic sklearn call) changes no score."""
    texts = ["attente de six mois", "le portail plante", "charged twice", "tsnnit bzaf"]
    for batch in (texts[:1], texts):
        matrix = topic_model.features_.transform(normalize_all(batch))
        expected = topic_model.classifier_.predict_proba(matrix)
        np.testing.assert_array_equal(topic_model.predict_proba(batch), expected)


def test_topics_find_the_obvious_topic(topic_model: TfidfTopicClassifier) -> None:
    found = topic_model.predict_topics(["waiting months for the passport appointment"])
    assert "delays" in found[0]
    assert "fees" not in found[0]


def test_topics_refuse_a_topic_without_examples() -> None:
    with pytest.raises(ValueError, match="corruption"):
        TfidfTopicClassifier(cv=2).fit(
            ["a b c", "d e f"], [["delays"], ["fees"]], labels=["delays", "fees", "corruption"]
        )


def test_topics_tune_thresholds_on_dev_when_given() -> None:
    texts = [t for t, _ in TOPIC_DATA]
    topics = [ts for _, ts in TOPIC_DATA]
    dev_texts, dev_topics = texts[::3], topics[::3]
    model = TfidfTopicClassifier(C=10.0).fit(
        texts, topics, labels=TOPICS, dev_texts=dev_texts, dev_topics=dev_topics
    )
    truth = np.asarray([[int(t in ts) for t in TOPICS] for ts in dev_topics])
    expected = best_thresholds(truth, model.predict_proba(dev_texts))
    np.testing.assert_allclose(model.thresholds_, expected)


def test_topics_round_trip_through_the_registry(
    topic_model: TfidfTopicClassifier, tmp_path: Path
) -> None:
    registry = Registry(tmp_path)
    registry.publish(topic_model, task="topics", promote=True)
    loaded, meta = registry.load("topics")
    texts = ["le site plante", "tsnnit bzaf"]
    np.testing.assert_array_equal(loaded.predict(texts), topic_model.predict(texts))
    np.testing.assert_allclose(loaded.thresholds_, topic_model.thresholds_)
    assert meta.labels == TOPICS


def test_a_saved_topic_head_leaves_out_its_scoring_cache(tmp_path: Path) -> None:
    """The stacked coefficients `predict_proba` caches are derivable and as large as the
    coefficients: a head that has served saves no more than one that has not."""
    texts = [t for t, _ in TOPIC_DATA]
    topics = [ts for _, ts in TOPIC_DATA]
    fresh = TfidfTopicClassifier(C=10.0, cv=3).fit(texts, topics, labels=TOPICS)
    fresh.save(tmp_path / "fresh")
    served = TfidfTopicClassifier(C=10.0, cv=3).fit(texts, topics, labels=TOPICS)
    scores = served.predict_proba(["le site plante"])
    served.save(tmp_path / "served")
    sizes = {
        name: (tmp_path / name / "model.joblib").stat().st_size for name in ("fresh", "served")
    }
    assert sizes["served"] < 1.1 * sizes["fresh"], sizes  # not the coefficients twice
    np.testing.assert_array_equal(served.predict_proba(["le site plante"]), scores)
    loaded = TfidfTopicClassifier.load(tmp_path / "served")
    np.testing.assert_array_equal(loaded.predict_proba(["le site plante"]), scores)


def test_best_thresholds_separate_perfectly_ranked_scores() -> None:
    truth = np.array([[1, 0], [1, 0], [0, 0], [0, 0]])
    scores = np.array([[0.9, 0.1], [0.7, 0.2], [0.4, 0.3], [0.2, 0.4]])
    thresholds = best_thresholds(truth, scores)
    assert 0.4 < thresholds[0] < 0.7
    assert thresholds[1] == 0.5  # no positive example: left at the default
