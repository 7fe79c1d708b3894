"""The model registry: publish, validate at load, refuse worse promotions, roll back."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import ClassVar, Self

import pytest

from models.registry import (
    ArtifactError,
    PromotionRefused,
    Registry,
    register_model_kind,
)


@register_model_kind
class ConstantModel:
    """A tiny real model: predicts one label; enough to exercise the registry."""

    kind: ClassVar[str] = "test-constant"

    def __init__(self, label: str = "neutral") -> None:
        self.label = label

    def fit(self, texts: list[str], labels: list[str]) -> Self:
        self.labels_ = sorted(set(labels))
        self.label_ = max(set(labels), key=labels.count)
        return self

    def predict(self, texts: list[str]) -> list[str]:
        return [self.label_ for _ in texts]

    def save(self, directory: Path) -> None:
        (directory / "model.json").write_text(
            json.dumps({"label": self.label_, "labels": self.labels_})
        )

    @classmethod
    def load(cls, directory: Path) -> Self:
        data = json.loads((directory / "model.json").read_text())
        model = cls()
        model.label_, model.labels_ = data["label"], data["labels"]
        return model


def fitted(label: str) -> ConstantModel:
    return ConstantModel().fit(["a", "b", "c"], [label, label, "other"])


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry(tmp_path / "artifacts")


def publish(registry: Registry, label: str, score: float, version: str, **kw: object) -> None:
    registry.publish(
        fitted(label),
        task="sentiment",
        version=version,
        metrics={"macro_f1": score},
        primary_metric="macro_f1",
        promote=True,
        **kw,  # type: ignore[arg-type]
    )


def test_publish_then_load_round_trips(registry: Registry) -> None:
    publish(registry, "negative", 0.6, "v1")
    model, meta = registry.load("sentiment")
    assert model.predict(["x"]) == ["negative"]
    assert meta.version == "v1" and meta.kind == "test-constant"
    assert set(meta.files) == {"model.json"}
    assert "python" in meta.library_versions


def test_lower_scoring_promotion_is_refused_unless_forced(registry: Registry) -> None:
    publish(registry, "negative", 0.6, "v1")
    with pytest.raises(PromotionRefused, match="below"):
        publish(registry, "positive", 0.5, "v2")
    assert registry.promoted_version("sentiment") == "v1"
    registry.promote("sentiment", "v2", force=True)
    assert registry.promoted_version("sentiment") == "v2"


def paired(served: str, candidate: float, served_score: float, worse: str | None = None) -> dict:
    """A `versus_served` comparison as `sawt train` stores it."""
    groups = [
        {"group": g, "n": 100, "delta": -0.1 if g == worse else 0.01, "ci95": [-0.2, -0.05]
         if g == worse else [-0.02, 0.04], "worse": g == worse}
        for g in ("overall", "per_language/ar")
    ]  # fmt: skip
    primary = {"metric": "macro_f1", "candidate": candidate, "served": served_score}
    return {"version": served, "primary": primary, "groups": groups}


def publish_compared(registry: Registry, version: str, score: float, compared: dict) -> None:
    registry.publish(
        fitted("positive"),
        task="sentiment",
        version=version,
        metrics={"macro_f1": score, "versus_served": compared},
        primary_metric="macro_f1",
    )


def test_promotion_trusts_a_comparison_scored_beside_the_served_version(registry: Registry):
    """int8 scores differ between CPUs: the served version's score stored on another machine
    (0.9) must not refuse a candidate that beat it when both were scored on one machine."""
    publish(registry, "negative", 0.9, "v1")
    publish_compared(registry, "v2", 0.8, paired("v1", candidate=0.8, served_score=0.78))
    registry.promote("sentiment", "v2")
    assert registry.promoted_version("sentiment") == "v2"


def test_promotion_refuses_what_the_paired_comparison_finds_worse(registry: Registry):
    publish(registry, "negative", 0.5, "v1")
    publish_compared(registry, "v2", 0.8, paired("v1", 0.8, 0.78, worse="per_language/ar"))
    with pytest.raises(PromotionRefused, match="worse than the promoted v1 on per_language/ar"):
        registry.promote("sentiment", "v2")
    publish_compared(registry, "v3", 0.8, paired("v1", candidate=0.7, served_score=0.78))
    with pytest.raises(PromotionRefused, match="scored beside it on one machine"):
        registry.promote("sentiment", "v3")
    assert registry.promoted_version("sentiment") == "v1"
    registry.promote("sentiment", "v2", force=True)
    assert registry.promoted_version("sentiment") == "v2"


def test_a_comparison_with_another_version_falls_back_to_stored_scores(registry: Registry):
    publish(registry, "negative", 0.9, "v1")
    publish_compared(registry, "v2", 0.8, paired("v0", candidate=0.8, served_score=0.78))
    with pytest.raises(PromotionRefused, match="below the promoted v1"):
        registry.promote("sentiment", "v2")


def test_rollback_returns_to_the_previous_version(registry: Registry) -> None:
    publish(registry, "negative", 0.6, "v1")
    publish(registry, "positive", 0.7, "v2")
    assert registry.rollback("sentiment") == "v1"
    assert registry.load("sentiment")[0].predict(["x"]) == ["negative"]
    with pytest.raises(ArtifactError, match="no earlier"):
        registry.rollback("sentiment")


def test_corrupt_file_is_refused_with_its_name(registry: Registry) -> None:
    publish(registry, "negative", 0.6, "v1")
    (registry.path("sentiment", "v1") / "model.json").write_text("{}")
    with pytest.raises(ArtifactError, match=r"model\.json.*corrupt"):
        registry.load("sentiment")


def test_meta_from_a_newer_schema_or_unknown_kind_is_refused(registry: Registry) -> None:
    publish(registry, "negative", 0.6, "v1")
    meta_path = registry.path("sentiment", "v1") / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["kind"] = "from-the-future"
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match="unknown model kind 'from-the-future'"):
        registry.load("sentiment")
    meta["schema_version"] = 99
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match="schema_version 99"):
        registry.load("sentiment")


def test_library_drift_warns(registry: Registry) -> None:
    publish(registry, "negative", 0.6, "v1")
    meta_path = registry.path("sentiment", "v1") / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["library_versions"]["numpy"] = "0.1.0"
    meta_path.write_text(json.dumps(meta))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        registry.load("sentiment")
    assert any("numpy 0.1.0" in str(w.message) for w in caught)


def test_failed_write_keeps_the_promoted_version(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish(registry, "negative", 0.6, "v1")

    def disk_full(self: ConstantModel, directory: Path) -> None:
        (directory / "partial.bin").write_bytes(b"\\0" * 10)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ConstantModel, "save", disk_full)
    with pytest.raises(OSError, match="No space"):
        publish(registry, "positive", 0.9, "v2")
    assert registry.promoted_version("sentiment") == "v1"
    assert not registry.path("sentiment", "v2").exists()
    assert [p.name for p in (registry.root / "sentiment").iterdir() if p.name.startswith(".")] == []
    assert registry.load("sentiment")[0].predict(["x"]) == ["negative"]


def publish_on_encoder(registry: Registry, task: str, version: str, adapter: str | None) -> None:
    registry.publish(
        fitted("negative"),
        task=task,
        version=version,
        metrics={"macro_f1": 0.6},
        primary_metric="macro_f1",
        extra={"training_config": {"encoder_adapter": adapter}},
        promote=True,
    )


def test_heads_fit_on_another_encoder_than_the_served_ones_are_not_promoted(
    registry: Registry,
) -> None:
    publish_on_encoder(registry, "sentiment", "s1", "lora-a")
    with pytest.raises(PromotionRefused, match="lora-a"):
        publish_on_encoder(registry, "topics", "t1", None)
    assert registry.promoted_version("topics") is None
    publish_on_encoder(registry, "topics", "t2", "lora-a")
    assert registry.promoted_version("topics") == "t2"
    registry.promote("topics", "t1", force=True)
    assert registry.promoted_version("topics") == "t1"


def test_text_only_heads_promote_beside_any_encoder(registry: Registry) -> None:
    publish_on_encoder(registry, "sentiment", "s1", "lora-a")
    registry.publish(fitted("fees"), task="topics", version="tfidf", promote=True)
    assert registry.promoted_version("topics") == "tfidf"
