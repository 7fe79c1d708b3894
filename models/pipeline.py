"""The one analysis pipeline, called alike by the API's jobs, `sawt analyze` and evaluation.

normalize → redact → identify language → encode once → heads (sentiment, topics).

The one encoder pass yields the stored embedding and, when a head reads them, every layer's
pooled output as well (`encode_layers`; its last layer is the embedding). A sentiment head
with a Latin-script Darija member also reads the Arabic spelling of those posts; the spellings
ride in the same pass (`encode_with_spellings`), so they share its length buckets.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from models.custom_topics import TopicPrototype
from models.registry import ArtifactError, ArtifactMeta, Registry, encoder_of
from models.text.arabizi import arabizi_to_arabic
from models.text.normalize import model_input
from models.text.redact import redact


class TextEncoder(Protocol):
    """The shared multilingual encoder (see models.encoder)."""

    version: str

    def encode(self, texts: Sequence[str], batch_size: int = ...) -> np.ndarray: ...

    def encode_layers(self, texts: Sequence[str], batch_size: int = ...) -> np.ndarray: ...


def input_kind(model: Any) -> str:
    return str(getattr(model, "input_kind", "text"))


def head_inputs(
    model: Any,
    texts: Sequence[str],
    embeddings: np.ndarray | None,
    layers: np.ndarray | None = None,
    arabizi: np.ndarray | None = None,
) -> Any:
    """What a head reads, by its ``input_kind``: ``text`` the texts, ``embedding`` the (n, dim)
    embeddings, ``layers`` the (n, layers, dim) pooled layers, ``…+text`` a tuple with the
    texts (char n-grams carry what the encoder misses in Latin-script Darija), ``…+text+arabizi``
    that tuple with the Arabic spelling's embeddings (``arabizi_view``) last."""
    kind = input_kind(model)
    if kind == "text":
        return list(texts)
    encoded_kind, *extras = kind.split("+")
    if encoded_kind not in ("embedding", "layers") or tuple(extras) not in _EXTRAS:
        raise ValueError(f"unknown input_kind {kind!r} on {type(model).__name__}")
    encoded = embeddings if encoded_kind == "embedding" else layers
    if encoded is None:
        raise ValueError(
            f"{type(model).__name__} needs encoder {encoded_kind} ({kind!r} head), but none "
            "were computed: is the encoder built (`make models`)?"
        )
    if not extras:
        return encoded
    if extras == ["text", "arabizi"]:
        if arabizi is None:
            raise ValueError(f"{type(model).__name__} ({kind!r}) needs arabizi_view's embeddings")
        return (encoded, list(texts), arabizi)
    return (encoded, list(texts))


# what an encoder-reading head may read beside the encoder's output
_EXTRAS = {(), ("text",), ("text", "arabizi")}


def reads_arabizi(model: Any) -> bool:
    """True when a head also reads the Arabic spelling of Latin-script Darija texts."""
    return input_kind(model).endswith("+arabizi")


def spelled_rows(model: Any, texts: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """The rows whose Arabic spelling (``arabizi_to_arabic``) a Darija-aware head reads, and
    those spellings; none for a head that reads no such view. Only Latin-script Darija posts pay."""
    if not reads_arabizi(model):
        return np.zeros(0, dtype=np.intp), []
    rows = np.flatnonzero(model.arabizi_rows(texts))
    return rows, [arabizi_to_arabic(texts[int(i)]) for i in rows]


def spelling_view(
    model: Any, n_texts: int, rows: np.ndarray, spelled: np.ndarray, dim: int
) -> np.ndarray | None:
    """The (n_texts, dim) view a Darija-aware head reads: the spellings' embeddings on their
    rows, NaN on the others; None for a head that reads no such view."""
    if not reads_arabizi(model):
        return None
    view = np.full((n_texts, dim), np.nan, dtype=np.float32)
    view[rows] = spelled
    return view


def arabizi_view(
    model: Any,
    texts: Sequence[str],
    dim: int,
    encode: Callable[[list[str]], np.ndarray],
) -> np.ndarray | None:
    """The spelling view from its own encoder call (``encode``), for callers that cache it apart
    from the texts' embeddings (evaluation); serving folds it into the one pass."""
    rows, spellings = spelled_rows(model, texts)
    spelled = encode(spellings) if spellings else np.zeros((0, dim), dtype=np.float32)
    return spelling_view(model, len(texts), rows, spelled, dim)


def reads_layers(*heads: Any) -> bool:
    """True when a head reads pooled encoder layers, not only the last one."""
    return any(input_kind(model).startswith("layers") for model in heads)


def encode_once(
    encoder: TextEncoder, texts: Sequence[str], *, layered: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """(embeddings, pooled layers or None) from one encoder pass."""
    if not layered:
        return encoder.encode(texts), None
    layers = encoder.encode_layers(texts)
    # a copy, so a stored embedding does not keep the whole layers array alive
    return np.ascontiguousarray(layers[:, -1]), layers


def encode_with_spellings(
    encoder: TextEncoder, texts: Sequence[str], sentiment_model: Any, *, layered: bool
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(embeddings, pooled layers or None, the sentiment head's spelling view or None) from one
    encoder pass over the texts and the Arabic spellings of their Latin-script Darija rows."""
    rows, spellings = spelled_rows(sentiment_model, texts)
    embeddings, layers = encode_once(encoder, [*texts, *spellings], layered=layered)
    n = len(texts)
    view = spelling_view(sentiment_model, n, rows, embeddings[n:], embeddings.shape[1])
    # leading rows of C-ordered arrays: views, no copy, still contiguous
    return embeddings[:n], None if layers is None else layers[:n], view


@dataclass(frozen=True)
class TopicScore:
    id: str
    score: float


@dataclass(frozen=True)
class Analysis:
    """What the pipeline says about one text."""

    text: str
    redactions: list[str]
    language: str
    script: str
    language_mix: list[str]
    language_confidence: float
    sentiment: str
    sentiment_scores: dict[str, float]
    topics: list[TopicScore]
    model_version: str
    embedding: np.ndarray | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "language": self.language,
            "script": self.script,
            "language_mix": self.language_mix,
            "sentiment": {"label": self.sentiment, "scores": self.sentiment_scores},
            "topics": [{"id": t.id, "score": t.score} for t in self.topics],
            "redactions": self.redactions,
            "model_version": self.model_version,
        }


class AnalysisPipeline:
    """Holds the loaded models; `analyze` is pure with respect to its inputs."""

    def __init__(
        self,
        *,
        language_identifier: Any,
        sentiment_model: Any,
        topic_model: Any,
        versions: dict[str, str],
        encoder: TextEncoder | None = None,
    ) -> None:
        self.language_identifier = language_identifier
        self.sentiment_model = sentiment_model
        self.topic_model = topic_model
        self.versions = versions
        self.encoder = encoder
        # the LoRA adapter merged into the encoder the embedding heads were fit on (None: base)
        self.encoder_adapter: str | None = None

    @classmethod
    def from_registry(cls, registry: Registry) -> AnalysisPipeline:
        """The promoted heads; the encoder they were fit on is attached by the caller."""
        langid, langid_meta = registry.load("langid")
        sentiment, sentiment_meta = registry.load("sentiment")
        topics, topics_meta = registry.load("topics")
        versions = {
            "langid": langid_meta.version,
            "sentiment": sentiment_meta.version,
            "topics": topics_meta.version,
        }
        pipeline = cls(
            language_identifier=langid,
            sentiment_model=sentiment,
            topic_model=topics,
            versions=versions,
        )
        pipeline.encoder_adapter = _encoder_adapter(
            {"sentiment": (sentiment, sentiment_meta), "topics": (topics, topics_meta)}
        )
        return pipeline

    def attach_encoder(self, encoder: TextEncoder | None) -> None:
        """Serve with `encoder` (the one the heads name, see ``encoder_adapter``)."""
        self.encoder = encoder
        if encoder is not None:
            self.versions["encoder"] = encoder.version

    @property
    def model_version(self) -> str:
        return ";".join(f"{task}={version}" for task, version in sorted(self.versions.items()))

    def needs_encoder(self) -> bool:
        return any(input_kind(model) != "text" for model in self._heads())

    def _heads(self) -> tuple[Any, Any]:
        return (self.sentiment_model, self.topic_model)

    def analyze(
        self, texts: Sequence[str], *, custom_topics: Sequence[TopicPrototype] = ()
    ) -> list[Analysis]:
        """`custom_topics`: a tenant's own topics, scored on the same embeddings."""
        if not texts:
            return []
        redacted = [redact(text) for text in texts]
        inputs = [model_input(r.text) for r in redacted]
        languages = self.language_identifier.identify(inputs)
        embeddings, layers, arabizi = (
            encode_with_spellings(
                self.encoder, inputs, self.sentiment_model, layered=reads_layers(*self._heads())
            )
            if self.encoder is not None
            else (None, None, None)
        )
        sentiment_proba = self.sentiment_model.predict_proba(
            head_inputs(self.sentiment_model, inputs, embeddings, layers, arabizi)
        )
        sentiment_labels = list(self.sentiment_model.labels_)
        topic_proba = self.topic_model.predict_proba(
            head_inputs(self.topic_model, inputs, embeddings, layers)
        )
        topic_labels = list(self.topic_model.labels_)
        thresholds = np.asarray(
            getattr(self.topic_model, "thresholds_", [0.5] * len(topic_labels)), dtype=float
        )

        custom_labels = [t.id for t in custom_topics] if embeddings is not None else []
        if custom_labels:
            assert embeddings is not None
            custom_proba = np.column_stack([t.scores(embeddings) for t in custom_topics])
            topic_proba = np.hstack([np.asarray(topic_proba, dtype=float), custom_proba])
            topic_labels += custom_labels
            thresholds = np.concatenate([thresholds, np.full(len(custom_labels), 0.5)])

        version = self.model_version
        results = []
        for i, red in enumerate(redacted):
            scores = {
                label: round(float(p), 4)
                for label, p in zip(sentiment_labels, sentiment_proba[i], strict=True)
            }
            topic_row = np.asarray(topic_proba[i], dtype=float)
            chosen = [
                TopicScore(id=topic_labels[j], score=round(float(topic_row[j]), 4))
                for j in np.argsort(-topic_row)
                if topic_row[j] >= thresholds[j]
            ]
            lang = languages[i]
            results.append(
                Analysis(
                    text=red.text,
                    redactions=red.kinds,
                    language=lang.language,
                    script=lang.script,
                    language_mix=list(lang.mix),
                    language_confidence=round(float(lang.confidence), 4),
                    sentiment=max(scores, key=lambda k: scores[k]),
                    sentiment_scores=scores,
                    topics=chosen,
                    model_version=version,
                    embedding=embeddings[i] if embeddings is not None else None,
                )
            )
        return results


def _encoder_adapter(heads: dict[str, tuple[Any, ArtifactMeta]]) -> str | None:
    """The adapter every embedding-reading head was fit on; heads fit on different encoders
    cannot share one encoder pass, so that is refused with the versions named."""
    named = {
        task: encoder_of(meta)[1]
        for task, (model, meta) in heads.items()
        if input_kind(model) != "text"
    }
    if len(set(named.values())) > 1:
        described = ", ".join(
            f"{task}/{heads[task][1].version} on {adapter or 'the base encoder'}"
            for task, adapter in named.items()
        )
        raise ArtifactError(
            f"the promoted heads were fit on different encoders ({described}); "
            "promote heads fit on the same encoder"
        )
    return next(iter(named.values()), None)
