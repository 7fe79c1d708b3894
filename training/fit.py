"""Fitting Sawt's encoder-based heads: cached embeddings, data assembly, sentiment and topics.

Every text is prepared exactly as the serving pipeline prepares it (redact, then
``models.pipeline.model_input``) and encoded once by the served encoder (ONNX dynamic int8 by
default); embeddings are cached per corpus split under ``.cache/embeddings`` so that model
selection never re-encodes. What is evaluated is what is served.
"""

from __future__ import annotations

import functools
import hashlib
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score

from models.encoder import build
from models.heads.encoder_heads import (
    DARIJA_GROUP,
    EmbeddingSentimentClassifier,
    EmbeddingTopicClassifier,
    EnsembleSentimentClassifier,
    EnsembleTopicClassifier,
    FloatArray,
    LatinLanguageRouter,
    MlpTopicClassifier,
    TopicHead,
    darija_features,
    fit_temperature,
    latin_group,
    topic_indicator,
)
from models.heads.tfidf import (
    TfidfSentimentClassifier,
    TfidfTopicClassifier,
    best_thresholds,
    build_features,
    normalize_all,
)
from models.language import dominant_script
from models.pipeline import reads_layers
from models.text.arabizi import arabizi_to_arabic
from models.text.normalize import model_input
from models.text.redact import redact
from training.config import SentimentConfig, TopicsConfig
from training.corpora import CORPORA, load_seed_topics

CACHE_SUBDIR = "embeddings"
CORRECTIONS_SOURCE = "corrections"
SEED_SOURCE = "seed_topics"
AUGMENT_SUFFIX = "+arabizi"


class TextEncoder(Protocol):
    def encode(self, texts: Sequence[str], batch_size: int = ...) -> npt.NDArray[np.float32]: ...

    def encode_layers(
        self, texts: Sequence[str], batch_size: int = ...
    ) -> npt.NDArray[np.float32]: ...


def prepare_text(text: str) -> str:
    """What the encoder and heads see in production: redacted, normalised, placeholders dropped."""
    return model_input(redact(text).text)


def prepare_texts(texts: Sequence[str]) -> list[str]:
    return [prepare_text(text) for text in texts]


def encoder_fingerprint(variant: str = "int8", model_dir: Path | None = None) -> str:
    """Short hash naming one encoder build (base or merged adapter) + backend: a cache key
    for its embeddings."""
    from models.encoder.encoder import DEFAULT_MAX_LENGTH, DEFAULT_PREFIX
    from models.encoder.onnx import EXPORT_VERSION

    base = model_dir if model_dir is not None else build.model_dir()
    source = build.weights_sha256(base) or "unbuilt"
    key = f"{source}:{variant}:{EXPORT_VERSION}:{DEFAULT_PREFIX}:{DEFAULT_MAX_LENGTH}"
    return hashlib.sha256(key.encode()).hexdigest()[:10]


def load_encoder(variant: str = "int8", model_dir: Path | None = None) -> TextEncoder:
    """The encoder the served pipeline uses (`int8` / `fp32` ONNX, or `torch`), from
    `model_dir` (default: the rebuilt base)."""
    if variant == "torch":
        from models.encoder import Encoder

        return Encoder(model_dir)
    from models.encoder import OnnxEncoder

    return OnnxEncoder(model_dir, variant="int8" if variant == "int8" else "fp32")


def _digest(texts: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8", "surrogatepass") + b"\0")
    return digest.hexdigest()


class EmbeddingCache:
    """Embeddings of prepared texts, one ``.npy`` per named split, keyed by encoder fingerprint.

    A sidecar ``.json`` records the digest of the prepared texts, so a changed corpus or a
    changed normaliser re-encodes instead of silently misaligning rows.
    """

    def __init__(
        self,
        directory: Path | None = None,
        *,
        variant: str = "int8",
        adapter: str | None = None,
        encoder_factory: Callable[[], TextEncoder] | None = None,
        show_progress: bool = True,
    ) -> None:
        from models.encoder import tuned

        self.directory = directory or build.default_cache_dir() / CACHE_SUBDIR
        self.variant = variant
        self.adapter = adapter
        model_dir = None
        if adapter is not None and encoder_factory is None:
            # merged once here: the fingerprint names the merged weights
            model_dir = tuned.build_tuned(
                adapter, export=variant != "torch", show_progress=show_progress
            )
        self.encoder_factory = encoder_factory or (lambda: load_encoder(variant, model_dir))
        self.show_progress = show_progress
        self._encoder: TextEncoder | None = None
        self.fingerprint = encoder_fingerprint(variant, tuned.encoder_dir(adapter))

    @property
    def encoder(self) -> TextEncoder:
        if self._encoder is None:
            self._encoder = self.encoder_factory()
        return self._encoder

    def path(self, name: str, *, layered: bool = False) -> Path:
        return self.directory / f"{name}{'-layers' if layered else ''}-{self.fingerprint}.npy"

    def get(self, name: str, prepared: Sequence[str]) -> npt.NDArray[np.float32]:
        """(n, dim) embeddings of already prepared texts, encoded once and cached under `name`."""
        return self._cached(name, prepared, layered=False)

    def get_layers(self, name: str, prepared: Sequence[str]) -> npt.NDArray[np.float32]:
        """(n, layers, dim) pooled encoder layers (``encode_layers``), cached beside `get`'s."""
        return self._cached(name, prepared, layered=True)

    def _cached(
        self, name: str, prepared: Sequence[str], *, layered: bool
    ) -> npt.NDArray[np.float32]:
        path = self.path(name, layered=layered)
        sidecar = path.with_suffix(".json")
        digest = _digest(prepared)
        if path.is_file() and sidecar.is_file():
            info = json.loads(sidecar.read_text(encoding="utf-8"))
            if info.get("texts_sha256") == digest:
                return np.load(path)
        unique = sorted(set(prepared))
        started = time.perf_counter()
        vectors = self._encode_with_progress(name, unique, layered=layered)
        seconds = time.perf_counter() - started
        index = {text: i for i, text in enumerate(unique)}
        matrix = vectors[[index[text] for text in prepared]]
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, matrix)
        tmp.replace(path)
        sidecar.write_text(
            json.dumps(
                {
                    "rows": len(prepared),
                    "unique": len(unique),
                    "texts_sha256": digest,
                    "variant": self.variant,
                    "encode_seconds": round(seconds, 1),
                }
            ),
            encoding="utf-8",
        )
        return matrix

    def _encode_with_progress(
        self, name: str, texts: list[str], *, layered: bool
    ) -> npt.NDArray[np.float32]:
        chunk = 512
        parts: list[npt.NDArray[np.float32]] = []
        started = time.perf_counter()
        encode = self.encoder.encode_layers if layered else self.encoder.encode
        for start in range(0, len(texts), chunk):
            parts.append(encode(texts[start : start + chunk]))
            if self.show_progress:
                done = min(start + chunk, len(texts))
                rate = done / max(time.perf_counter() - started, 1e-9)
                print(
                    f"\rencoding {name}: {done}/{len(texts)} ({rate:.0f} texts/s)",
                    end="",
                    file=sys.stderr,
                    flush=True,
                )
        if self.show_progress and texts:
            print(file=sys.stderr, flush=True)
        if not parts:
            return np.zeros((0, 12, 384) if layered else (0, 384), dtype=np.float32)
        return np.concatenate(parts)


def describe_cache(cache: EmbeddingCache) -> dict[str, Any]:
    return {
        "directory": str(cache.directory),
        "fingerprint": cache.fingerprint,
        "adapter": cache.adapter,
    }


# -- augmentation by transliteration -------------------------------------------------------

# Arabic letter -> Arabizi spellings seen in Moroccan chat (first = most common). Short vowels
# are unwritten in both, so a consonant skeleton is what Arabizi writers type too ("bzzf").
ARABIZI: dict[str, tuple[str, ...]] = {
    "ا": ("a",),
    "أ": ("a",),
    "إ": ("i", "a"),
    "آ": ("a",),
    "ى": ("a",),
    "ء": ("",),
    "ب": ("b",),
    "ت": ("t",),
    "ث": ("t", "th"),
    "ج": ("j", "dj"),
    "ح": ("7", "h"),
    "خ": ("kh", "5"),
    "د": ("d",),
    "ذ": ("d", "dh"),
    "ر": ("r",),
    "ز": ("z",),
    "س": ("s",),
    "ش": ("ch", "sh"),
    "ص": ("s", "ss"),
    "ض": ("d", "dh"),
    "ط": ("t", "6"),
    "ظ": ("d", "dh"),
    "ع": ("3", "a"),
    "غ": ("gh", "8"),
    "ف": ("f",),
    "ق": ("9", "q", "k"),
    "ك": ("k",),
    "ل": ("l",),
    "م": ("m",),
    "ن": ("n",),
    "ه": ("h",),
    "ة": ("a", "e"),
    "و": ("o", "w", "ou"),
    "ي": ("i", "y", "ee"),
    "ئ": ("i", "y"),
    "ؤ": ("o",),
    "ڭ": ("g",),
    "ڤ": ("v",),
    "پ": ("p",),
    "،": (",",),
    "؟": ("?",),
    "؛": (";",),
}


def arabic_to_arabizi(text: str, rng: np.random.Generator | None = None) -> str:
    """Arabic-script Darija spelled the way Moroccans type it in Latin script.

    Deterministic (first spelling) without `rng`; with one, alternative spellings are drawn
    (25%) so augmented rows do not all share one orthography. Word-initial و/ي become w/y.
    """
    out: list[str] = []
    previous = " "
    for char in text:
        options = ARABIZI.get(char)
        if options is None:
            out.append(char)
        elif previous.isspace() and char in "وي":
            out.append("w" if char == "و" else "y")
        elif rng is not None and len(options) > 1 and rng.random() < 0.25:
            out.append(options[int(rng.integers(1, len(options)))])
        else:
            out.append(options[0])
        previous = char
    return "".join(out)


# -- data assembly -------------------------------------------------------------------------


@dataclass
class Split:
    """Rows of one split with their prepared texts and embeddings (and, for heads that read
    them, pooled encoder layers), aligned."""

    frame: pd.DataFrame
    prepared: list[str]
    embeddings: npt.NDArray[np.float32]
    layers: npt.NDArray[np.float32] | None = None

    def __len__(self) -> int:
        return len(self.frame)

    def encoded_for(self, head: Any) -> npt.NDArray[np.float32]:
        """What `head` reads of these rows: the embeddings, or the pooled layers for a head
        fit on several encoder layers."""
        if not reads_layers(head):
            return self.embeddings
        if self.layers is None:
            raise ValueError(
                f"{type(head).__name__} reads encoder layers but these rows were embedded "
                "without them (load the data with the config's encoder_layers)"
            )
        return self.layers

    def subset(self, mask: npt.NDArray[np.bool_]) -> Split:
        rows = np.flatnonzero(mask)
        return Split(
            self.frame.iloc[rows].reset_index(drop=True),
            [self.prepared[i] for i in rows],
            self.embeddings[rows],
            None if self.layers is None else self.layers[rows],
        )

    @staticmethod
    def concat(parts: Sequence[Split]) -> Split:
        layered = [p.layers for p in parts if p.layers is not None]
        if layered and len(layered) != len(parts):
            raise ValueError("cannot concatenate splits with and without encoder layers")
        return Split(
            pd.concat([p.frame for p in parts], ignore_index=True),
            [text for p in parts for text in p.prepared],
            np.concatenate([p.embeddings for p in parts]),
            np.concatenate(layered) if layered else None,
        )


def embed_frame(
    cache: EmbeddingCache, name: str, frame: pd.DataFrame, *, layered: bool = False
) -> Split:
    """`frame`'s rows prepared and embedded; with `layered`, the embeddings are the pooled
    layers' last (one encoder pass, one cache file)."""
    frame = frame.reset_index(drop=True)
    prepared = prepare_texts(frame["text"].tolist())
    if not layered:
        return Split(frame, prepared, cache.get(name, prepared))
    layers = cache.get_layers(name, prepared)
    return Split(frame, prepared, np.ascontiguousarray(layers[:, -1]), layers)


def arabizi_augment(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Arabizi copies of the Arabic-script Darija rows (afrisenti_ary, MAC dialectal)."""
    darija = frame[(frame["language"] == "ary") & (frame["script"] == "Arab")]
    rng = np.random.default_rng(seed)
    out = darija.copy()
    out["text"] = [arabic_to_arabizi(text, rng) for text in darija["text"]]
    out["script"] = "Latn"
    out["language"] = "ary-Latn"
    out["source"] = out["source"] + AUGMENT_SUFFIX
    return out.reset_index(drop=True)


def trainable_corpora(
    corpora: Sequence[str], frames: dict[str, pd.DataFrame]
) -> dict[str, pd.DataFrame]:
    """The configured corpora's frames; unknown ones, and those whose terms forbid training
    the shipped model, are refused."""
    unknown = [name for name in corpora if name not in frames]
    if unknown:
        raise ValueError(f"unknown or non-sentiment corpora {unknown}; known: {sorted(frames)}")
    for name in corpora:
        if not CORPORA[name].trainable:
            raise ValueError(f"{name}'s terms do not allow training the shipped model")
    return {name: frames[name] for name in corpora}


def seed_sentiment_rows(seed: pd.DataFrame) -> pd.DataFrame:
    """Seed-set rows as a sentiment corpus: their sentiment is the label."""
    return seed.assign(label=seed["sentiment"], source=SEED_SOURCE)


@dataclass
class SentimentData:
    train: Split
    dev: Split
    corrections: int = 0
    augmented: int = 0
    # ``encode(name, prepared)``: embeddings of further texts (the Darija head's Arabic
    # spellings), cached under ``name`` like the splits'; None where nothing more may be encoded
    encode: Callable[[str, Sequence[str]], npt.NDArray[np.float32]] | None = None


def load_sentiment_data(
    config: SentimentConfig,
    cache: EmbeddingCache,
    *,
    frames: dict[str, pd.DataFrame] | None = None,
    corrections: pd.DataFrame | None = None,
    seed_frame: pd.DataFrame | None = None,
    data_dir: Path | None = None,
) -> SentimentData:
    """Train and dev splits of the configured corpora (+ corrections, + augmentation), embedded."""
    from training.baseline import sentiment_frames

    frames = frames if frames is not None else sentiment_frames(data_dir)
    embed = functools.partial(embed_frame, cache, layered=config.encoder_layers is not None)
    trains, devs = [], []
    for name, frame in trainable_corpora(config.corpora, frames).items():
        trains.append(embed(f"{name}-train", frame[frame["split"] == "train"]))
        devs.append(embed(f"{name}-dev", frame[frame["split"] == "dev"]))
    if config.seed_sentiment:
        seed = seed_frame if seed_frame is not None else load_seed_topics()
        if len(seed):
            everything = embed("seed_topics-all", seed)
            rows = everything.subset((everything.frame["split"] == "train").to_numpy())
            rows.frame = seed_sentiment_rows(rows.frame)
            trains.append(rows)
    train = Split.concat(trains)
    if config.max_train_rows is not None and len(train) > config.max_train_rows:
        rng = np.random.default_rng(config.seed)
        keep = np.zeros(len(train), dtype=bool)
        keep[rng.choice(len(train), config.max_train_rows, replace=False)] = True
        train = train.subset(keep)
    extra = []
    augmented = 0
    if config.transliteration_augment != "none":
        augment = arabizi_augment(train.frame, config.seed)
        augmented = len(augment)
        if augmented:
            extra.append(embed("augment-arabizi-train", augment))
    n_corrections = 0
    if corrections is not None and len(corrections):
        n_corrections = len(corrections)
        extra.append(embed("corrections-sentiment-train", corrections))
    if extra:
        train = Split.concat([train, *extra])
    return SentimentData(train, Split.concat(devs), n_corrections, augmented, cache.get)


def row_weights(
    frame: pd.DataFrame,
    balance: str,
    corrections_weight: float,
    seed_share: float | None = None,
) -> np.ndarray:
    """Per-row training weights (mean 1 over corpus rows); corrections get their own weight
    and the seed set's rows weigh 1 each (a few hundred synthetic rows must not weigh a corpus),
    or, with ``seed_share`` and a balance, together that share of one corpus's weight.

    ``corpus``: each source corpus weighs the same in total. ``corpus_script_class``: within
    each corpus, each script group weighs in proportion to its size and each class the same
    inside a group. ``none``: uniform (the heads then balance classes globally).
    """
    sources = frame["source"].astype(str).str.replace(AUGMENT_SUFFIX, "", regex=False).to_numpy()
    corpus_rows = ~np.isin(sources, [CORRECTIONS_SOURCE, SEED_SOURCE])
    weights = np.ones(len(frame))
    if balance != "none":
        names = sorted(set(sources[corpus_rows]))
        total = int(corpus_rows.sum())
        for name in names:
            in_source = sources == name
            share = total / len(names)  # total weight of this corpus
            if balance == "corpus":
                weights[in_source] = share / in_source.sum()
                continue
            scripts = frame["script"].to_numpy()
            labels = frame["label"].astype(str).to_numpy()
            for script in sorted(set(scripts[in_source])):
                in_group = in_source & (scripts == script)
                group_share = share * in_group.sum() / in_source.sum()
                classes = sorted(set(labels[in_group]))
                for label in classes:
                    cell = in_group & (labels == label)
                    weights[cell] = group_share / (len(classes) * cell.sum())
    seed_rows = sources == SEED_SOURCE
    if seed_share is not None and balance != "none" and seed_rows.any() and corpus_rows.any():
        corpora = len(set(sources[corpus_rows]))
        seed_total = seed_share * corpus_rows.sum() / corpora
        weights[seed_rows] = seed_total / seed_rows.sum()
    weights[sources == CORRECTIONS_SOURCE] = corrections_weight
    return weights


def per_corpus_macro_f1(frame: pd.DataFrame, predicted: np.ndarray) -> dict[str, float]:
    """Dev macro-F1 per source corpus and their mean (each corpus counts once)."""
    scores = {
        str(name): round(
            float(f1_score(group["label"], predicted[group.index], average="macro")), 4
        )
        for name, group in frame.reset_index(drop=True).groupby("source")
    }
    scores["mean"] = round(float(np.mean(list(scores.values()))), 4)
    return scores


# -- sentiment -----------------------------------------------------------------------------


Log = Callable[[str], None]


def log_to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _label_index(labels: Sequence[str], values: Sequence[str]) -> npt.NDArray[np.int64]:
    index = {label: i for i, label in enumerate(labels)}
    return np.asarray([index[str(v)] for v in values], dtype=np.int64)


def fit_embedding_sentiment(
    config: SentimentConfig, data: SentimentData, log: Log = log_to_stderr
) -> tuple[EmbeddingSentimentClassifier, dict[str, Any]]:
    """The embedding head, its hyper-parameter chosen on dev (mean per-corpus macro-F1)."""
    train = data.train
    if config.transliteration_augment == "text":
        train = train.subset(~train.frame["source"].str.endswith(AUGMENT_SUFFIX).to_numpy())
    weights = row_weights(
        train.frame,
        config.balance,
        config.corrections_weight,
        config.seed_sentiment_share,
    )
    class_weight = None if config.balance == "corpus_script_class" else "balanced"
    labels = train.frame["label"].tolist()
    candidates: list[dict[str, Any]] = (
        [{"C": c} for c in config.C_grid]
        if config.head == "logreg"
        else [{"hidden": tuple(config.hidden), "alpha": a} for a in config.mlp_alpha_grid]
    )
    by_candidate: dict[str, dict[str, float]] = {}
    best: tuple[float, EmbeddingSentimentClassifier | None, dict[str, Any]] = (-1.0, None, {})
    for params in candidates:
        started = time.perf_counter()
        head = EmbeddingSentimentClassifier(
            random_state=config.seed,
            class_weight=class_weight,
            encoder_layers=config.encoder_layers,
            standardize=config.standardize,
            **params,
        )
        head.fit(train.encoded_for(head), labels, sample_weight=weights)
        scores = per_corpus_macro_f1(data.dev.frame, head.predict(data.dev.encoded_for(head)))
        key = json.dumps(params, default=list)
        by_candidate[key] = scores
        log(
            f"embedding head {key}: dev mean macro-F1 {scores['mean']:.4f} "
            f"({time.perf_counter() - started:.0f}s)"
        )
        if scores["mean"] > best[0]:
            best = (scores["mean"], head, params)
    if best[1] is None:
        raise ValueError("no embedding-head candidate to fit: C_grid / mlp_alpha_grid is empty")
    head = best[1]
    truth = _label_index(head.labels_, data.dev.frame["label"].tolist())
    head.temperature_ = fit_temperature(head.decision_function(data.dev.encoded_for(head)), truth)
    return head, {
        "dev_by_params": by_candidate,
        "chosen": best[2],
        "temperature": round(head.temperature_, 4),
    }


def fit_tfidf_sentiment(
    config: SentimentConfig, data: SentimentData, log: Log = log_to_stderr
) -> tuple[TfidfSentimentClassifier, dict[str, Any]]:
    """The char n-gram member, trained as the baseline is: C on dev, temperature on dev."""
    started = time.perf_counter()
    probe = TfidfSentimentClassifier()
    features = build_features(
        tuple(probe.char_ngram_range),  # type: ignore[arg-type]
        tuple(probe.word_ngram_range),  # type: ignore[arg-type]
        probe.max_char_features,
        probe.max_word_features,
        probe.min_df,
    )
    matrix = features.fit_transform(normalize_all(data.train.prepared))
    dev_matrix = features.transform(normalize_all(data.dev.prepared))
    labels = data.train.frame["label"].tolist()
    weights = row_weights(
        data.train.frame,
        config.balance,
        config.corrections_weight,
        config.seed_sentiment_share,
    )
    class_weight = None if config.balance == "corpus_script_class" else "balanced"
    by_c: dict[str, dict[str, float]] = {}
    fitted: dict[float, LogisticRegression] = {}
    for c in config.tfidf_C_grid:
        classifier = LogisticRegression(C=c, class_weight=class_weight, max_iter=probe.max_iter)
        fitted[c] = classifier.fit(matrix, labels, sample_weight=weights)
        by_c[str(c)] = per_corpus_macro_f1(data.dev.frame, classifier.predict(dev_matrix))
    best_c = max(config.tfidf_C_grid, key=lambda c: by_c[str(c)]["mean"])
    model = TfidfSentimentClassifier(C=best_c).fit_features(
        features,
        matrix,
        labels,
        calibration_texts=data.dev.prepared,
        calibration_labels=data.dev.frame["label"].tolist(),
        classifier=fitted[best_c],
    )
    log(
        f"tfidf member: C={best_c}, dev mean macro-F1 {by_c[str(best_c)]['mean']:.4f} "
        f"({time.perf_counter() - started:.0f}s)"
    )
    return model, {"C": best_c, "dev_by_C": by_c}


def choose_ensemble_weights(
    log_embedding: FloatArray,
    log_text: FloatArray,
    latin: npt.NDArray[np.bool_],
    dev: pd.DataFrame,
    labels: list[str],
    grid: Sequence[float],
) -> tuple[float, float, float, dict[str, float]]:
    """Per-script weights maximising dev mean per-corpus macro-F1, then a dev temperature."""
    names = np.asarray(labels, dtype=object)
    best = (-1.0, 0.5, 0.5)
    scores: dict[str, float] = {}
    for arabic_weight in grid:
        for latin_weight in grid:
            proba = EnsembleSentimentClassifier.combine(
                log_embedding, log_text, latin, arabic_weight, latin_weight, 1.0
            )
            mean = per_corpus_macro_f1(dev, names[proba.argmax(axis=1)])["mean"]
            scores[f"{arabic_weight},{latin_weight}"] = mean
            if mean > best[0]:
                best = (mean, arabic_weight, latin_weight)
    _, arabic_weight, latin_weight = best
    pooled = EnsembleSentimentClassifier.pool(
        log_embedding, log_text, np.where(latin, latin_weight, arabic_weight)
    )
    temperature = fit_temperature(pooled, _label_index(labels, dev["label"].tolist()))
    return arabic_weight, latin_weight, temperature, scores


def choose_group_weights(
    log_embedding: FloatArray,
    log_text: FloatArray,
    groups: Sequence[str] | npt.NDArray[np.object_],
    dev: pd.DataFrame,
    labels: list[str],
    grid: Sequence[float],
    start: dict[str, float],
    passes: int = 2,
    tune: Sequence[str] | None = None,
) -> tuple[dict[str, float], float, list[dict[str, Any]]]:
    """Embedding-member weight per weight group (``Arab``, then each Latin language group) by
    coordinate ascent from ``start`` on dev mean per-corpus macro-F1, then a dev temperature.

    ``groups`` holds each dev row's group (``EnsembleSentimentClassifier.route``). Each pass
    sweeps one group's weight over ``grid`` holding the others; a move needs a strictly better
    mean, so the result never scores below ``start``. Only the given dev rows are looked at.
    With ``tune``, only those groups' weights move.
    """
    row_groups = np.asarray(groups, dtype=object)
    if len(row_groups) != len(dev) or len(log_embedding) != len(dev) or len(log_text) != len(dev):
        raise ValueError("member log-probabilities, groups and dev rows must align")
    present = set(row_groups.tolist())
    missing = sorted(present - set(start))
    if missing:
        raise ValueError(f"no starting weight for groups {missing}")
    names = np.asarray(labels, dtype=object)
    dev = dev.reset_index(drop=True)

    def pooled(weights: dict[str, float]) -> FloatArray:
        per_row = [weights[g] for g in row_groups]
        return EnsembleSentimentClassifier.pool(log_embedding, log_text, per_row)

    def score(weights: dict[str, float]) -> float:
        return per_corpus_macro_f1(dev, names[pooled(weights).argmax(axis=1)])["mean"]

    weights = dict(start)
    best = score(weights)
    order = ["Arab", *sorted(g for g in start if g != "Arab")]
    trace: list[dict[str, Any]] = [{"start": dict(weights), "dev_mean": best}]
    for sweep in range(passes):
        for group in order:
            if group not in present or (tune is not None and group not in tune):
                continue  # no dev row to choose its weight on (or held): keep the start
            by_weight = {}
            for value in grid:
                by_weight[str(value)] = score({**weights, group: float(value)})
                if by_weight[str(value)] > best:
                    best, weights[group] = by_weight[str(value)], float(value)
            trace.append(
                {
                    "pass": sweep + 1,
                    "group": group,
                    "dev_by_weight": by_weight,
                    "chosen": weights[group],
                }
            )
    temperature = fit_temperature(pooled(weights), _label_index(labels, dev["label"].tolist()))
    return weights, temperature, trace


def fit_latin_router(train: Split) -> tuple[LatinLanguageRouter | None, dict[str, Any]]:
    """The ensemble's Latin-script language router, fit on real (not augmented) train rows;
    None where the train split has mostly-Latin rows of fewer than two language groups."""
    frame = train.frame
    if "language" not in frame.columns:
        return None, {"skipped": "the train rows carry no language"}
    real = ~frame["source"].astype(str).str.endswith(AUGMENT_SUFFIX).to_numpy()
    texts = [t for t, keep in zip(train.prepared, real, strict=True) if keep]
    languages = frame["language"].to_numpy()[real].tolist()
    _, groups = LatinLanguageRouter.training_rows(texts, languages)
    counts = {str(g): int(n) for g, n in zip(*np.unique(groups, return_counts=True), strict=True)}
    if len(counts) < 2:
        return None, {"skipped": f"mostly-Latin train rows of groups {sorted(counts)} only"}
    return LatinLanguageRouter().fit(texts, languages), {"train_rows": counts}


def latin_language_slices(frame: pd.DataFrame, predicted: np.ndarray) -> dict[str, float]:
    """Dev macro-F1 per corpus x Latin-script language group (what per-group weights target)."""
    frame = frame.reset_index(drop=True)
    if "language" not in frame.columns:
        return {}
    latin = np.asarray([dominant_script(t) == "Latn" for t in frame["text"].astype(str)])
    out = {}
    for (source, language), group in frame[latin].groupby(["source", "language"]):
        if language in ("fr", "en", "ary-Latn") and len(group):
            out[f"{source}/{language}"] = round(
                float(f1_score(group["label"], predicted[group.index], average="macro")), 4
            )
    return out


def fit_sentiment(
    config: SentimentConfig, data: SentimentData, log: Log = log_to_stderr
) -> tuple[Any, dict[str, Any]]:
    """Embedding head, and if configured its ensemble with the char n-gram head; the better
    of the two on dev (mean per-corpus macro-F1) is returned with a selection report.

    With ``latin_weights_by_language`` the ensemble also gets a Latin-script language router
    (fit on train) and per-language Latin weights (chosen on dev), kept only where they beat
    the per-script weights on dev."""
    started = time.perf_counter()
    head, head_report = fit_embedding_sentiment(config, data, log)
    dev_head = per_corpus_macro_f1(data.dev.frame, head.predict(data.dev.encoded_for(head)))
    report: dict[str, Any] = {"embedding_head": {**head_report, "dev": dev_head}}
    model: Any = head
    if config.ensemble:
        text_head, text_report = fit_tfidf_sentiment(config, data, log)
        ensemble = EnsembleSentimentClassifier(head, text_head)
        dev_inputs = (data.dev.encoded_for(head), data.dev.prepared)
        log_embedding, log_text = ensemble.member_log_proba(dev_inputs)
        latin = np.asarray([dominant_script(t) == "Latn" for t in data.dev.prepared])
        arabic_w, latin_w, temperature, grid_scores = choose_ensemble_weights(
            log_embedding, log_text, latin, data.dev.frame, head.labels_, config.weight_grid
        )
        ensemble = EnsembleSentimentClassifier(head, text_head, arabic_w, latin_w, temperature)
        dev_predicted = ensemble.predict(dev_inputs)
        dev_ensemble = per_corpus_macro_f1(data.dev.frame, dev_predicted)
        dev_text = per_corpus_macro_f1(data.dev.frame, text_head.predict(data.dev.prepared))
        report["text_head"] = {**text_report, "dev": dev_text}
        report["ensemble"] = {
            "arabic_weight": arabic_w,
            "latin_weight": latin_w,
            "temperature": round(temperature, 4),
            "dev": dev_ensemble,
            "dev_latin_languages": latin_language_slices(data.dev.frame, dev_predicted),
            "dev_by_weights": grid_scores,
        }
        log(
            f"dev mean macro-F1: embedding {dev_head['mean']:.4f}, tfidf {dev_text['mean']:.4f},"
            f" ensemble {dev_ensemble['mean']:.4f} (w_arab={arabic_w}, w_latn={latin_w})"
        )
        routed = None
        if config.latin_weights_by_language:
            routed, routed_report = _route_latin_weights(
                config, data, ensemble, log_embedding, log_text, log
            )
            report["ensemble"]["by_language"] = routed_report
            if routed is not None and routed_report["dev"]["mean"] > dev_ensemble["mean"]:
                ensemble, dev_ensemble = routed, routed_report["dev"]
            routed_report["kept"] = ensemble is routed
        if config.darija_view and routed is not None:
            # on the routed ensemble even where it was not kept: the head needs its router
            darija, darija_report = fit_darija_head(config, data, routed, log)
            report["ensemble"]["darija"] = darija_report
            if darija is not None and darija_report["dev"]["mean"] > dev_ensemble["mean"]:
                ensemble, dev_ensemble = darija, darija_report["dev"]
            darija_report["kept"] = ensemble is darija
        if dev_ensemble["mean"] >= dev_head["mean"]:
            model = ensemble
    report["chosen"] = model.kind
    report["train_rows"] = len(data.train)
    report["dev_rows"] = len(data.dev)
    report["corrections"] = data.corrections
    report["augmented_rows"] = data.augmented
    report["fit_seconds"] = round(time.perf_counter() - started, 1)
    return model, report


def _route_latin_weights(
    config: SentimentConfig,
    data: SentimentData,
    shared: EnsembleSentimentClassifier,
    log_embedding: FloatArray,
    log_text: FloatArray,
    log: Log,
) -> tuple[EnsembleSentimentClassifier | None, dict[str, Any]]:
    """The shared-weight ensemble with a router (train) and per-language weights (dev)."""
    router, router_report = fit_latin_router(data.train)
    if router is None:
        log(f"per-language Latin weights skipped: {router_report['skipped']}")
        return None, {"router": router_report}
    probe = EnsembleSentimentClassifier(
        shared.embedding_head,
        shared.text_head,
        shared.arabic_weight,
        shared.latin_weight,
        latin_group_weights={g: shared.latin_weight for g in router.groups_},
        router=router,
    )
    groups = probe.route(data.dev.prepared)
    dev_frame = data.dev.frame.reset_index(drop=True)
    known, truth = LatinLanguageRouter.training_rows(
        data.dev.prepared, dev_frame.get("language", pd.Series([None] * len(dev_frame))).tolist()
    )
    if known:
        router_report["dev_accuracy"] = round(
            float(np.mean(router.predict(known) == np.asarray(truth, dtype=object))), 4
        )
    start = {"Arab": shared.arabic_weight, **{g: shared.latin_weight for g in router.groups_}}
    weights, temperature, trace = choose_group_weights(
        log_embedding,
        log_text,
        groups,
        dev_frame,
        shared.labels_,
        config.weight_grid,
        start,
    )
    routed = EnsembleSentimentClassifier(
        shared.embedding_head,
        shared.text_head,
        weights["Arab"],
        shared.latin_weight,
        temperature,
        latin_group_weights={g: weights[g] for g in router.groups_},
        router=router,
    )
    predicted = routed.predict((data.dev.encoded_for(shared.embedding_head), data.dev.prepared))
    dev = per_corpus_macro_f1(dev_frame, predicted)
    log(
        f"per-language Latin weights: dev mean macro-F1 {dev['mean']:.4f} "
        f"(w_arab={weights['Arab']}, "
        + ", ".join(f"w_{g}={weights[g]}" for g in router.groups_)
        + f"; router dev accuracy {router_report.get('dev_accuracy')})"
    )
    return routed, {
        "router": router_report,
        "arabic_weight": weights["Arab"],
        "latin_group_weights": {g: weights[g] for g in router.groups_},
        "temperature": round(temperature, 4),
        "dev": dev,
        "dev_latin_languages": latin_language_slices(dev_frame, predicted),
        "dev_routed_groups": {
            str(g): int(n) for g, n in zip(*np.unique(groups, return_counts=True), strict=True)
        },
        "coordinate_ascent": trace,
    }


def darija_train_rows(split: Split, *, seed_rows: bool = False) -> npt.NDArray[np.bool_]:
    """Real (not augmented) mostly-Latin Darija rows: what the Darija head learns from; the
    seed set's complaints only with ``seed_rows`` (see ``SentimentConfig.darija_seed_rows``)."""
    frame = split.frame
    if "language" not in frame.columns:
        return np.zeros(len(frame), dtype=bool)
    sources = frame["source"].astype(str)
    real = ~sources.str.endswith(AUGMENT_SUFFIX).to_numpy()
    if not seed_rows:
        real &= (sources != SEED_SOURCE).to_numpy()
    darija = [
        latin_group(language) == DARIJA_GROUP and dominant_script(text) == "Latn"
        for language, text in zip(frame["language"], split.prepared, strict=True)
    ]
    return real & np.asarray(darija, dtype=bool)


def fit_darija_head(
    config: SentimentConfig,
    data: SentimentData,
    routed: EnsembleSentimentClassifier,
    log: Log = log_to_stderr,
    *,
    tune: Sequence[str] | None = None,
) -> tuple[EnsembleSentimentClassifier | None, dict[str, Any]]:
    """The routed ensemble with a Latin-script Darija head: logistic regression on each
    post's embedding beside its Arabic spelling's (``arabizi_to_arabic``), fit on train's
    Latin-script Darija rows; C, the head's temperature and the group weights (``tune``: only
    those groups') chosen on the dev rows the router sends to ``ary-Latn`` (the rows it will
    score when served) and the rest of dev."""
    if data.encode is None:
        return None, {"skipped": "no encoder to embed the Arabic spellings with"}
    train = data.train.subset(darija_train_rows(data.train, seed_rows=config.darija_seed_rows))
    labels = train.frame["label"].astype(str).tolist()
    if sorted(set(labels)) != sorted(routed.labels_):
        classes = sorted(set(labels))
        return None, {"skipped": f"Latin-script Darija train rows have classes {classes}"}
    dev_frame = data.dev.frame.reset_index(drop=True)
    groups = routed.route(data.dev.prepared)
    dev_rows = np.flatnonzero(groups == DARIJA_GROUP)
    if not dev_rows.size:
        return None, {"skipped": "no dev row is routed to Latin-script Darija"}

    def spelled(texts: Sequence[str]) -> list[str]:
        return [arabizi_to_arabic(text) for text in texts]

    x = darija_features(
        train.embeddings, data.encode("darija-train-arabizi", spelled(train.prepared))
    )
    dev_embeddings = data.dev.embeddings
    dev_view = np.full(dev_embeddings.shape, np.nan, dtype=np.float32)
    dev_view[dev_rows] = data.encode(
        "darija-dev-arabizi", spelled([data.dev.prepared[i] for i in dev_rows])
    )
    dev_inputs = (data.dev.encoded_for(routed.embedding_head), data.dev.prepared, dev_view)
    dev_features = darija_features(dev_embeddings[dev_rows], dev_view[dev_rows])
    dev_labels = dev_frame["label"].astype(str).to_numpy()
    start = {"Arab": routed.arabic_weight, **(routed.latin_group_weights or {})}
    darija_groups = sorted(routed.latin_group_weights or {})
    by_c: dict[str, dict[str, Any]] = {}
    best: tuple[float, EnsembleSentimentClassifier | None, dict[str, Any]] = (-1.0, None, {})
    for c in config.darija_C_grid:
        head = EmbeddingSentimentClassifier(C=c, random_state=config.seed).fit(x, labels)
        truth = _label_index(head.labels_, dev_labels[dev_rows].tolist())
        head.temperature_ = fit_temperature(head.decision_function(dev_features), truth)
        probe = EnsembleSentimentClassifier(
            routed.embedding_head,
            routed.text_head,
            routed.arabic_weight,
            routed.latin_weight,
            routed.temperature,
            latin_group_weights=routed.latin_group_weights,
            router=routed.router,
            darija_head=head,
        )
        log_embedding, log_text = probe.member_log_proba(dev_inputs)
        weights, temperature, _ = choose_group_weights(
            log_embedding,
            log_text,
            groups,
            dev_frame,
            routed.labels_,
            config.weight_grid,
            start,
            tune=tune,
        )
        candidate = EnsembleSentimentClassifier(
            routed.embedding_head,
            routed.text_head,
            weights["Arab"],
            routed.latin_weight,
            temperature,
            latin_group_weights={g: weights[g] for g in darija_groups},
            router=routed.router,
            darija_head=head,
        )
        predicted = candidate.predict(dev_inputs)
        dev = per_corpus_macro_f1(dev_frame, predicted)
        alone = f1_score(dev_labels[dev_rows], head.predict(dev_features), average="macro")
        by_c[str(c)] = {
            "dev": dev,
            "dev_darija_rows_head_alone_macro_f1": round(float(alone), 4),
            "dev_latin_languages": latin_language_slices(dev_frame, predicted),
            "latin_group_weights": {g: weights[g] for g in darija_groups},
            "arabic_weight": weights["Arab"],
            "temperature": round(temperature, 4),
        }
        log(
            f"Darija head C={c}: dev mean macro-F1 {dev['mean']:.4f} (head alone on the "
            f"{dev_rows.size} dev rows routed to {DARIJA_GROUP}: {alone:.4f}; "
            f"w_{DARIJA_GROUP}={weights[DARIJA_GROUP]})"
        )
        if dev["mean"] > best[0]:
            best = (dev["mean"], candidate, {"C": c, **by_c[str(c)]})
    return best[1], {
        "train_rows": len(train),
        "dev_rows_routed": int(dev_rows.size),
        "by_C": by_c,
        **best[2],
    }


def fit_darija_on(
    base: Any, config: SentimentConfig, data: SentimentData, log: Log = log_to_stderr
) -> tuple[EnsembleSentimentClassifier, dict[str, Any]]:
    """A published routed ensemble (``config.base_version``) with a Darija head added, and
    nothing else refit: its members, router and the other groups' weights are kept, so only
    the texts it routes to Latin-script Darija can score differently. Refused where the head
    does not raise the dev mean per-corpus macro-F1."""
    started = time.perf_counter()
    if not isinstance(base, EnsembleSentimentClassifier) or base.router is None:
        raise ValueError(f"{config.base_version} is not a sentiment ensemble with a router")
    if base.darija_head is not None:
        raise ValueError(f"{config.base_version} already has a Darija head")
    dev_frame = data.dev.frame.reset_index(drop=True)
    dev_base = per_corpus_macro_f1(
        dev_frame, base.predict((data.dev.encoded_for(base.embedding_head), data.dev.prepared))
    )
    model, darija = fit_darija_head(config, data, base, log, tune=[DARIJA_GROUP])
    if model is None:
        raise ValueError(f"no Darija head: {darija['skipped']}")
    if darija["dev"]["mean"] <= dev_base["mean"]:
        raise ValueError(
            f"the Darija head does not raise {config.base_version}'s dev mean macro-F1 "
            f"({darija['dev']['mean']:.4f} vs {dev_base['mean']:.4f})"
        )
    log(
        f"{config.base_version} + Darija head: dev mean {dev_base['mean']:.4f} -> "
        f"{darija['dev']['mean']:.4f}"
    )
    return model, {
        "base_version": config.base_version,
        "base_dev": dev_base,
        "ensemble": {"darija": {**darija, "kept": True}},
        "chosen": model.kind,
        "train_rows": darija["train_rows"],
        "dev_rows": len(data.dev),
        "corrections": 0,
        "augmented_rows": 0,
        "fit_seconds": round(time.perf_counter() - started, 1),
    }


# -- topics --------------------------------------------------------------------------------


@dataclass
class TopicsData:
    train: Split
    labels: list[str]
    corrections: int = 0


def load_topic_negatives(config: TopicsConfig, data_dir: Path | None = None) -> pd.DataFrame:
    """Off-domain rows with no topic: ``negatives_per_corpus`` tweets drawn (seeded) from the
    train split of each of ``negative_corpora``, which are general Moroccan tweets, not
    complaints. Their test splits stay out: they measure off-domain tagging at evaluation."""
    from training.corpora import load_corpus

    if config.negatives_per_corpus == 0:
        return pd.DataFrame(columns=["text", "language", "script", "topics", "split", "source"])
    frames = []
    for name in config.negative_corpora:
        if not CORPORA[name].trainable:
            raise ValueError(f"{name} may not train the shipped model (its licence)")
        train = load_corpus(name, data_dir).query("split == 'train'")
        train = train[train["text"].str.strip().astype(bool)].drop_duplicates("text")
        take = min(config.negatives_per_corpus, len(train))
        drawn = train.sample(n=take, random_state=config.seed)
        frames.append(drawn[["text", "language", "script", "split", "source"]])
    negatives = pd.concat(frames, ignore_index=True)
    negatives["topics"] = [[] for _ in range(len(negatives))]
    negatives["negative"] = True
    return negatives


def negative_rows(frame: pd.DataFrame) -> npt.NDArray[np.bool_]:
    """Rows added as off-domain negatives (scored for tagging rate, not for topic F1)."""
    if "negative" not in frame:
        return np.zeros(len(frame), dtype=bool)
    return frame["negative"].eq(True).to_numpy()


def load_topics_data(
    config: TopicsConfig,
    cache: EmbeddingCache,
    *,
    seed: pd.DataFrame | None = None,
    corrections: pd.DataFrame | None = None,
    negatives: pd.DataFrame | None = None,
) -> TopicsData:
    """The seed set's train split (+ corrections, + off-domain negatives), embedded; the test
    split is never loaded."""
    from training.baseline import TAXONOMY
    from training.corpora import load_seed_topics

    seed = seed if seed is not None else load_seed_topics()
    if not len(seed):
        raise ValueError("no datasets/seed_topics/*.jsonl: nothing to train topics on")
    embed = functools.partial(embed_frame, cache, layered=config.encoder_layers is not None)
    everything = embed("seed_topics-all", seed)
    train = everything.subset((everything.frame["split"] == "train").to_numpy())
    if config.max_train_rows is not None and len(train) > config.max_train_rows:
        rng = np.random.default_rng(config.seed)
        keep = np.zeros(len(train), dtype=bool)
        keep[rng.choice(len(train), config.max_train_rows, replace=False)] = True
        train = train.subset(keep)
    n_corrections = 0
    if corrections is not None and len(corrections):
        n_corrections = len(corrections)
        train = Split.concat([train, embed("corrections-topics-train", corrections)])
    if negatives is not None and len(negatives):
        train = Split.concat([train, embed("topic-negatives-train", negatives)])
    return TopicsData(train, list(TAXONOMY), n_corrections)


def topic_augmentations(train: Split, seed: int) -> list[tuple[int, str]]:
    """``(row, Arabizi spelling)`` for each Arabic-script Darija row, for the char n-gram member.

    Latin-script Darija is where the encoder is weakest; its n-gram member learns from these
    copies the spellings (3/7/9, ch, kh) that Arabizi writers use for the same words.
    """
    rng = np.random.default_rng(seed)
    languages = (
        train.frame["language"].astype(str).tolist()
        if "language" in train.frame
        else ["und"] * len(train)
    )
    return [
        (row, model_input(arabic_to_arabizi(text, rng)))
        for row, (language, text) in enumerate(zip(languages, train.prepared, strict=True))
        if language == "ary" and dominant_script(text) == "Arab"
    ]


def pairing_groups(
    embeddings: npt.ArrayLike, languages: Sequence[str], threshold: float
) -> npt.NDArray[np.int64]:
    """Group id per row: rows linked by cross-language mutual nearest neighbours at cosine >=
    ``threshold`` (connected components) share a group; every other row is its own group.

    The seed set has lines retold in another language (most French train lines retell Arabic
    ones); with them in different folds, cross-validation scores a line after training on its
    translation and overstates what the head does on new complaints.
    """
    x = np.asarray(embeddings, dtype=np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    langs = np.asarray(list(languages), dtype=object)
    parent = np.arange(len(x))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = int(parent[i])
        return i

    for a in sorted(set(langs)):
        for b in sorted(set(langs)):
            if a >= b:
                continue
            rows_a, rows_b = np.flatnonzero(langs == a), np.flatnonzero(langs == b)
            similarity = x[rows_a] @ x[rows_b].T
            best_b, best_a = similarity.argmax(axis=1), similarity.argmax(axis=0)
            for i, j in enumerate(best_b):
                if best_a[j] == i and similarity[i, j] >= threshold:
                    parent[root(int(rows_a[i]))] = root(int(rows_b[j]))
    return np.asarray([root(i) for i in range(len(x))], dtype=np.int64)


def _oof_macro_f1(y: npt.NDArray[np.int8], scores: FloatArray) -> tuple[float, FloatArray]:
    thresholds = best_thresholds(y, scores)
    predicted = (scores >= thresholds).astype(np.int8)
    return float(f1_score(y, predicted, average="macro", zero_division=0.0)), thresholds


def topic_cv_breakdown(
    y: npt.NDArray[np.int8],
    scores: FloatArray,
    thresholds: npt.ArrayLike,
    languages: Sequence[str],
    labels: Sequence[str],
) -> dict[str, Any]:
    """Out-of-fold F1 per topic and macro-F1 per variety (and per variety x topic), so that what
    to improve next is chosen from cross-validation inside train, never from the test split."""
    predicted = (scores >= np.asarray(thresholds)).astype(np.int8)
    langs = np.asarray(list(languages), dtype=object)

    def per_topic(rows: npt.NDArray[np.bool_]) -> dict[str, float]:
        values = f1_score(y[rows], predicted[rows], average=None, zero_division=0.0)
        return {label: round(float(v), 4) for label, v in zip(labels, values, strict=True)}

    everything = np.ones(len(y), dtype=bool)
    by_language: dict[str, float] = {}
    by_language_topic: dict[str, dict[str, float]] = {}
    for language in sorted(set(langs.tolist())):
        rows = langs == language
        by_language[language] = round(
            float(f1_score(y[rows], predicted[rows], average="macro", zero_division=0.0)), 4
        )
        by_language_topic[language] = per_topic(rows)
    return {
        "by_topic": per_topic(everything),
        "by_language": by_language,
        "by_language_topic": by_language_topic,
    }


def shrink_thresholds(thresholds: npt.ArrayLike, shrinkage: float) -> FloatArray:
    """Per-topic thresholds pulled toward their mean: a cut tuned on a hundred positives
    overfits its own out-of-fold scores, a shared cut does not."""
    values = np.asarray(thresholds, dtype=np.float64)
    return np.asarray((1.0 - shrinkage) * values + shrinkage * values.mean())


def topic_head_candidates(config: TopicsConfig) -> dict[str, TopicHead]:
    """The encoder member's candidates, by name, for cross-validation inside train to choose
    from: one per C for the logistic head, the configured network for the MLP head."""
    cv, seed, layers = config.cv, config.seed, config.encoder_layers
    if config.embedding_head == "logistic":
        return {
            f"C={c}": EmbeddingTopicClassifier(C=c, cv=cv, random_state=seed, encoder_layers=layers)
            for c in config.C_grid
        }
    mlp = MlpTopicClassifier(
        bag=config.mlp_bag,
        hidden=config.mlp_hidden,
        dropout=config.mlp_dropout,
        weight_decay=config.mlp_weight_decay,
        learning_rate=config.mlp_learning_rate,
        epochs=config.mlp_epochs,
        cv=cv,
        random_state=seed,
        encoder_layers=layers,
    )
    return {f"hidden={config.mlp_hidden}": mlp}


def topic_cv_groups(
    config: TopicsConfig, train: Split, log: Log = log_to_stderr
) -> npt.NDArray[np.int64] | None:
    """Cross-validation groups of the topic heads (see `pairing_groups`), or None."""
    if config.cv_groups != "pairs" or "language" not in train.frame:
        return None
    languages = train.frame["language"].astype(str).tolist()
    groups = pairing_groups(train.embeddings, languages, config.pair_threshold)
    log(f"topics cv: {len(train) - len(set(groups.tolist()))} rows grouped with a retelling")
    return groups


def text_member_inputs(
    config: TopicsConfig, train: Split
) -> tuple[list[str], list[tuple[int, str]]]:
    """What the char n-gram member reads: the normalised texts and their Arabizi copies."""
    augment = topic_augmentations(train, config.seed) if config.transliteration_augment else []
    return normalize_all(train.prepared), augment


def text_topic_oof_scores(
    config: TopicsConfig,
    inputs: tuple[list[str], list[tuple[int, str]]],
    y: npt.NDArray[np.int8],
    c: float,
    groups: npt.NDArray[np.int64] | None,
    seed: int | None = None,
) -> FloatArray:
    """Out-of-fold scores of the char n-gram member at ``C = c`` on ``text_member_inputs``
    (Arabizi copies train only); ``seed`` draws the folds (default: the config's)."""
    texts, augment = inputs
    fold_seed = config.seed if seed is None else seed
    probe = TfidfTopicClassifier(C=c, cv=config.cv, random_state=fold_seed)
    return probe._out_of_fold_scores(texts, y, augment=augment, groups=groups)


def repeated_oof_scores(
    head: TopicHead,
    inputs: npt.ArrayLike,
    y: npt.NDArray[np.int8],
    groups: npt.NDArray[np.int64] | None,
    repeats: int,
) -> FloatArray:
    """Out-of-fold scores averaged over ``repeats`` fold draws, each fit by one network (or
    regression) seeded apart: what a bag of ``repeats`` members scores on rows it did not see,
    so thresholds tuned on them suit the bagged head, and depend less on one draw of folds."""
    if repeats == 1:
        return head.out_of_fold_scores(inputs, y, groups=groups)
    total = np.zeros(y.shape, dtype=np.float64)
    for repeat in range(repeats):
        params = {**head.get_params(), "random_state": head.random_state + repeat}
        if "bag" in params:
            params["bag"] = 1
        total += type(head)(**params).out_of_fold_scores(inputs, y, groups=groups)
    return total / repeats


def served_recipe_oof_scores(
    config: TopicsConfig, data: TopicsData, selection: dict[str, Any], log: Log = log_to_stderr
) -> FloatArray:
    """Out-of-fold scores of the recipe a published version chose (its head, its n-gram C and
    its ensemble weight, from ``selection`` = the version's training report), without
    re-running the choice: what label review ranks suspect labels by."""
    y = topic_indicator(data.train.frame["topics"].tolist(), data.labels)
    groups = topic_cv_groups(config, data.train, log)
    candidates = topic_head_candidates(config)
    head_params = selection.get("embedding_head", {}).get("params", {})
    head = next(
        (h for h in candidates.values() if h.get_params() == head_params),
        next(iter(candidates.values())),
    )
    log(f"topics oof: {head.kind} {head.get_params()}")
    scores = head.out_of_fold_scores(data.train.encoded_for(head), y, groups=groups)
    if selection.get("chosen") != EnsembleTopicClassifier.kind:
        return scores
    weight = float(selection["ensemble"]["weight"])
    text_inputs = text_member_inputs(config, data.train)
    text = text_topic_oof_scores(config, text_inputs, y, float(selection["text_head"]["C"]), groups)
    return weight * scores + (1.0 - weight) * text


def fit_topics(
    config: TopicsConfig, data: TopicsData, log: Log = log_to_stderr
) -> tuple[Any, dict[str, Any]]:
    """Encoder topic head (candidates compared by cross-validation inside train), optionally
    pooled with the char n-gram head (weight and thresholds from the same out-of-fold scores)."""
    started = time.perf_counter()
    labels = data.labels
    y = topic_indicator(data.train.frame["topics"].tolist(), labels)
    layers = config.encoder_layers
    # negatives are fit on, but F1 and thresholds come from the complaints: off-domain rows are
    # far more common among them than in a complaint stream, and would push every cut up
    negative = negative_rows(data.train.frame)
    scored = ~negative

    def cv_score(scores: FloatArray) -> tuple[float, FloatArray]:
        return _oof_macro_f1(y[scored], scores[scored])

    groups = topic_cv_groups(config, data.train, log)
    candidates = topic_head_candidates(config)
    by_candidate: dict[str, float] = {}
    oof: dict[str, FloatArray] = {}
    repeats = config.mlp_bag if config.embedding_head == "mlp" else 1
    for name, candidate in candidates.items():
        inputs = data.train.encoded_for(candidate)
        oof[name] = repeated_oof_scores(candidate, inputs, y, groups, repeats)
        by_candidate[name] = round(cv_score(oof[name])[0], 4)
        log(f"{candidate.kind} {name}: cv macro-F1 {by_candidate[name]:.4f}")
    best = max(candidates, key=lambda name: by_candidate[name])
    cv_head, thresholds = cv_score(oof[best])
    thresholds = shrink_thresholds(thresholds, config.threshold_shrinkage)
    head = candidates[best]
    topics = data.train.frame["topics"].tolist()
    head.fit(data.train.encoded_for(head), topics, labels=labels, thresholds=thresholds)
    report: dict[str, Any] = {
        "embedding_head": {
            "kind": head.kind,
            "params": head.get_params(),
            "cv_macro_f1_by_candidate": by_candidate,
            "encoder_layers": layers,
        },
        "cv_grouped_rows": 0 if groups is None else len(groups) - len(set(groups.tolist())),
    }
    model: Any = head
    if config.ensemble:
        text_inputs = text_member_inputs(config, data.train)
        augment = text_inputs[1]
        text_by_c: dict[str, float] = {}
        text_oof: dict[float, FloatArray] = {}
        for c in config.tfidf_C_grid:
            text_oof[c] = text_topic_oof_scores(config, text_inputs, y, c, groups)
            text_by_c[str(c)] = round(cv_score(text_oof[c])[0], 4)
            log(f"tfidf topics C={c}: cv macro-F1 {text_by_c[str(c)]:.4f}")
        text_c = max(config.tfidf_C_grid, key=lambda c: text_by_c[str(c)])
        if repeats > 1:
            # the chosen C's scores over as many fold draws as the embedding member's
            text_oof[text_c] = np.mean(
                [text_oof[text_c]]
                + [
                    text_topic_oof_scores(config, text_inputs, y, text_c, groups, config.seed + r)
                    for r in range(1, repeats)
                ],
                axis=0,
            )
        by_weight: dict[str, float] = {}
        best_weight, best_score, best_thresholds_ = 1.0, -1.0, thresholds
        for weight in config.weight_grid:
            pooled = weight * oof[best] + (1.0 - weight) * text_oof[text_c]
            score, pooled_thresholds = cv_score(pooled)
            by_weight[str(weight)] = round(score, 4)
            if score > best_score:
                best_weight, best_score, best_thresholds_ = weight, score, pooled_thresholds
        log(
            f"topics ensemble: weight {best_weight} cv macro-F1 {best_score:.4f} "
            f"(embedding alone {cv_head:.4f})"
        )
        report["text_head"] = {
            "C": text_c,
            "cv_macro_f1_by_C": text_by_c,
            "augmented_rows": len(augment),
        }
        report["ensemble"] = {"weight": best_weight, "cv_macro_f1_by_weight": by_weight}
        if best_score > cv_head:
            text_head = TfidfTopicClassifier(C=text_c, cv=config.cv, random_state=config.seed)
            # its own thresholds are unused by the ensemble; tuned on its out-of-fold scores
            text_head.fit(
                data.train.prepared,
                data.train.frame["topics"].tolist(),
                labels=labels,
                augment=augment,
            )
            best_thresholds_ = shrink_thresholds(best_thresholds_, config.threshold_shrinkage)
            model = EnsembleTopicClassifier(
                head, text_head, best_weight, [float(t) for t in best_thresholds_]
            )
    chosen_scores, chosen_thresholds = oof[best], thresholds
    if isinstance(model, EnsembleTopicClassifier):
        chosen_scores = model.weight * oof[best] + (1.0 - model.weight) * text_oof[text_c]
        chosen_thresholds = best_thresholds_
    languages = (
        data.train.frame["language"].astype(str).tolist()
        if "language" in data.train.frame
        else ["und"] * len(data.train)
    )
    report["threshold_shrinkage"] = config.threshold_shrinkage
    report["cv_breakdown"] = topic_cv_breakdown(
        y[scored],
        chosen_scores[scored],
        chosen_thresholds,
        [lang for lang, keep in zip(languages, scored, strict=True) if keep],
        labels,
    )
    if negative.any():
        tagged = (chosen_scores[negative] >= np.asarray(chosen_thresholds)).any(axis=1)
        report["negatives"] = {
            "rows": int(negative.sum()),
            "cv_tagged": round(float(tagged.mean()), 4),
        }
    report["cv_macro_f1"] = round(
        max(
            cv_head,
            report.get("ensemble", {})
            .get("cv_macro_f1_by_weight", {})
            .get(str(report.get("ensemble", {}).get("weight")), 0.0),
        ),
        4,
    )
    report["chosen"] = model.kind
    report["train_rows"] = len(data.train)
    report["corrections"] = data.corrections
    report["fit_seconds"] = round(time.perf_counter() - started, 1)
    return model, report
