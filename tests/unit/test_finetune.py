"""LoRA fine-tuning of the encoder: a tiny real run on a few rows, on the CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from training.config import FinetuneConfig
from training.finetune import (
    ADAPTER_DIR,
    FinetunedSentiment,
    load_finetune_data,
    new_model,
    train_model,
)

WORDS = {
    "negative": ["khayb", "mauvais", "terrible", "nul", "awful", "ma3jbnich"],
    "neutral": ["wach", "kayn", "info", "horaires", "question", "demain"],
    "positive": ["zwin", "merci", "top", "excellent", "great", "bravo"],
}


def _frames(train: int, dev: int) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(0)
    out = {}
    for corpus, script in (("afrisenti_ary", "Latn"), ("mac", "Arab")):
        rows = []
        for split, n in (("train", train), ("dev", dev), ("test", dev)):
            for i in range(n):
                label = ["negative", "neutral", "positive"][i % 3]
                words = " ".join(rng.choice(WORDS[label], size=3))
                rows.append(
                    {
                        "text": f"{words} {split} {i}",
                        "label": label,
                        "language": "ary",
                        "script": "Latn" if i % 4 else script,
                        "split": split,
                        "source": corpus,
                    }
                )
        out[corpus] = pd.DataFrame(rows)
    return out


def _config(**overrides: object) -> FinetuneConfig:
    values: dict[str, object] = {
        "corpora": ["afrisenti_ary", "mac"],
        "seed_sentiment": False,
        "lora_r": 8,
        "lora_alpha": 16,
        "lora_dropout": 0.0,
        "head_dropout": 0.0,
        "max_length": 32,
        "batch_size": 12,
        "epochs": 4,
        "max_steps": 8,
        "eval_every": 8,
        "warmup_ratio": 0.0,
        "learning_rate": 5e-4,
        "head_learning_rate": 5e-3,
        "evaluate_test": False,
    }
    values.update(overrides)
    return FinetuneConfig.model_validate(values)


def _weighted_loss(model: FinetunedSentiment, frame: pd.DataFrame) -> float:
    proba = model.predict_proba(frame["text"].tolist())
    index = [model.labels.index(label) for label in frame["label"]]
    picked = proba[np.arange(len(frame)), index]
    weights = frame["weight"].to_numpy()
    return float(-(weights * np.log(picked)).sum() / weights.sum())


@pytest.fixture(scope="module")
def model_dir() -> Path:
    from models.encoder import build

    return build.build(show_progress=False)


@pytest.fixture(scope="module")
def trained(model_dir: Path):
    config = _config()
    data = load_finetune_data(config, frames=_frames(train=12, dev=6))
    model = new_model(config, model_dir=model_dir)
    before = _weighted_loss(model, data.train)
    report = train_model(model, data, config, log=lambda _: None, progress=False)
    after = _weighted_loss(model, data.train)
    return config, data, model, report, before, after


@pytest.mark.encoder
@pytest.mark.slow
def test_a_few_steps_lower_the_training_loss(trained):
    _, data, _, report, before, after = trained
    assert report["steps"] == 8
    assert [entry["step"] for entry in report["history"]] == [8]
    assert report["best_step"] == 8  # one dev score: the trained state is the one kept
    assert report["train_rows"] == len(data.train) == 24
    assert after < before


@pytest.mark.encoder
@pytest.mark.slow
def test_saved_adapter_and_head_reload_to_the_same_predictions(trained, model_dir, tmp_path):
    config, data, model, _, _, _ = trained
    model.save(tmp_path / "run", config)
    assert (tmp_path / "run" / ADAPTER_DIR / "adapter_model.safetensors").stat().st_size < 10e6
    loaded = FinetunedSentiment.load(tmp_path / "run", model_dir=model_dir)
    texts = [*data.dev["text"], "zwin bzaf merci", "ⴰⵣⵓⵍ khayb"]
    np.testing.assert_allclose(
        loaded.predict_proba(texts), model.predict_proba(texts), atol=1e-5, rtol=0
    )
    # the adapter matters: an untrained one on the same base predicts something else
    fresh = new_model(config, model_dir=model_dir)
    fresh.head.load_state_dict(model.head.state_dict())
    assert not np.allclose(fresh.predict_proba(texts), model.predict_proba(texts), atol=1e-4)


def test_subsampling_keeps_every_corpus_and_script_and_never_mixes_splits():
    frames = _frames(train=40, dev=20)
    config = _config(max_rows_per_corpus=10, max_dev_rows_per_corpus=8)
    data = load_finetune_data(config, frames=frames)
    for corpus, frame in frames.items():
        train = data.train[data.train["source"] == corpus]
        assert len(train) == 10
        assert set(train["script"]) == set(frame["script"])
        assert len(data.dev[data.dev["source"] == corpus]) == 8
    assert all(" train " in text for text in data.train["text"])
    assert not any(" train " in text for text in data.dev["text"])
    assert data.train["weight"].mean() == pytest.approx(1.0)


def _seed_topics() -> pd.DataFrame:
    """A seed-set-shaped frame: two topics, train and test rows told apart by their text."""
    from training.baseline import TAXONOMY

    words = {TAXONOMY[0]: "queue guichet attente", TAXONOMY[1]: "facture prix tarif"}
    rows = []
    for split, n in (("train", 8), ("test", 4)):
        for i in range(n):
            topic = TAXONOMY[i % 2]
            rows.append(
                {
                    "text": f"{words[topic]} {split} {i}",
                    "language": "fr",
                    "topics": [topic],
                    "sentiment": "negative",
                    "split": split,
                }
            )
    return pd.DataFrame(rows)


def test_the_topic_loss_sees_only_the_seed_sets_train_rows():
    config = _config(topic_weight=1.0)
    data = load_finetune_data(config, frames=_frames(train=6, dev=3), seed_frame=_seed_topics())
    assert data.topics is not None and len(data.topics) == 8
    assert all(" train " in text for text in data.topics["text"])
    assert load_finetune_data(_config(), frames=_frames(train=6, dev=3)).topics is None


@pytest.mark.encoder
@pytest.mark.slow
def test_the_topic_loss_trains_its_own_head_and_is_recorded(model_dir: Path):
    config = _config(topic_weight=1.0, topic_batch_size=8, max_steps=8, eval_every=4)
    data = load_finetune_data(config, frames=_frames(train=12, dev=6), seed_frame=_seed_topics())
    model = new_model(config, model_dir=model_dir)
    report = train_model(model, data, config, log=lambda _: None, progress=False)
    first, second = (entry["topic_loss"] for entry in report["history"])
    assert second < first  # the throwaway topic head (and the adapter) learn the seed topics
    plain = train_model(
        new_model(_config(), model_dir=model_dir),
        load_finetune_data(_config(), frames=_frames(train=12, dev=6)),
        _config(),
        log=lambda _: None,
        progress=False,
    )
    assert plain["history"][-1]["topic_loss"] is None


@pytest.mark.encoder
@pytest.mark.slow
def test_geometry_compares_the_adapted_embedding_with_the_base(trained, model_dir: Path):
    from training.finetune import embedding_geometry

    config, _, model, _, _, _ = trained
    complaints = pd.DataFrame(
        {
            "text": [f"{w} {i}" for i in range(6) for w in ("train late again", "bank fees")],
            "domain": ["transport", "banking"] * 6,
        }
    )
    untouched = embedding_geometry(
        new_model(config, model_dir=model_dir), _seed_topics(), complaints
    )
    proxy, topics = untouched["discovery_proxy"], untouched["seed_topic_head"]
    assert proxy["rows"] == 12 and proxy["k"] == 2
    assert proxy["drift"] == pytest.approx(0.0, abs=1e-4)  # a fresh adapter changes nothing
    assert proxy["kmeans_nmi_base"] == proxy["kmeans_nmi_adapted"]
    assert topics["macro_f1_base"] == topics["macro_f1_adapted"]
    assert set(topics["by_language_base"]) == {"fr"}
    moved = embedding_geometry(model, _seed_topics(), "complaints corpus absent")
    assert moved["discovery_proxy"] == {"skipped": "complaints corpus absent"}
    assert moved["seed_topic_head"]["drift"] > 0  # eight trained steps moved it


# -- publishing an adapter and serving the merged encoder --------------------------------


@pytest.fixture(scope="module")
def published(trained, model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """The tiny run's adapter published to a private adapters root and merged into a private
    cache (the base is linked in, not copied)."""
    from models.encoder import tuned
    from training.finetune import publish_adapter

    config, _, model, _, _, _ = trained
    root = tmp_path_factory.mktemp("adapters")
    cache = tmp_path_factory.mktemp("cache")
    (cache / "encoder").mkdir()
    (cache / "encoder" / model_dir.name).symlink_to(model_dir)
    experiment = tmp_path_factory.mktemp("experiment") / "sentiment-lora-20260101-000000"
    model.save(experiment, config)
    adapter = publish_adapter(experiment, root=root)
    merged = tuned.build_tuned(adapter.name, cache, root=root, show_progress=False)
    return model, root, cache, adapter, merged


def _tuned_embeddings(model: FinetunedSentiment, texts: list[str]) -> np.ndarray:
    import torch

    from models.encoder.encoder import mean_pool

    model.train(False)
    rows = []
    with torch.inference_mode():
        for ids in model.token_ids(texts):
            input_ids = torch.tensor([ids])
            mask = torch.ones_like(input_ids)
            hidden = model.encoder(input_ids=input_ids, attention_mask=mask).last_hidden_state
            rows.append(torch.nn.functional.normalize(mean_pool(hidden, mask), dim=-1)[0])
    return torch.stack(rows).numpy()


TEXTS = ["zwin bzaf merci", "الإدارة لا تجيب", "L'attente est interminable", "ⴰⵣⵓⵍ khayb"]


@pytest.mark.encoder
@pytest.mark.slow
def test_published_adapter_merges_into_an_encoder_that_embeds_as_the_tuned_model(
    published, model_dir: Path
):
    from models.encoder import Encoder, OnnxEncoder, tuned

    model, root, cache, adapter, merged = published
    assert adapter.name == "lora-20260101-000000"
    assert sum(f.stat().st_size for f in adapter.iterdir()) < 10e6
    assert merged == tuned.tuned_dir(adapter.name, cache)
    assert tuned.is_built(adapter.name, cache, root)
    # both add the E5 prefix and spell Tifinagh in Latin letters the same way
    texts = list(TEXTS)
    expected = _tuned_embeddings(model, texts)
    served = Encoder(merged, max_length=model.max_length).encode(texts)
    assert np.min(np.sum(served * expected, axis=1)) > 0.9999
    int8 = OnnxEncoder(merged, variant="int8", max_length=model.max_length).encode(texts)
    assert np.min(np.sum(int8 * served, axis=1)) > 0.97
    base = Encoder(model_dir, max_length=model.max_length).encode(texts)
    assert np.min(np.sum(base * served, axis=1)) < 0.99999  # the adapter changed the encoder
    before = (merged / "model.safetensors").stat().st_mtime_ns
    tuned.build_tuned(adapter.name, cache, root=root, show_progress=False)
    assert (merged / "model.safetensors").stat().st_mtime_ns == before  # current: not redone


@pytest.mark.encoder
@pytest.mark.slow
def test_a_damaged_or_foreign_adapter_is_refused_by_name(published, tmp_path: Path):
    import json
    import shutil

    from models.encoder import tuned

    _, _, cache, adapter, _ = published
    copy = tmp_path / "adapters"
    shutil.copytree(adapter, copy / "damaged")
    with (copy / "damaged" / "adapter_model.safetensors").open("ab") as fh:
        fh.write(b"\0")
    with pytest.raises(tuned.AdapterError, match=r"adapter_model\.safetensors is corrupt"):
        tuned.build_tuned("damaged", cache, root=copy, export=False)
    shutil.copytree(adapter, copy / "foreign")
    meta = json.loads((copy / "foreign" / "meta.json").read_text())
    meta["base_encoder_sha256"] = "0" * 64
    (copy / "foreign" / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(tuned.AdapterError, match="trained on base encoder 0000"):
        tuned.build_tuned("foreign", cache, root=copy, export=False)
    with pytest.raises(tuned.AdapterError, match="no readable"):
        tuned.build_tuned("absent", cache, root=copy, export=False)


@pytest.mark.encoder
@pytest.mark.slow
def test_training_can_continue_from_a_published_adapter(published, model_dir: Path):
    """`init_adapter` starts from the published weights (same embedding as the run that made
    them), and they train on: a continued run moves them again."""
    from models.encoder import tuned

    trained_model, root, _, adapter, _ = published
    config = _config(init_adapter=adapter.name, max_steps=4, eval_every=4)
    continued = new_model(config, model_dir=model_dir, adapters_root=root)
    texts = list(TEXTS)
    np.testing.assert_allclose(
        _tuned_embeddings(continued, texts), _tuned_embeddings(trained_model, texts), atol=1e-5
    )
    data = load_finetune_data(config, frames=_frames(train=12, dev=6))
    train_model(continued, data, config, log=lambda _: None, progress=False)
    assert not np.allclose(
        _tuned_embeddings(continued, texts), _tuned_embeddings(trained_model, texts), atol=1e-4
    )
    with pytest.raises(tuned.AdapterError, match="no readable"):
        new_model(_config(init_adapter="absent"), model_dir=model_dir, adapters_root=root)


def _drift(model: FinetunedSentiment, texts: list[str]) -> float:
    """Mean 1 - cosine between the tuned and the base encoder's pooled embeddings."""
    import torch

    model.train(False)
    with torch.inference_mode():
        ids = model.token_ids(texts)
        tuned = model.pooled(ids)
        with model.encoder.disable_adapter():
            base = model.pooled(ids)
    return float(1.0 - torch.nn.functional.cosine_similarity(tuned, base).mean())


@pytest.mark.encoder
@pytest.mark.slow
def test_the_anchor_keeps_the_tuned_embedding_nearer_the_base(trained, model_dir: Path):
    config, data, free, _, _, _ = trained
    anchored_config = config.model_copy(update={"anchor_weight": 50.0})
    anchored = new_model(anchored_config, model_dir=model_dir)
    report = train_model(anchored, data, anchored_config, log=lambda _: None, progress=False)
    assert report["history"][-1]["embedding_drift"] is not None
    texts = data.dev["text"].tolist()
    assert 0 < _drift(anchored, texts) < _drift(free, texts)
