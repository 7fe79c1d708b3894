"""Training: tiny fits publish loadable artifacts; corrections reach training, never tests."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.heads.encoder_heads import (
    EmbeddingSentimentClassifier,
    EnsembleSentimentClassifier,
    LatinLanguageRouter,
    MlpTopicClassifier,
)
from models.heads.tfidf import TfidfSentimentClassifier
from models.pipeline import arabizi_view, head_inputs
from models.registry import Registry
from models.text.arabizi import arabizi_to_arabic
from service.complaints.models import Complaint, LabelCorrection
from service.core.db import make_engine, make_session_factory, session_scope
from service.core.migrate import upgrade
from service.tenants.models import Role
from service.tenants.service import create_key
from training.baseline import TAXONOMY
from training.config import SentimentConfig, TopicsConfig, load_config
from training.corpora import data_dir, load_corpus, load_seed_topics
from training.corrections import corrections_frame, load_corrections
from training.evaluate import EvaluationData, evaluate_topics
from training.fit import (
    EmbeddingCache,
    SentimentData,
    Split,
    arabic_to_arabizi,
    choose_group_weights,
    darija_train_rows,
    fit_darija_head,
    fit_darija_on,
    fit_embedding_sentiment,
    fit_latin_router,
    fit_sentiment,
    fit_tfidf_sentiment,
    fit_topics,
    load_sentiment_data,
    load_topic_negatives,
    load_topics_data,
    pairing_groups,
    per_corpus_macro_f1,
    prepare_texts,
    repeated_oof_scores,
    row_weights,
    shrink_thresholds,
    topic_augmentations,
    topic_cv_breakdown,
)

WORDS = {
    "negative": ["khayb", "mauvais", "سيء", "3yit", "terrible"],
    "neutral": ["wach", "info", "متى", "kayn", "question"],
    "positive": ["zwin", "merci", "مزيان", "top", "great"],
}
TOPIC_WORDS = {"delays": "tsnit bzaf retard", "fees": "khlest flous frais", "praise": "merci bravo"}


class FakeEncoder:
    """Deterministic hashed char-trigram vectors: real signal, no model download."""

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        self.calls += 1
        return self._hashed(texts, salt="")

    def encode_layers(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """12 "layers": trigrams hashed with a salt per layer; the last is `encode`'s."""
        self.calls += 1
        salts = [f"layer{i}" for i in range(1, 12)] + [""]
        return np.stack([self._hashed(texts, salt) for salt in salts], axis=1)

    @staticmethod
    def _hashed(texts: Sequence[str], salt: str) -> np.ndarray:
        out = np.zeros((len(texts), 64), dtype=np.float32)
        for row, text in enumerate(texts):
            padded = f"  {text}  "
            for i in range(len(padded) - 2):
                digest = hashlib.md5((salt + padded[i : i + 3]).encode()).digest()
                out[row, digest[0] % 64] += 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


@pytest.fixture
def encoder() -> FakeEncoder:
    return FakeEncoder()


@pytest.fixture
def cache(tmp_path: Path, encoder: FakeEncoder) -> EmbeddingCache:
    return EmbeddingCache(tmp_path / "emb", encoder_factory=lambda: encoder, show_progress=False)


def _rows(corpus: str, split: str, n: int, rng: np.random.Generator) -> list[dict[str, str]]:
    rows = []
    for i in range(n):
        label = ["negative", "neutral", "positive"][i % 3]
        words = rng.choice(WORDS[label], size=3)
        rows.append(
            {
                "text": f"{' '.join(words)} {corpus} {split} {i}",
                "label": label,
                "language": "ary",
                "script": "Latn",
                "split": split,
                "source": corpus,
            }
        )
    return rows


@pytest.fixture
def frames() -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(0)
    out = {}
    for corpus in ("afrisenti_ary", "mac"):
        rows = [
            r
            for split, n in (("train", 60), ("dev", 24), ("test", 24))
            for r in _rows(corpus, split, n, rng)
        ]
        out[corpus] = pd.DataFrame(rows)
    return out


def tiny_sentiment_config(**overrides: object) -> SentimentConfig:
    values: dict[str, object] = {
        "corpora": ["afrisenti_ary", "mac"],
        "head": "logreg",
        "C_grid": [1.0],
        "tfidf_C_grid": [1.0],
        "weight_grid": [0.0, 0.5, 1.0],
        "seed_sentiment": False,
        "transliteration_augment": "none",
    }
    values.update(overrides)
    return SentimentConfig.model_validate(values)


def test_tiny_sentiment_run_publishes_a_loadable_artifact(frames, cache, encoder, tmp_path):
    config = tiny_sentiment_config(max_train_rows=80)
    data = load_sentiment_data(config, cache, frames=frames)
    assert len(data.train) == 80
    model, report = fit_sentiment(config, data, log=lambda _: None)
    assert report["chosen"] in ("ensemble-sentiment", "embedding-sentiment")
    registry = Registry(tmp_path / "registry")
    meta = registry.publish(
        model,
        task="sentiment",
        metrics={"macro_f1_mean": 0.5},
        primary_metric="macro_f1_mean",
        promote=True,
    )
    loaded, _ = registry.load("sentiment", meta.version)
    texts = prepare_texts(["zwin merci top", "khayb mauvais terrible", "wach kayn info"])
    embeddings = encoder.encode(texts)
    expected = model.predict_proba(head_inputs(model, texts, embeddings))
    np.testing.assert_allclose(
        loaded.predict_proba(head_inputs(loaded, texts, embeddings)), expected, atol=1e-5
    )
    assert list(loaded.predict(head_inputs(loaded, texts, embeddings))) == [
        "positive",
        "negative",
        "neutral",
    ]


LANGUAGE_WORDS = {
    "fr": ["le", "service", "est", "très", "avec", "pour", "toujours", "rien", "nous"],
    "en": ["the", "service", "is", "very", "with", "for", "always", "nothing", "we"],
    "ary-Latn": ["wach", "khoya", "bzaf", "3la", "dyal", "kayn", "walo", "hadchi", "daba"],
}


@pytest.fixture
def multilingual_frames() -> dict[str, pd.DataFrame]:
    """An afrisenti-like corpus (Arabizi) and an umsab-like one (French and English)."""
    rng = np.random.default_rng(1)
    out = {}
    for corpus, languages in (("afrisenti_ary", ["ary-Latn"]), ("umsab_xlm_t", ["fr", "en"])):
        rows = []
        for split, n in (("train", 90), ("dev", 36), ("test", 18)):
            for i in range(n):
                label = ["negative", "neutral", "positive"][i % 3]
                language = languages[(i // 3) % len(languages)]
                words = " ".join(rng.choice(LANGUAGE_WORDS[language], size=4))
                sentiment = " ".join(rng.choice(WORDS[label], size=2))
                rows.append(
                    {
                        "text": f"{words} {sentiment} {split}{i}",
                        "label": label,
                        "language": language,
                        "script": "Latn",
                        "split": split,
                        "source": corpus,
                    }
                )
        out[corpus] = pd.DataFrame(rows)
    return out


def test_group_weights_follow_the_member_each_language_prefers():
    """English rows: the embedding member is right; Arabizi rows: the n-gram member is."""
    labels = ["negative", "neutral", "positive"]
    rng = np.random.default_rng(0)
    n = 60
    truth = np.arange(n) % 3
    groups = np.asarray(["en"] * 20 + ["ary-Latn"] * 20 + ["Arab"] * 20, dtype=object)
    right, wrong = np.eye(3)[truth] * 2.0, np.eye(3)[(truth + 1) % 3] * 2.0
    noise = rng.normal(scale=0.1, size=(n, 3))
    log_embedding = np.where((groups == "en")[:, None], right, wrong) + noise
    log_text = np.where((groups == "en")[:, None], wrong, right) + noise
    dev = pd.DataFrame(
        {"label": [labels[t] for t in truth], "source": ["umsab"] * 20 + ["afrisenti"] * 40}
    )
    start = {"Arab": 0.5, "en": 0.5, "ary-Latn": 0.5, "fr": 0.5}
    weights, temperature, trace = choose_group_weights(
        log_embedding, log_text, groups, dev, labels, [0.0, 0.25, 0.5, 0.75, 1.0], start
    )
    assert weights["en"] > 0.5 and weights["ary-Latn"] < 0.5 and weights["Arab"] < 0.5
    assert weights["fr"] == 0.5  # no dev row routed there: its weight is not chosen
    assert trace[-1]["pass"] == 2 and temperature > 0

    def dev_mean(w: dict[str, float]) -> float:
        row = np.asarray([w[g] for g in groups])[:, None]
        pooled = row * log_embedding + (1 - row) * log_text
        return per_corpus_macro_f1(dev, np.asarray(labels, dtype=object)[pooled.argmax(1)])["mean"]

    assert dev_mean(weights) > dev_mean(start) == trace[0]["dev_mean"]
    with pytest.raises(ValueError, match="align"):
        choose_group_weights(log_embedding, log_text, groups[:-1], dev, labels, [0.5], start)


def test_per_language_weights_are_fit_on_train_and_chosen_on_dev_only(
    multilingual_frames, cache, encoder, monkeypatch
):
    import training.fit as fit_module

    config = tiny_sentiment_config(
        corpora=["afrisenti_ary", "umsab_xlm_t"], weight_grid=[0.0, 0.25, 0.5, 0.75, 1.0]
    )
    data = load_sentiment_data(config, cache, frames=multilingual_frames)
    train_texts, dev_texts = set(data.train.prepared), set(data.dev.prepared)
    scored: list[set[str]] = []
    router_rows: list[set[str]] = []

    def spy_scores(frame: pd.DataFrame, predicted: np.ndarray) -> dict[str, float]:
        scored.append(set(frame["text"].map(lambda t: prepare_texts([t])[0])))
        return per_corpus_macro_f1(frame, predicted)

    original_fit = LatinLanguageRouter.fit

    def spy_fit(self, texts, languages):  # type: ignore[no-untyped-def]
        router_rows.append(set(texts))
        return original_fit(self, texts, languages)

    monkeypatch.setattr(fit_module, "per_corpus_macro_f1", spy_scores)
    monkeypatch.setattr(LatinLanguageRouter, "fit", spy_fit)
    model, report = fit_sentiment(config, data, log=lambda _: None)
    by_language = report["ensemble"]["by_language"]
    assert by_language["router"]["train_rows"] == {"ary-Latn": 90, "en": 45, "fr": 45}
    assert by_language["router"]["dev_accuracy"] > 0.9
    assert set(by_language["latin_group_weights"]) == {"ary-Latn", "en", "fr"}
    assert by_language["dev"]["mean"] >= report["ensemble"]["dev"]["mean"] - 1e-9
    assert router_rows and all(rows <= train_texts for rows in router_rows)
    assert scored and all(texts <= dev_texts for texts in scored)
    if by_language["kept"]:
        assert isinstance(model, EnsembleSentimentClassifier) and model.router is not None
        assert model.latin_group_weights == by_language["latin_group_weights"]

    off, off_report = fit_sentiment(
        config.model_copy(update={"latin_weights_by_language": False}), data, log=lambda _: None
    )
    assert "by_language" not in off_report.get("ensemble", {})
    assert getattr(off, "router", None) is None


def test_the_darija_head_spells_train_and_routed_dev_rows_only(multilingual_frames, cache):
    config = tiny_sentiment_config(corpora=["afrisenti_ary", "umsab_xlm_t"])
    data = load_sentiment_data(config, cache, frames=multilingual_frames)
    assert data.encode is not None
    spelled: list[str] = []
    encode = data.encode

    def spy(name: str, texts: Sequence[str]) -> np.ndarray:
        spelled.extend(texts)
        return encode(name, texts)

    data.encode = spy
    model, report = fit_sentiment(config, data, log=lambda _: None)
    darija = report["ensemble"]["darija"]
    assert darija["train_rows"] == 90  # afrisenti's Latin-script Darija train rows, nothing else
    assert 0 < darija["dev_rows_routed"] <= 40
    assert set(darija["by_C"]) == {"0.3", "1.0", "3.0"}
    allowed = {arabizi_to_arabic(t) for t in data.train.prepared + data.dev.prepared}
    assert spelled and set(spelled) <= allowed
    assert (getattr(model, "darija_head", None) is not None) == darija["kept"]
    off, off_report = fit_sentiment(
        config.model_copy(update={"darija_view": False}), data, log=lambda _: None
    )
    assert "darija" not in off_report["ensemble"]
    assert getattr(off, "darija_head", None) is None


def test_the_darija_head_learns_from_real_latin_darija_corpus_rows():
    rows = [
        ("wach khoya zwin", "ary", "afrisenti_ary"),  # yes
        ("tsnit bzaf f lbaladiya", "ary-Latn", "seed_topics"),  # only with seed_rows
        ("khayb bzaf", "ary-Latn", "afrisenti_ary+arabizi"),  # augmented: never
        ("واش كاين شي حل", "ary", "afrisenti_ary"),  # Arabic script: never
        ("le service est lent", "fr", "umsab_xlm_t"),  # French: never
    ]
    frame = pd.DataFrame(rows, columns=["text", "language", "source"])
    split = Split(frame, prepare_texts(frame["text"].tolist()), np.zeros((5, 4), np.float32))
    assert list(darija_train_rows(split)) == [True, False, False, False, False]
    assert list(darija_train_rows(split, seed_rows=True)) == [True, True, False, False, False]


def routed_ensemble(
    frames: dict[str, pd.DataFrame],
    cache: EmbeddingCache,
    arabic_weight: float = 0.5,
    group_weights: dict[str, float] | None = None,
) -> tuple[SentimentConfig, SentimentData, EnsembleSentimentClassifier]:
    """A routed ensemble fit on the Arabizi/French/English frames, without a Darija head."""
    config = tiny_sentiment_config(corpora=["afrisenti_ary", "umsab_xlm_t"])
    data = load_sentiment_data(config, cache, frames=frames)
    head, _ = fit_embedding_sentiment(config, data, log=lambda _: None)
    text_head, _ = fit_tfidf_sentiment(config, data, log=lambda _: None)
    router, _ = fit_latin_router(data.train)
    assert router is not None
    weights = group_weights or {g: 0.5 for g in router.groups_}
    ensemble = EnsembleSentimentClassifier(
        head, text_head, arabic_weight, 0.5, 1.0, weights, router
    )
    return config, data, ensemble


def test_a_darija_ensemble_reads_the_arabic_spelling_and_round_trips(
    multilingual_frames, cache, encoder, tmp_path
):
    config, data, routed = routed_ensemble(multilingual_frames, cache)
    model, _ = fit_darija_head(config, data, routed, log=lambda _: None)
    assert model is not None and model.darija_head is not None
    assert model.input_kind == "embedding+text+arabizi"
    model.save(tmp_path / "model")
    loaded = EnsembleSentimentClassifier.load(tmp_path / "model")

    texts = prepare_texts(["wach khoya zwin bzaf", "le service est très mauvais", "سيء جدا"])
    embeddings = encoder.encode(texts)
    assert list(loaded.arabizi_rows(texts)) == [True, False, False]
    view = arabizi_view(loaded, texts, embeddings.shape[1], encoder.encode)
    assert view is not None and np.isnan(view[1:]).all()
    np.testing.assert_allclose(view[0], encoder.encode([arabizi_to_arabic(texts[0])])[0])
    expected = model.predict_proba(head_inputs(model, texts, embeddings, None, view))
    np.testing.assert_allclose(
        loaded.predict_proba(head_inputs(loaded, texts, embeddings, None, view)),
        expected,
        atol=1e-5,
    )
    # the Darija row's scores follow its spelling; the others' do not read it
    other = view.copy()
    other[0] = encoder.encode(["مزيان بزاف"])[0]
    before, _ = loaded.member_log_proba((embeddings, texts, view))
    after, _ = loaded.member_log_proba((embeddings, texts, other))
    assert not np.allclose(after[0], before[0])
    np.testing.assert_allclose(after[1:], before[1:])
    with pytest.raises(ValueError, match="Arabic-spelling"):
        loaded.predict_proba((embeddings, texts, np.full_like(view, np.nan)))
    with pytest.raises(TypeError, match="arabizi"):
        loaded.predict_proba((embeddings, texts))
    with pytest.raises(ValueError, match="needs arabizi_view"):
        head_inputs(loaded, texts, embeddings)


def test_a_darija_head_on_a_published_ensemble_changes_only_latin_darija_rows(
    multilingual_frames, cache, encoder
):
    weights = {"ary-Latn": 0.5, "en": 0.7, "fr": 0.2}
    config, data, base = routed_ensemble(multilingual_frames, cache, 0.4, weights)
    head, text_head = base.embedding_head, base.text_head
    model, _ = fit_darija_head(config, data, base, log=lambda _: None, tune=["ary-Latn"])
    assert model is not None and model.darija_head is not None
    assert model.arabic_weight == 0.4
    assert {g: w for g, w in (model.latin_group_weights or {}).items() if g != "ary-Latn"} == {
        "en": 0.7,
        "fr": 0.2,
    }
    texts = prepare_texts(["le service est très mauvais", "the service is great", "سيء جدا"])
    embeddings = encoder.encode(texts)
    view = arabizi_view(model, texts, embeddings.shape[1], encoder.encode)
    assert list(model.predict((embeddings, texts, view))) == list(base.predict((embeddings, texts)))
    with pytest.raises(ValueError, match="router"):
        fit_darija_on(EnsembleSentimentClassifier(head, text_head), config, data)
    with pytest.raises(ValueError, match="already has a Darija head"):
        fit_darija_on(model, config, data)


def test_embeddings_are_encoded_once_and_cached(frames, cache, encoder):
    config = tiny_sentiment_config()
    load_sentiment_data(config, cache, frames=frames)
    calls = encoder.calls
    assert calls > 0
    load_sentiment_data(config, cache, frames=frames)
    assert encoder.calls == calls
    assert sorted(p.name for p in cache.directory.glob("*.npy"))[0].startswith("afrisenti_ary-dev-")


def test_heads_receive_what_their_input_kind_asks_for(frames):
    texts = ["zwin", "khayb", "wach"]
    embeddings = np.eye(3, 8, dtype=np.float32)
    train = frames["mac"][frames["mac"]["split"] == "train"]
    tfidf = TfidfSentimentClassifier(min_df=1, calibrate=False).fit(train["text"], train["label"])
    head = EmbeddingSentimentClassifier().fit(
        np.random.default_rng(0).normal(size=(60, 8)), train["label"].tolist()
    )
    layers = np.stack([embeddings, embeddings], axis=1)
    assert head_inputs(tfidf, texts, embeddings) == texts
    assert head_inputs(head, texts, embeddings, layers) is embeddings
    with pytest.raises(ValueError, match="needs encoder embedding"):
        head_inputs(head, texts, None)

    class Both:
        input_kind = "embedding+text"

    class LayersAndText:
        input_kind = "layers+text"

    pair = head_inputs(Both(), texts, embeddings)
    assert pair[0] is embeddings and pair[1] == texts
    layered = head_inputs(LayersAndText(), texts, embeddings, layers)
    assert layered[0] is layers and layered[1] == texts
    with pytest.raises(ValueError, match="needs encoder layers"):
        head_inputs(LayersAndText(), texts, embeddings)


@pytest.fixture
def database(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'sawt.db'}"
    engine = make_engine(url)
    upgrade(engine)
    corrections = [
        ("zwin bzaf merci l'accueil", "positive", ["praise"]),
        ("khlest 3 merrat nfs lfactura", "negative", ["fees"]),
        ("HELD-OUT text that is in a test split", "negative", ["delays"]),
    ]
    with session_scope(make_session_factory(engine)) as session:
        key = create_key(session, role=Role.analyst, pepper="p" * 32)
        ministry = create_key(session, role=Role.ministry, pepper="p" * 32, tenant_name="t1")
        from service.batches.models import Batch
        from service.tenants.models import Tenant

        tenant = session.query(Tenant).filter_by(name=ministry.tenant).one()
        session.add(Batch(id="b1", tenant_id=tenant.id, source_format="json"))
        session.flush()
        for text, sentiment, topics in corrections:
            complaint = Complaint(tenant_id=tenant.id, batch_id="b1", text=text)
            session.add(complaint)
            session.flush()
            session.add(
                LabelCorrection(
                    complaint_id=complaint.id,
                    sentiment=sentiment,
                    topics=topics,
                    corrected_by=key.key_id,
                )
            )
    engine.dispose()
    return url


def test_corrections_go_to_training_and_never_to_test(database, frames, cache):
    held_out = "HELD-OUT text that is in a test split"
    frames["mac"].loc[frames["mac"].index[-1], "text"] = held_out  # a test row
    corrections = load_corrections(database)
    assert len(corrections) == 3
    test_texts = [t for f in frames.values() for t in f.loc[f["split"] != "train", "text"]]
    frame = corrections_frame(
        corrections,
        "sentiment",
        exclude_texts=test_texts,
        labels=["negative", "neutral", "positive"],
    )
    assert len(frame) == 2
    assert held_out not in set(frame["text"])
    assert set(frame["split"]) == {"train"}

    config = tiny_sentiment_config(with_corrections=True, corrections_weight=3.0)
    data = load_sentiment_data(config, cache, frames=frames, corrections=frame)
    assert data.corrections == 2
    train_sources = data.train.frame["source"]
    assert (train_sources == "corrections").sum() == 2
    assert "corrections" not in set(data.dev.frame["source"])
    assert held_out not in set(data.train.frame["text"])
    weights = row_weights(data.train.frame, config.balance, config.corrections_weight)
    np.testing.assert_allclose(weights[(train_sources == "corrections").to_numpy()], 3.0)


def test_the_seed_set_weighs_a_set_share_of_one_corpus_however_many_lines_it_has():
    def frame(seed_lines: int) -> pd.DataFrame:
        sources = ["afrisenti_ary"] * 300 + ["mac"] * 100 + ["seed_topics"] * seed_lines
        sources += ["seed_topics+arabizi"] * 10 + ["corrections"] * 2
        return pd.DataFrame({"source": sources, "label": "neutral", "script": "Arab"})

    for seed_lines in (50, 500):
        data = frame(seed_lines)
        weights = row_weights(data, "corpus", 2.0, seed_share=0.2)
        sources = data["source"].to_numpy()
        one_corpus = weights[sources == "mac"].sum()
        assert one_corpus == pytest.approx(200.0)  # 400 corpus rows, two corpora
        seed = np.char.startswith(sources.astype(str), "seed_topics")
        assert weights[seed].sum() == pytest.approx(0.2 * one_corpus)
        np.testing.assert_allclose(weights[sources == "corrections"], 2.0)
        # without a share, each seed line weighs 1, as before
        np.testing.assert_allclose(row_weights(data, "corpus", 2.0)[seed], 1.0)


def test_topic_corrections_keep_only_known_topics(database):
    frame = corrections_frame(load_corrections(database), "topics", labels=["fees", "praise"])
    assert sorted(t for ts in frame["topics"] for t in ts) == ["fees", "praise"]


@pytest.fixture
def seed() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    rows = []
    for i in range(90):
        topic = list(TOPIC_WORDS)[i % 3]
        noise = " ".join(rng.choice(["l", "f", "dyal", "had"], size=2))
        rows.append(
            {
                "text": f"{TOPIC_WORDS[topic]} {noise} {i}",
                "topics": [topic],
                "language": ["ar", "fr"][i % 2],
                "sentiment": "negative",
                "split": "test" if i % 5 == 0 else "train",
                "source": "seed",
            }
        )
    return pd.DataFrame(rows)


@pytest.mark.parametrize(
    ("encoder_layers", "embedding_head"),
    [([6, 8, 10, 12], "mlp"), ([6, 8, 10, 12], "logistic"), (None, "mlp"), (None, "logistic")],
)
def test_tiny_topics_run_trains_on_train_only_and_evaluates(
    seed, cache, tmp_path, monkeypatch, encoder_layers, embedding_head
):
    monkeypatch.setattr("training.baseline.TAXONOMY", ("delays", "fees", "praise"))
    config = TopicsConfig(
        C_grid=[4.0],
        tfidf_C_grid=[4.0],
        cv=3,
        weight_grid=[0.0, 0.5, 1.0],
        encoder_layers=encoder_layers,
        embedding_head=embedding_head,
    )
    data = load_topics_data(config, cache, seed=seed)
    assert len(data.train) == int((seed["split"] == "train").sum())
    assert (data.train.layers is None) == (encoder_layers is None)
    model, report = fit_topics(config, data, log=lambda _: None)
    assert report["embedding_head"]["encoder_layers"] == encoder_layers
    kind = {"mlp": "mlp-topics", "logistic": "embedding-topics"}[embedding_head]
    assert report["embedding_head"]["kind"] == kind
    registry = Registry(tmp_path / "registry")
    meta = registry.publish(
        model, task="topics", metrics={"macro_f1": report["cv_macro_f1"]}, primary_metric="macro_f1"
    )
    breakdown = report["cv_breakdown"]
    assert set(breakdown["by_language"]) == {"ar", "fr"}
    assert set(breakdown["by_topic"]) == {"delays", "fees", "praise"}
    loaded, _ = registry.load("topics", meta.version)
    assert loaded.input_kind.startswith("embedding" if encoder_layers is None else "layers")
    evaluation = evaluate_topics(loaded, EvaluationData(cache, _seed=seed))
    assert evaluation["macro_f1"] > 0.8
    assert set(evaluation["test"]["per_language"]) == {"ar", "fr"}
    assert evaluation["test"]["overall"]["n"] == int((seed["split"] == "test").sum())


def test_training_gates_promotion_on_scores_computed_here_not_stored_ones(
    seed, cache, tmp_path, monkeypatch
):
    """int8 encoders score differently on different CPUs: the served version's stored score
    (here made stale on purpose) must not decide a promotion, nor fill the side-by-side."""
    from training.cli import train_task

    monkeypatch.setattr("training.baseline.TAXONOMY", ("delays", "fees", "praise"))
    registry = Registry(tmp_path / "registry")
    data = EvaluationData(cache, data_dir=tmp_path / "no-corpora", _seed=seed)
    tiny = {"tfidf_C_grid": [4.0], "cv": 3, "weight_grid": [0.0, 0.5, 1.0]}
    good = TopicsConfig(C_grid=[4.0], negatives_per_corpus=0, **tiny)
    _, served_metrics, served = train_task("topics", good, registry=registry, data=data)
    assert served is not None and registry.promoted_version("topics") == served.version
    directory = registry.path("topics", served.version)
    for name in ("meta.json", "evaluation.json"):
        stale = json.loads((directory / name).read_text())
        (stale["metrics"] if name == "meta.json" else stale)["macro_f1"] = 0.0
        (directory / name).write_text(json.dumps(stale))

    # a worse candidate: the same test rows, train rows with shuffled topics
    noisy = seed.copy()
    train_rows = np.flatnonzero(noisy["split"] == "train")
    shuffled = np.random.default_rng(0).permutation(train_rows)
    noisy.loc[train_rows, "topics"] = pd.Series(
        noisy.loc[shuffled, "topics"].to_numpy(), train_rows
    )
    noisy_data = EvaluationData(cache, data_dir=tmp_path / "no-corpora", _seed=noisy)
    time.sleep(1.1)  # versions are named by the second
    _, metrics, candidate = train_task("topics", good, registry=registry, data=noisy_data)
    assert candidate is not None
    assert metrics["macro_f1"] < served_metrics["macro_f1"]
    assert registry.promoted_version("topics") == served.version
    paired = metrics["versus_served"]
    assert paired["version"] == served.version
    # what the registry's gate reads: both scores from this run, not the stale stored 0.0
    assert paired["primary"] == {
        "metric": "macro_f1",
        "candidate": metrics["macro_f1"],
        "served": pytest.approx(served_metrics["macro_f1"]),
    }
    by_group = {row["group"]: row for row in paired["groups"]}
    assert set(by_group) == {"overall", "per_language/ar", "per_language/fr"}
    overall = by_group["overall"]
    assert overall["delta"] == pytest.approx(
        metrics["macro_f1"] - served_metrics["macro_f1"], abs=1e-3
    )
    assert overall["worse"] and overall["ci95"][1] < 0
    side_by_side = (registry.path("topics", candidate.version) / "evaluation.md").read_text()
    assert (
        f"| overall | macro_f1 | {metrics['macro_f1']:.3f} | {served_metrics['macro_f1']:.3f}"
        in (side_by_side)
    )


def test_a_variety_that_falls_blocks_promotion_even_when_the_mean_holds(
    seed, cache, tmp_path, monkeypatch
):
    from training import evaluate
    from training.cli import train_task

    monkeypatch.setattr("training.baseline.TAXONOMY", ("delays", "fees", "praise"))
    registry = Registry(tmp_path / "registry")
    data = EvaluationData(cache, data_dir=tmp_path / "no-corpora", _seed=seed)
    config = TopicsConfig(
        C_grid=[4.0], tfidf_C_grid=[4.0], cv=3, weight_grid=[0.0, 0.5], negatives_per_corpus=0
    )
    _, _, served = train_task("topics", config, registry=registry, data=data)
    assert served is not None

    real = evaluate.paired_deltas

    def fr_falls(*args, **kwargs):
        rows = real(*args, **kwargs)
        for row in rows:
            if row["group"] == "per_language/fr":
                row.update(delta=-0.2, ci95=[-0.3, -0.1], worse=True)
        return rows

    monkeypatch.setattr(evaluate, "paired_deltas", fr_falls)
    for force in (False, True):
        time.sleep(1.1)  # versions are named by the second
        _, metrics, candidate = train_task(
            "topics", config, registry=registry, data=data, force=force
        )
        assert candidate is not None
        by_group = {row["group"]: row for row in metrics["versus_served"]["groups"]}
        assert by_group["overall"]["delta"] == 0 and not by_group["overall"]["worse"]
        promoted = registry.promoted_version("topics")
        assert promoted == (candidate.version if force else served.version)


def test_bootstrap_f1_matches_scikit_learn_on_every_resample():
    from sklearn.metrics import f1_score

    from training.evaluate import weighted_f1_scores

    rng = np.random.default_rng(1)
    labels = rng.choice(["negative", "neutral", "positive"], size=60)
    guesses = rng.choice(["negative", "neutral", "positive"], size=60)
    topics, topic_guesses = rng.random((60, 4)) < 0.3, rng.random((60, 4)) < 0.3
    for _ in range(5):
        rows = rng.integers(0, 60, 60)
        weights = np.bincount(rows, minlength=60)[None, :].astype(float)
        for average in ("macro", "weighted"):
            expected = f1_score(
                labels[rows], guesses[rows], labels=sorted(set(labels)), average=average
            )
            got = weighted_f1_scores(labels, guesses, weights, average)[0]
            assert got == pytest.approx(expected)
        expected = f1_score(topics[rows], topic_guesses[rows], average="macro", zero_division=0)
        assert weighted_f1_scores(topics, topic_guesses, weights, "macro")[0] == pytest.approx(
            expected
        )


def test_paired_deltas_flag_a_group_only_when_resampling_cannot_explain_the_drop():
    from training.evaluate import paired_deltas

    rng = np.random.default_rng(0)
    truth = rng.choice(["negative", "neutral", "positive"], size=400)

    def noisy(share_right: float) -> np.ndarray:
        wrong = rng.random(len(truth)) > share_right
        return np.where(wrong, rng.choice(["negative", "neutral", "positive"], len(truth)), truth)

    served_en, served_fr = noisy(0.9), noisy(0.8)
    served = {"umsab_xlm_t/en": (truth, served_en), "umsab_xlm_t/fr": (truth, served_fr)}
    fr_one_row_off = served_fr.copy()
    fr_one_row_off[0] = "neutral" if fr_one_row_off[0] != "neutral" else "positive"
    candidate = {"umsab_xlm_t/en": (truth, noisy(0.6)), "umsab_xlm_t/fr": (truth, fr_one_row_off)}
    rows = {row["group"]: row for row in paired_deltas("sentiment", candidate, served)}
    assert rows["umsab_xlm_t/en"]["worse"] and rows["umsab_xlm_t/en"]["delta"] < -0.15
    assert not rows["umsab_xlm_t/fr"]["worse"] and abs(rows["umsab_xlm_t/fr"]["delta"]) < 0.01
    with pytest.raises(ValueError, match="different rows"):
        paired_deltas("sentiment", {"umsab_xlm_t/en": (truth[::-1], served_en)}, served)


CHATTER = ["match dyal lbarca lyoum", "film jdid f cinema", "chta kat7 f lbhar", "l3id mabrouk"]


def chatter(n: int, start: int = 0) -> pd.DataFrame:
    """Off-domain rows shaped like ``load_topic_negatives``'s: tweets that name no service."""
    texts = [f"{CHATTER[i % len(CHATTER)]} {i}" for i in range(start, start + n)]
    return pd.DataFrame(
        {"text": texts, "language": "ary-Latn", "topics": [[] for _ in texts], "negative": True}
    )


def test_negatives_are_fit_on_but_topic_f1_and_cuts_come_from_complaints(seed, cache, monkeypatch):
    monkeypatch.setattr("training.baseline.TAXONOMY", ("delays", "fees", "praise"))
    # the logistic member: on these 72 rows it tags chatter without negatives, so their effect
    # shows (the MLP tags none either way at this size)
    config = TopicsConfig(
        C_grid=[4.0],
        tfidf_C_grid=[4.0],
        cv=3,
        weight_grid=[0.0, 0.5, 1.0],
        embedding_head="logistic",
    )
    held_out = chatter(40, start=1000)
    tagged = {}
    for negatives in (None, chatter(60)):
        data = load_topics_data(config, cache, seed=seed, negatives=negatives)
        model, report = fit_topics(config, data, log=lambda _: None)
        texts = prepare_texts(held_out["text"].tolist())
        layers = cache.get_layers("held-out-chatter", texts)
        inputs = head_inputs(model, texts, layers[:, -1], layers)
        tagged[negatives is None] = float(np.asarray(model.predict(inputs)).any(axis=1).mean())
        # the negatives' variety is not a variety of the seed set: never scored for F1
        assert set(report["cv_breakdown"]["by_language"]) == {"ar", "fr"}
    assert report["negatives"]["rows"] == 60
    assert 0.0 <= report["negatives"]["cv_tagged"] <= 1.0
    assert tagged[False] < tagged[True], tagged


needs_corpora = pytest.mark.skipif(
    not data_dir().is_dir(), reason=f"public corpora not found in {data_dir()} (set SAWT_DATA_DIR)"
)


@needs_corpora
def test_topic_negatives_are_drawn_from_train_splits_and_carry_no_topic():
    negatives = load_topic_negatives(TopicsConfig(negatives_per_corpus=7))
    assert negatives["source"].value_counts().to_dict() == {"afrisenti_ary": 7, "mac": 7}
    assert all(topics == [] for topics in negatives["topics"]) and negatives["negative"].all()
    for name in ("afrisenti_ary", "mac"):
        corpus = load_corpus(name)
        held_out = set(corpus.loc[corpus["split"] != "train", "text"])
        assert not held_out & set(negatives.loc[negatives["source"] == name, "text"])
    assert load_topic_negatives(TopicsConfig(negatives_per_corpus=0)).empty


@needs_corpora
def test_topic_evaluation_reports_how_many_general_tweets_get_a_topic(seed, cache, monkeypatch):
    monkeypatch.setattr("training.baseline.TAXONOMY", ("delays", "fees", "praise"))
    config = TopicsConfig(C_grid=[4.0], tfidf_C_grid=[4.0], cv=3, weight_grid=[0.0, 0.5, 1.0])
    model, _ = fit_topics(config, load_topics_data(config, cache, seed=seed), log=lambda _: None)
    off_domain = evaluate_topics(model, EvaluationData(cache, _seed=seed))["off_domain"]
    assert off_domain["available"]
    groups = off_domain["groups"]
    assert {"afrisenti_ary/ary", "afrisenti_ary/ary-Latn", "mac/ar", "mac/ary"} <= set(groups)
    assert off_domain["n"] == groups["afrisenti_ary"]["n"] + groups["mac"]["n"]
    assert 0.0 <= off_domain["tagged"] <= 1.0


def test_topic_evaluation_says_why_off_domain_tagging_was_not_measured(
    seed, cache, monkeypatch, tmp_path
):
    monkeypatch.setattr("training.baseline.TAXONOMY", ("delays", "fees", "praise"))
    config = TopicsConfig(C_grid=[4.0], tfidf_C_grid=[4.0], cv=3, weight_grid=[0.0, 0.5, 1.0])
    model, _ = fit_topics(config, load_topics_data(config, cache, seed=seed), log=lambda _: None)
    data = EvaluationData(cache, data_dir=tmp_path / "no-corpora", _seed=seed)
    off_domain = evaluate_topics(model, data)["off_domain"]
    assert off_domain["available"] is False and "SAWT_DATA_DIR" in off_domain["reason"]


def test_topic_cv_breakdown_scores_each_variety_on_its_own_rows():
    labels = ["delays", "fees"]
    y = np.array([[1, 0], [0, 1], [1, 0], [0, 1]], dtype=np.int8)
    right = y.astype(np.float64)
    scores = np.vstack([right[:2], 1.0 - right[2:]])  # ar rows right, fr rows swapped
    breakdown = topic_cv_breakdown(y, scores, [0.5, 0.5], ["ar", "ar", "fr", "fr"], labels)
    assert breakdown["by_language"] == {"ar": 1.0, "fr": 0.0}
    assert breakdown["by_language_topic"]["fr"] == {"delays": 0.0, "fees": 0.0}
    assert breakdown["by_topic"] == {"delays": 0.5, "fees": 0.5}


def test_repeated_out_of_fold_scores_average_fold_draws_of_single_members():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 6))
    y = (x[:, :2] > 0).astype(np.int8)
    head = MlpTopicClassifier(hidden=8, epochs=5, cv=3, random_state=4, bag=2)
    single = [
        MlpTopicClassifier(hidden=8, epochs=5, cv=3, random_state=seed).out_of_fold_scores(x, y)
        for seed in (4, 5)
    ]
    np.testing.assert_allclose(repeated_oof_scores(head, x, y, None, 2), np.mean(single, axis=0))
    once = MlpTopicClassifier(hidden=8, epochs=5, cv=3, random_state=4)
    np.testing.assert_allclose(repeated_oof_scores(once, x, y, None, 1), single[0])


def test_threshold_shrinkage_pulls_cuts_toward_their_mean_and_keeps_their_order():
    tuned = np.array([0.2, 0.4, 0.9])
    assert np.allclose(shrink_thresholds(tuned, 0.0), tuned)
    assert np.allclose(shrink_thresholds(tuned, 1.0), tuned.mean())
    half = shrink_thresholds(tuned, 0.5)
    assert np.allclose(half, (tuned + tuned.mean()) / 2)
    assert list(np.argsort(half)) == list(np.argsort(tuned))


def test_config_is_typed_and_round_trips(tmp_path: Path):
    path = tmp_path / "config.json"
    tiny_sentiment_config(seed=7).save(path)
    assert load_config(path, "sentiment") == tiny_sentiment_config(seed=7)
    path.write_text(json.dumps({"C_gird": [1.0]}))
    with pytest.raises(ValueError, match="C_gird"):
        load_config(path, "sentiment")
    with pytest.raises(ValueError, match="not 'topics'"):
        tiny_sentiment_config().save(path)
        load_config(path, "topics")


def test_arabizi_transliteration_uses_chat_digits():
    assert arabic_to_arabizi("عحق") == "379"
    assert arabic_to_arabizi("واحد") == "wa7d"


def test_seed_topics_follow_their_card_and_test_lines_are_not_copies_of_train():
    """The data card's promises, checked on the shipped files (README in datasets/seed_topics)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics.pairwise import cosine_similarity

    seed = load_seed_topics()
    assert set(seed["language"]) == {"ar", "ary", "ary-Latn", "fr", "en"}
    assert seed["id"].is_unique and seed["text"].is_unique
    assert set(seed["split"]) == {"train", "test"}
    assert all(
        row and len(set(row)) == len(row) and set(row) <= set(TAXONOMY) for row in seed["topics"]
    )
    assert seed["text"].str.split().str.len().between(4, 70).all()
    for (language, split), group in seed.groupby(["language", "split"]):
        counts = pd.Series([t for ts in group["topics"] for t in ts]).value_counts()
        assert counts.reindex(list(TAXONOMY), fill_value=0).min() >= (
            12 if split == "train" else 6
        ), (
            language,
            split,
        )
    for language, group in seed.groupby("language"):
        vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True)
        vectorizer.fit(group["text"])
        train = vectorizer.transform(group.loc[group["split"] == "train", "text"])
        test = vectorizer.transform(group.loc[group["split"] == "test", "text"])
        assert cosine_similarity(train, test).max() < 0.6, language


def test_topic_augmentations_spell_arabic_darija_rows_in_arabizi(cache):
    frame = pd.DataFrame(
        {
            "text": ["بقيت كنتسنى شهر كامل", "انتظرت شهرا كاملا", "tsnit chhar kamel", "j'attends"],
            "language": ["ary", "ar", "ary-Latn", "fr"],
            "topics": [["delays"]] * 4,
        }
    )
    train = load_topics_data(TopicsConfig(), cache, seed=frame.assign(split="train")).train
    augmented = topic_augmentations(train, seed=0)
    assert [row for row, _ in augmented] == [0]
    assert augmented[0][1].isascii() and "chhr kaml" in augmented[0][1]


def test_pairing_groups_join_cross_language_retellings_only():
    rng = np.random.default_rng(0)
    a, b, c = rng.normal(size=(3, 16))
    noise = rng.normal(scale=0.01, size=(2, 16))
    embeddings = np.stack([a, a + noise[0], b, b + noise[1], c])
    languages = ["ar", "fr", "ar", "ar", "en"]
    groups = pairing_groups(embeddings, languages, threshold=0.9)
    assert groups[0] == groups[1]  # a line and its French retelling share a fold
    assert groups[2] != groups[3]  # same-language look-alikes are separate lines
    assert len({groups[0], groups[2], groups[3], groups[4]}) == 4
    assert len(set(pairing_groups(embeddings, languages, threshold=1.0).tolist())) == 5


def test_retraining_without_a_config_uses_the_encoder_of_the_promoted_heads(tmp_path):
    from tests.unit.test_registry import fitted
    from training.cli import served_adapter

    registry = Registry(tmp_path / "artifacts")
    assert served_adapter(registry) is None
    registry.publish(fitted("fees"), task="langid", version="text-only", promote=True)
    assert served_adapter(registry) is None
    registry.publish(
        fitted("negative"),
        task="sentiment",
        version="s1",
        extra={"training_config": {"encoder_adapter": "lora-a"}},
        promote=True,
    )
    assert served_adapter(registry) == "lora-a"


def test_macro_f1_interval_brackets_the_score_and_narrows_with_more_rows():
    from training.baseline import macro_f1_interval, topic_scores

    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, size=(400, 4)).astype(np.int8)
    noisy = np.where(rng.random(truth.shape) < 0.2, 1 - truth, truth).astype(np.int8)
    scores = topic_scores(truth, noisy, ["a", "b", "c", "d"])
    low, high = scores["macro_f1_ci95"]
    assert low < scores["macro_f1"] < high
    small_low, small_high = macro_f1_interval(truth[:50], noisy[:50])
    assert small_high - small_low > high - low
    assert macro_f1_interval(truth, truth) == [1.0, 1.0]
