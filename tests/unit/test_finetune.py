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
