"""Encoder-based heads: fit, calibrate, honour `input_kind`, round-trip through the registry."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from models.heads.encoder_heads import (
    BAG_SEED_STRIDE,
    ROUTER_DIR,
    EmbeddingSentimentClassifier,
    EmbeddingTopicClassifier,
    EnsembleSentimentClassifier,
    EnsembleTopicClassifier,
    LatinLanguageRouter,
    MlpTopicClassifier,
    fit_temperature,
)
from models.heads.tfidf import TfidfSentimentClassifier, TfidfTopicClassifier, cv_folds
from models.registry import Registry

LABELS = ["negative", "neutral", "positive"]
WORDS = {
    "negative": "khayb bzaf mauvais",
    "neutral": "wach kayn info",
    "positive": "zwin merci top",
}


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def sentiment_set() -> tuple[np.ndarray, list[str], list[str]]:
    """Three noisy clusters on the unit sphere (like L2-normalised embeddings) and texts."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 32))
    labels = [LABELS[i % 3] for i in range(150)]
    x = np.stack([centres[LABELS.index(lab)] + rng.normal(scale=1.2, size=32) for lab in labels])
    texts = [f"{WORDS[label]} {i}" for i, label in enumerate(labels)]
    return _unit(x), labels, texts


def test_logreg_head_learns_and_calibrates(sentiment_set):
    x, labels, _ = sentiment_set
    head = EmbeddingSentimentClassifier(C=1.0).fit(
        x[:100], labels[:100], calibration_embeddings=x[100:], calibration_labels=labels[100:]
    )
    proba = head.predict_proba(x[100:])
    assert head.labels_ == LABELS
    assert proba.shape == (50, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert np.mean(head.predict(x[100:]) == np.asarray(labels[100:])) > 0.8
    assert head.temperature_ > 0 and head.temperature_ != 1.0


def test_mlp_head_round_trips_without_pickle(sentiment_set, tmp_path: Path):
    x, labels, _ = sentiment_set
    head = EmbeddingSentimentClassifier(hidden=(16,), max_iter=300).fit(x, labels)
    head.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "weights.safetensors"]
    loaded = EmbeddingSentimentClassifier.load(tmp_path)
    np.testing.assert_allclose(loaded.predict_proba(x), head.predict_proba(x), atol=1e-5)


def test_standardised_head_applies_its_training_statistics_at_fit_and_predict(
    sentiment_set, tmp_path: Path
):
    x, labels, _ = sentiment_set
    head = EmbeddingSentimentClassifier(hidden=(16,), max_iter=300, standardize=True)
    head.fit(x[:100], labels[:100])
    mean, scale = x[:100].mean(axis=0), x[:100].std(axis=0) + 1e-6
    by_hand = EmbeddingSentimentClassifier(hidden=(16,), max_iter=300).fit(
        (x[:100] - mean) / scale, labels[:100]
    )
    np.testing.assert_allclose(
        head.predict_proba(x[100:]), by_hand.predict_proba((x[100:] - mean) / scale), atol=1e-9
    )
    head.save(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    # older code would apply the weights to raw features: the version makes it refuse the head
    assert config["format_version"] == 3 and config["params"]["standardize"] is True
    loaded = EmbeddingSentimentClassifier.load(tmp_path)
    np.testing.assert_allclose(loaded.predict_proba(x), head.predict_proba(x), atol=1e-5)


def test_embedding_head_refuses_texts(sentiment_set):
    x, labels, texts = sentiment_set
    head = EmbeddingSentimentClassifier().fit(x, labels)
    assert head.input_kind == "embedding"
    with pytest.raises(ValueError):
        head.predict_proba(texts)


def test_temperature_softens_overconfident_logits():
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 3, size=400)
    logits = rng.normal(size=(400, 3))
    logits[np.arange(400), truth] += 1.0
    # scaled up 10x the logits are overconfident: the fitted temperature undoes most of it
    assert fit_temperature(logits * 10, truth) > 5.0


@pytest.fixture
def ensemble(sentiment_set) -> EnsembleSentimentClassifier:
    x, labels, texts = sentiment_set
    head = EmbeddingSentimentClassifier().fit(x, labels)
    text_head = TfidfSentimentClassifier(min_df=1, calibrate=False).fit(texts, labels)
    return EnsembleSentimentClassifier(head, text_head, arabic_weight=0.3, latin_weight=0.7)


def test_ensemble_takes_embeddings_and_texts(ensemble, sentiment_set):
    x, _, texts = sentiment_set
    assert ensemble.input_kind == "embedding+text"
    proba = ensemble.predict_proba((x, texts))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    with pytest.raises(TypeError, match="tuple"):
        ensemble.predict_proba(x)
    with pytest.raises(ValueError, match="embeddings for"):
        ensemble.predict_proba((x[:3], texts[:2]))


def test_ensemble_weights_pick_members(ensemble, sentiment_set):
    x, _, texts = sentiment_set
    members = (ensemble.embedding_head, ensemble.text_head)
    only_embedding = EnsembleSentimentClassifier(*members, 1.0, 1.0)
    np.testing.assert_allclose(
        only_embedding.predict_proba((x, texts)),
        ensemble.embedding_head.predict_proba(x),
        atol=1e-6,
    )
    only_text = EnsembleSentimentClassifier(*members, 0.0, 0.0)
    np.testing.assert_allclose(
        only_text.predict_proba((x, texts)), ensemble.text_head.predict_proba(texts), atol=1e-6
    )


def test_ensemble_round_trips_through_registry(ensemble, sentiment_set, tmp_path: Path):
    x, _, texts = sentiment_set
    registry = Registry(tmp_path)
    meta = registry.publish(
        ensemble,
        task="sentiment",
        metrics={"macro_f1_mean": 0.5},
        primary_metric="macro_f1_mean",
        promote=True,
    )
    assert "embedding/weights.safetensors" in meta.files
    loaded, loaded_meta = registry.load("sentiment")
    assert loaded_meta.kind == "ensemble-sentiment"
    assert loaded.latin_weight == 0.7
    np.testing.assert_allclose(
        loaded.predict_proba((x, texts)), ensemble.predict_proba((x, texts)), atol=1e-5
    )


# -- per-language Latin weights ------------------------------------------------------------

# Function words mark the language; the sentiment word (same for every language) the label.
VOCAB = {
    "fr": [
        "le",
        "la",
        "les",
        "est",
        "très",
        "pas",
        "je",
        "suis",
        "avec",
        "pour",
        "une",
        "des",
        "toujours",
        "rien",
        "nous",
        "vous",
    ],
    "en": [
        "the",
        "is",
        "very",
        "not",
        "i",
        "am",
        "with",
        "for",
        "and",
        "this",
        "my",
        "always",
        "nothing",
        "we",
        "you",
        "they",
    ],
    "ary-Latn": [
        "wach",
        "khoya",
        "bzaf",
        "3la",
        "dyal",
        "ma",
        "kayn",
        "walo",
        "hadchi",
        "chhal",
        "7ta",
        "lyoum",
        "ghir",
        "safi",
        "daba",
    ],
}
ARABIC = ["هذا", "الخدمة", "في", "من", "على", "مع", "كل", "شي", "واش", "بزاف", "ديال", "ماكاين"]
SENTIMENT_WORDS = {"negative": "khayb", "neutral": "info", "positive": "zwin"}
OBVIOUS = {
    "fr": "je ne suis pas content du service, la livraison est toujours en retard",
    "en": "i am not happy with the service, the delivery is always late",
    "ary-Latn": "wach kayn chi 7al 3afak khoya, hadchi bzaf walo lyoum",
}


@pytest.fixture
def multilingual_set() -> tuple[np.ndarray, list[str], list[str], list[str]]:
    """Embedding clusters per label, and texts in French, English, Arabizi and Arabic."""
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(3, 32))
    languages = ["fr", "en", "ary-Latn", "ary"]
    x, labels, texts, langs = [], [], [], []
    for i in range(360):
        label = LABELS[i % 3]
        language = languages[(i // 3) % 4]
        pool = ARABIC if language == "ary" else VOCAB[language]
        words = " ".join(rng.choice(pool, size=6))
        x.append(centres[LABELS.index(label)] + rng.normal(scale=1.5, size=32))
        labels.append(label)
        texts.append(f"{words} {SENTIMENT_WORDS[label]}")
        langs.append(language)
    return _unit(np.asarray(x)), labels, texts, langs


@pytest.fixture
def router(multilingual_set) -> LatinLanguageRouter:
    _, _, texts, languages = multilingual_set
    return LatinLanguageRouter().fit(texts, languages)


@pytest.fixture
def members(multilingual_set) -> tuple[EmbeddingSentimentClassifier, TfidfSentimentClassifier]:
    x, labels, texts, _ = multilingual_set
    head = EmbeddingSentimentClassifier().fit(x, labels)
    return head, TfidfSentimentClassifier(min_df=1, calibrate=False).fit(texts, labels)


def test_router_routes_obvious_french_english_and_arabizi_lines(router):
    assert router.groups_ == ["ary-Latn", "en", "fr"]
    routed = router.predict(list(OBVIOUS.values()))
    assert list(routed) == list(OBVIOUS)


def test_router_learns_from_latin_rows_of_known_groups_only():
    texts = ["le service est nul", "the service is bad", "هذا الخدمة", "#Christmas هذا"] * 3
    languages = ["fr", "en", "fr", "ar-egypt"] * 3
    rows, groups = LatinLanguageRouter.training_rows(texts, languages)
    assert set(groups) == {"fr", "en"} and all("هذا" not in row for row in rows)
    with pytest.raises(ValueError, match="at least two"):
        LatinLanguageRouter().fit(["le service est nul"] * 4, ["fr"] * 4)


def test_per_group_weights_change_only_the_routed_groups_predictions(
    members, router, multilingual_set
):
    x, _, texts, _ = multilingual_set
    shared = EnsembleSentimentClassifier(*members, 0.3, 0.5, 0.9)
    same = EnsembleSentimentClassifier(
        *members,
        0.3,
        0.5,
        0.9,
        latin_group_weights=dict.fromkeys(router.groups_, 0.5),
        router=router,
    )
    np.testing.assert_allclose(same.predict_proba((x, texts)), shared.predict_proba((x, texts)))
    english_only = EnsembleSentimentClassifier(
        *members,
        0.3,
        0.5,
        0.9,
        latin_group_weights={"ary-Latn": 0.5, "en": 1.0, "fr": 0.5},
        router=router,
    )
    routes = english_only.route(texts)
    assert set(routes) == {"Arab", "ary-Latn", "en", "fr"}
    english = routes == "en"
    before, after = shared.predict_proba((x, texts)), english_only.predict_proba((x, texts))
    np.testing.assert_allclose(after[~english], before[~english])
    assert not np.allclose(after[english], before[english])
    # weight 1 on the embedding member: the English rows get its (tempered) probabilities
    tempered = EnsembleSentimentClassifier(*members, 1.0, 1.0, 0.9).predict_proba((x, texts))
    np.testing.assert_allclose(after[english], tempered[english], atol=1e-9)


def test_routed_ensemble_round_trips_with_identical_probabilities(
    members, router, multilingual_set, tmp_path: Path
):
    x, _, texts, _ = multilingual_set
    weights = {"ary-Latn": 0.2, "en": 0.9, "fr": 0.6}
    model = EnsembleSentimentClassifier(
        *members, 0.3, 0.5, 0.8, latin_group_weights=weights, router=router
    )
    registry = Registry(tmp_path / "registry")
    meta = registry.publish(
        model,
        task="sentiment",
        metrics={"macro_f1_mean": 0.5},
        primary_metric="macro_f1_mean",
        promote=True,
    )
    assert "router/model.joblib" in meta.files
    loaded, _ = registry.load("sentiment")
    assert loaded.latin_group_weights == weights and loaded.router.groups_ == router.groups_
    # the embedding member stores float32 weights: equal to ~1e-8, and exactly so on reload
    np.testing.assert_allclose(
        loaded.predict_proba((x, texts)), model.predict_proba((x, texts)), atol=1e-6
    )
    np.testing.assert_array_equal(loaded.route(texts), model.route(texts))
    again = EnsembleSentimentClassifier.load(registry.path("sentiment", meta.version))
    np.testing.assert_array_equal(again.predict_proba((x, texts)), loaded.predict_proba((x, texts)))


def test_routed_ensemble_load_checks_what_it_reads(members, router, tmp_path: Path):
    model = EnsembleSentimentClassifier(
        *members,
        0.3,
        0.5,
        1.0,
        latin_group_weights=dict.fromkeys(router.groups_, 0.5),
        router=router,
    )

    def saved_with(edit) -> Path:  # type: ignore[no-untyped-def]
        directory = tmp_path / f"m{len(list(tmp_path.iterdir()))}"
        model.save(directory)
        config = json.loads((directory / "config.json").read_text())
        edit(directory, config)
        (directory / "config.json").write_text(json.dumps(config))
        return directory

    assert (
        json.loads((saved_with(lambda d, c: None) / "config.json").read_text())["format_version"]
        == 2
    )
    broken = [
        lambda d, c: c["latin_group_weights"].update(en=1.5),
        lambda d, c: c["latin_group_weights"].pop("fr"),
        lambda d, c: c.pop("router"),
        lambda d, c: shutil.rmtree(d / "router"),
        lambda d, c: c.update(format_version=4),
    ]
    for edit in broken:
        with pytest.raises(ValueError):
            EnsembleSentimentClassifier.load(saved_with(edit))
    with pytest.raises(ValueError, match="need a router"):
        EnsembleSentimentClassifier(*members, latin_group_weights={"en": 0.5})


def _old_formula(model: EnsembleSentimentClassifier, x: np.ndarray, texts: list[str]) -> np.ndarray:
    """What an ensemble computed before routers existed: one weight per script."""
    from scipy.special import softmax

    from models.language import dominant_script

    log_embedding, log_text = model.member_log_proba((x, texts))
    latin = np.asarray([dominant_script(t) == "Latn" for t in texts])
    w = np.where(latin, model.latin_weight, model.arabic_weight)[:, None]
    return softmax((w * log_embedding + (1 - w) * log_text) / model.temperature, axis=1)


def test_ensemble_without_router_keeps_the_old_format_and_predictions(
    members, multilingual_set, tmp_path: Path
):
    x, _, texts, _ = multilingual_set
    model = EnsembleSentimentClassifier(*members, 0.3, 0.6, 0.8)
    model.save(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert sorted(config) == [
        "arabic_weight",
        "format_version",
        "kind",
        "labels",
        "latin_weight",
        "members",
        "temperature",
    ]
    assert config["format_version"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "embedding", "text"]
    loaded = EnsembleSentimentClassifier.load(tmp_path)
    assert loaded.router is None and loaded.latin_group_weights is None
    np.testing.assert_allclose(
        loaded.predict_proba((x, texts)), model.predict_proba((x, texts)), atol=1e-6
    )
    np.testing.assert_allclose(loaded.predict_proba((x, texts)), _old_formula(loaded, x, texts))
    np.testing.assert_allclose(model.predict_proba((x, texts)), _old_formula(model, x, texts))


SHIPPED = Path(__file__).resolve().parents[2] / "models/artifacts/sentiment"


@pytest.mark.skipif(not SHIPPED.exists(), reason="no shipped sentiment registry")
def test_shipped_ensembles_still_load_and_predict_per_script(multilingual_set):
    """Versions written before the router (no ``router/``) load and predict as they did."""
    _, _, texts, _ = multilingual_set
    directories = [
        d for d in sorted(SHIPPED.glob("ensemble-sentiment-*")) if not (d / ROUTER_DIR).exists()
    ]
    assert directories
    for directory in directories:
        model = EnsembleSentimentClassifier.load(directory)
        assert model.router is None and model.latin_group_weights is None
        dim = model.embedding_head.layers_[0][0].shape[0]
        x = _unit(np.random.default_rng(0).normal(size=(40, dim)))
        np.testing.assert_allclose(
            model.predict_proba((x, texts[:40])), _old_formula(model, x, texts[:40])
        )


@pytest.mark.skipif(not SHIPPED.exists(), reason="no shipped sentiment registry")
def test_shipped_routed_ensembles_route_latin_texts_by_language():
    directories = [
        d for d in sorted(SHIPPED.glob("ensemble-sentiment-*")) if (d / ROUTER_DIR).exists()
    ]
    for directory in directories:
        model = EnsembleSentimentClassifier.load(directory)
        assert model.router is not None and model.latin_group_weights is not None
        assert set(model.latin_group_weights) == {"ary-Latn", "en", "fr"}
        texts = [
            "the passport office never answers the phone",
            "le guichet est fermé depuis trois jours",
            "l'idara ma kat jawbch 3la telephone, 7chouma",
        ]
        assert list(model.route(texts)) == ["en", "fr", "ary-Latn"]


@pytest.fixture
def topic_set() -> tuple[np.ndarray, list[list[str]], list[str]]:
    rng = np.random.default_rng(2)
    topics = ["delays", "fees", "praise"]
    centres = rng.normal(size=(3, 24))
    rows, x, texts = [], [], []
    for i in range(120):
        chosen = [topics[i % 3]] + ([topics[(i + 1) % 3]] if i % 4 == 0 else [])
        vector = sum(centres[topics.index(t)] for t in chosen) + rng.normal(scale=0.6, size=24)
        rows.append(chosen)
        x.append(vector)
        texts.append(" ".join(f"mot_{t}" for t in chosen) + f" n{i}")
    return _unit(np.asarray(x)), rows, texts


def test_topic_head_multilabel_and_round_trip(topic_set, tmp_path: Path):
    x, rows, _ = topic_set
    labels = ["delays", "fees", "praise"]
    head = EmbeddingTopicClassifier(C=4.0, cv=3).fit(x[:90], rows[:90], labels=labels)
    assert head.thresholds_.shape == (3,)
    predicted = head.predict(x[90:])
    truth = np.asarray([[int(t in r) for t in labels] for r in rows[90:]])
    assert (predicted == truth).mean() > 0.85
    head.save(tmp_path)
    loaded = EmbeddingTopicClassifier.load(tmp_path)
    np.testing.assert_allclose(loaded.predict_proba(x), head.predict_proba(x), atol=1e-5)
    np.testing.assert_array_equal(loaded.predict(x), head.predict(x))


def test_topic_head_requires_examples_for_every_topic(topic_set):
    x, rows, _ = topic_set
    with pytest.raises(ValueError, match="corruption"):
        labels = ["delays", "fees", "praise", "corruption"]
        EmbeddingTopicClassifier(cv=3).fit(x, rows, labels=labels)


def test_topic_ensemble_round_trip(topic_set, tmp_path: Path):
    x, rows, texts = topic_set
    labels = ["delays", "fees", "praise"]
    head = EmbeddingTopicClassifier(cv=3).fit(x, rows, labels=labels)
    text_head = TfidfTopicClassifier(cv=3).fit(texts, rows, labels=labels)
    model = EnsembleTopicClassifier(head, text_head, weight=0.6, thresholds=[0.4, 0.5, 0.6])
    assert model.input_kind == "embedding+text"
    model.save(tmp_path)
    loaded = EnsembleTopicClassifier.load(tmp_path)
    np.testing.assert_allclose(loaded.thresholds_, [0.4, 0.5, 0.6])
    np.testing.assert_allclose(
        loaded.predict_proba((x, texts)), model.predict_proba((x, texts)), atol=1e-5
    )


def _layered(x: np.ndarray, seed: int = 5) -> np.ndarray:
    """(n, 3, dim) pooled layers where only layer 2 carries the topics; 1 and 3 are noise."""
    rng = np.random.default_rng(seed)
    noise = [_unit(rng.normal(size=x.shape)) for _ in range(2)]
    return np.stack([noise[0], x, noise[1]], axis=1)


def test_layered_topic_head_reads_the_layers_it_was_fit_on(topic_set, tmp_path: Path):
    x, rows, texts = topic_set
    labels = ["delays", "fees", "praise"]
    layers = _layered(x)
    truth = np.asarray([[int(t in r) for t in labels] for r in rows[90:]])
    last_only = EmbeddingTopicClassifier(cv=3).fit(layers[:90, -1], rows[:90], labels=labels)
    head = EmbeddingTopicClassifier(cv=3, encoder_layers=(2, 3)).fit(
        layers[:90], rows[:90], labels=labels
    )
    assert head.input_kind == "layers" and last_only.input_kind == "embedding"
    assert (head.predict(layers[90:]) == truth).mean() > 0.85
    assert (last_only.predict(layers[90:, -1]) == truth).mean() < 0.75
    with pytest.raises(ValueError, match="encode_layers"):
        head.predict_proba(layers[:, -1])
    with pytest.raises(ValueError, match="out of range"):
        EmbeddingTopicClassifier(encoder_layers=(4,)).predict_proba(layers)

    head.save(tmp_path / "head")
    config = json.loads((tmp_path / "head" / "config.json").read_text())
    assert config["format_version"] == 2 and config["params"]["encoder_layers"] == [2, 3]
    loaded = EmbeddingTopicClassifier.load(tmp_path / "head")
    assert loaded.encoder_layers == (2, 3)
    np.testing.assert_allclose(loaded.predict_proba(layers), head.predict_proba(layers), atol=1e-5)

    text_head = TfidfTopicClassifier(cv=3).fit(texts, rows, labels=labels)
    model = EnsembleTopicClassifier(head, text_head, weight=0.6)
    assert model.input_kind == "layers+text"
    model.save(tmp_path / "ensemble")
    reloaded = EnsembleTopicClassifier.load(tmp_path / "ensemble")
    assert reloaded.input_kind == "layers+text"
    np.testing.assert_allclose(
        reloaded.predict_proba((layers, texts)), model.predict_proba((layers, texts)), atol=1e-5
    )


def _mlp_topics(**params) -> MlpTopicClassifier:
    return MlpTopicClassifier(hidden=16, epochs=40, learning_rate=1e-2, cv=3, **params)


def test_mlp_topic_head_learns_multilabel_and_round_trips_without_pickle(topic_set, tmp_path):
    x, rows, _ = topic_set
    labels = ["delays", "fees", "praise"]
    head = _mlp_topics().fit(x[:90], rows[:90], labels=labels)
    truth = np.asarray([[int(t in r) for t in labels] for r in rows[90:]])
    assert (head.predict(x[90:]) == truth).mean() > 0.85
    assert "hidden layer of 16" in head.describe()

    head.save(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["kind"] == "mlp-topics" and config["params"]["hidden"] == 16
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "weights.safetensors"]
    loaded = MlpTopicClassifier.load(tmp_path)
    np.testing.assert_allclose(loaded.predict_proba(x), head.predict_proba(x), atol=1e-5)
    np.testing.assert_allclose(loaded.thresholds_, head.thresholds_, atol=1e-6)


def test_a_bagged_topic_network_scores_the_mean_of_its_members(topic_set, tmp_path):
    x, rows, _ = topic_set
    labels = ["delays", "fees", "praise"]
    thresholds = [0.5, 0.5, 0.5]
    bagged = _mlp_topics(bag=2, random_state=3).fit(x, rows, labels=labels, thresholds=thresholds)
    members = [
        _mlp_topics(random_state=seed).fit(x, rows, labels=labels, thresholds=thresholds)
        for seed in (3, 3 + BAG_SEED_STRIDE)
    ]
    expected = np.mean([m.predict_proba(x) for m in members], axis=0)
    np.testing.assert_allclose(bagged.predict_proba(x), expected, atol=1e-9)
    assert not np.allclose(members[0].predict_proba(x), members[1].predict_proba(x))
    assert "mean of 2 networks" in bagged.describe()

    bagged.save(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    # code from before bagging would read one network's weights: the version makes it refuse
    assert config["format_version"] == 3 and config["params"]["bag"] == 2
    loaded = MlpTopicClassifier.load(tmp_path)
    np.testing.assert_allclose(loaded.predict_proba(x), bagged.predict_proba(x), atol=1e-5)
    assert "bag" not in _mlp_topics().get_params()
    with pytest.raises(ValueError, match="bag"):
        _mlp_topics(bag=0)


def test_mlp_topic_head_predicts_as_the_trained_torch_network(topic_set):
    """Trained in torch, served in numpy: the numpy forward pass (standardisation, erf GELU,
    sigmoid) must be the network's own, or served scores drift from the tuned thresholds."""
    torch = pytest.importorskip("torch")
    x, rows, _ = topic_set
    head = _mlp_topics().fit(x, rows, labels=["delays", "fees", "praise"])
    a = head.arrays_
    hidden = torch.nn.Linear(*a["hidden.weight"].shape).double()
    output = torch.nn.Linear(*a["output.weight"].shape).double()
    with torch.no_grad():
        for layer, name in ((hidden, "hidden"), (output, "output")):
            layer.weight.copy_(torch.tensor(a[f"{name}.weight"].T))
            layer.bias.copy_(torch.tensor(a[f"{name}.bias"]))
        standardised = torch.tensor((x - a["mean"]) / a["scale"])
        expected = torch.sigmoid(output(torch.nn.GELU()(hidden(standardised)))).numpy()
    np.testing.assert_allclose(head.predict_proba(x), expected, atol=1e-9)


def test_mlp_topic_head_is_reproducible_and_seeded(topic_set):
    torch = pytest.importorskip("torch")
    x, rows, _ = topic_set
    labels = ["delays", "fees", "praise"]
    outer_state = torch.get_rng_state()
    first = _mlp_topics(random_state=3).fit(x, rows, labels=labels)
    assert torch.equal(torch.get_rng_state(), outer_state)  # the caller's RNG is left alone
    again = _mlp_topics(random_state=3).fit(x, rows, labels=labels)
    other = _mlp_topics(random_state=4).fit(x, rows, labels=labels)
    np.testing.assert_array_equal(first.predict_proba(x), again.predict_proba(x))
    assert not np.allclose(first.predict_proba(x), other.predict_proba(x))


def test_layered_mlp_topic_ensemble_round_trips(topic_set, tmp_path: Path):
    x, rows, texts = topic_set
    labels = ["delays", "fees", "praise"]
    layers = _layered(x)
    head = _mlp_topics(encoder_layers=(2, 3)).fit(layers[:90], rows[:90], labels=labels)
    truth = np.asarray([[int(t in r) for t in labels] for r in rows[90:]])
    assert head.input_kind == "layers"
    assert (head.predict(layers[90:]) == truth).mean() > 0.85
    text_head = TfidfTopicClassifier(cv=3).fit(texts, rows, labels=labels)
    model = EnsembleTopicClassifier(head, text_head, weight=0.4)
    assert model.input_kind == "layers+text"
    model.save(tmp_path)
    reloaded = EnsembleTopicClassifier.load(tmp_path)
    assert isinstance(reloaded.embedding_head, MlpTopicClassifier)
    np.testing.assert_allclose(
        reloaded.predict_proba((layers, texts)), model.predict_proba((layers, texts)), atol=1e-5
    )


def test_ensemble_with_an_unknown_member_kind_is_refused_by_name(topic_set, tmp_path: Path):
    x, rows, texts = topic_set
    labels = ["delays", "fees", "praise"]
    head = EmbeddingTopicClassifier(cv=3).fit(x, rows, labels=labels)
    text_head = TfidfTopicClassifier(cv=3).fit(texts, rows, labels=labels)
    EnsembleTopicClassifier(head, text_head).save(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["members"]["embedding"] = "quantum-topics"
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="unknown model kind 'quantum-topics'"):
        EnsembleTopicClassifier.load(tmp_path)


def test_tfidf_topic_head_learns_augmented_spellings(topic_set):
    """Augmented copies carry their source row's topics: a spelling seen only there is learnt."""
    _, rows, texts = topic_set
    labels = ["delays", "fees", "praise"]
    spelling = {"delays": "zqxo", "fees": "vwjy", "praise": "hkbu"}  # no n-gram in common
    augment = [
        (i, " ".join(spelling[t] for t in row) + f" k{i}")
        for i, row in enumerate(rows)
        if i % 2 == 0
    ]
    plain = TfidfTopicClassifier(cv=3).fit(texts, rows, labels=labels)
    augmented = TfidfTopicClassifier(cv=3).fit(texts, rows, labels=labels, augment=augment)
    queries = [f"{spelling[t]} q" for t in labels]
    assert (augmented.predict_proba(queries).argmax(axis=1) == [0, 1, 2]).all()
    gain = np.diag(augmented.predict_proba(queries)) - np.diag(plain.predict_proba(queries))
    assert (gain > 0.1).all()


def _retold_noise() -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """60 random points with random topics, each present twice (a line and its "retelling")."""
    rng = np.random.default_rng(3)
    base = _unit(rng.normal(size=(60, 128)))  # more dimensions than rows: noise is learnable
    y = (rng.random((60, 3)) < 0.4).astype(np.int8)
    x = np.vstack([base, base + rng.normal(scale=0.01, size=base.shape)])
    groups = np.tile(np.arange(60), 2)
    texts = [f"w{i} w{i}x" for i in range(60)] * 2
    return x, np.vstack([y, y]), groups, texts


def test_grouped_folds_keep_a_group_out_of_its_own_training_fold():
    _, y, groups, _ = _retold_noise()
    for train, held_out in cv_folds(len(y), 5, 0, groups):
        assert not set(groups[train]) & set(groups[held_out])
    plain = cv_folds(len(y), 5, 0)
    assert any(set(groups[train]) & set(groups[held_out]) for train, held_out in plain)


@pytest.mark.parametrize("head_kind", ["embedding", "tfidf"])
def test_grouped_out_of_fold_scores_are_not_inflated_by_retellings(head_kind: str):
    """Labels are noise: only a model that saw a row's twin can score it well."""
    x, y, groups, texts = _retold_noise()

    def auc(scores: np.ndarray) -> float:
        from sklearn.metrics import roc_auc_score

        return float(np.mean([roc_auc_score(y[:, k], scores[:, k]) for k in range(y.shape[1])]))

    if head_kind == "embedding":
        head = EmbeddingTopicClassifier(C=64.0, cv=5)
        leaky, grouped = head.out_of_fold_scores(x, y), head.out_of_fold_scores(x, y, groups)
    else:
        text_head = TfidfTopicClassifier(C=16.0, cv=5)
        leaky = text_head._out_of_fold_scores(texts, y)
        grouped = text_head._out_of_fold_scores(texts, y, groups=groups)
    assert auc(leaky) > 0.8
    assert auc(grouped) < 0.65
