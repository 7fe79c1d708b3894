"""Heads on the shared encoder's embeddings, and ensembles of them with the char n-gram heads.

The pipeline encodes every text once (multilingual-e5-small, mean-pooled, L2-normalised) and
hands the same matrix to every head whose ``input_kind`` is ``"embedding"``; heads whose
``input_kind`` is ``"embedding+text"`` get the tuple ``(embeddings, texts)`` because char
n-grams still carry what the encoder misses in Latin-script Darija. A head fit on several
layers' pooled outputs (``encoder_layers=(6, 8, 10, 12)``) reads ``"layers"``: the
(n, layers, dim) array from the same encoder pass (``models.encoder.Encoder.encode_layers``).

Weights are stored as ``config.json`` + ``weights.safetensors`` (no pickle); inference is a few
numpy matrix products, so a loaded head needs neither scikit-learn nor torch to predict.
Ensembles store their members in sub-directories, each in its own format; the sentiment
ensemble's optional Latin-script language router is a char n-gram pipeline saved as the TF-IDF
members are (one compressed joblib file).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import joblib
import numpy as np
import numpy.typing as npt
from safetensors.numpy import load_file, save_file
from scipy.optimize import minimize_scalar
from scipy.special import erf, expit, log_softmax, softmax
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline

from models.heads.tfidf import best_thresholds, cv_folds
from models.language import char_ngram_classifier, compact, dominant_script
from models.registry import MODEL_KINDS, register_model_kind

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.safetensors"
FORMAT_VERSION = 1
# An ensemble with a Latin-script language router writes this version, so that code which
# predates the router refuses it instead of silently ignoring the per-language weights.
ROUTED_FORMAT_VERSION = 2
# A head that reads several encoder layers writes this version, so that code which predates
# layered inputs refuses it instead of failing on a (n, layers, dim) array.
LAYERED_FORMAT_VERSION = 2
# A sentiment head that standardises its inputs writes this version, so that code which predates
# it refuses the head instead of applying its weights to unstandardised features.
STANDARDIZED_FORMAT_VERSION = 3
# A topic network bagged over several initialisations writes this version, so that code which
# predates bagging refuses it instead of failing on its per-member weights.
BAGGED_FORMAT_VERSION = 3
# A sentiment ensemble with a Latin-script Darija head (which also reads the Arabic spelling's
# embedding) writes this version, so that code which predates it refuses the ensemble instead of
# scoring Latin-script Darija without that head.
DARIJA_FORMAT_VERSION = 3
ROUTER_DIR = "router"
ROUTER_FILE = "model.joblib"
DARIJA_DIR = "darija"
# the router group whose texts the Darija head scores (with their Arabic spelling)
DARIJA_GROUP = "ary-Latn"

FloatArray = npt.NDArray[np.float64]
EmbeddingsAndTexts = tuple[npt.NDArray[np.floating[Any]], Sequence[str]]
# ``(encoded, texts, arabizi)``: ``arabizi`` holds, for the rows an ensemble's Darija head reads,
# the embedding of the text's Arabic spelling (``models.text.arabizi``), and NaN elsewhere
WithArabizi = tuple[npt.NDArray[np.floating[Any]], Sequence[str], npt.NDArray[np.floating[Any]]]


def fit_temperature(logits: FloatArray, truth: npt.NDArray[np.int64]) -> float:
    """Softmax temperature minimising log-loss on held-out logits (Guo et al. 2017)."""

    def nll(log_t: float) -> float:
        scaled = log_softmax(logits / np.exp(log_t), axis=1)
        return float(-scaled[np.arange(len(truth)), truth].mean())

    result = minimize_scalar(nll, bounds=(-3.0, 3.0), method="bounded")
    return float(np.exp(result.x))


def _as_matrix(embeddings: npt.ArrayLike) -> FloatArray:
    matrix = np.asarray(embeddings, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError(
            f"expected a 2-d (n_texts, dim) embedding matrix, got shape {matrix.shape}; "
            "pass the encoder's output, not texts"
        )
    return matrix


def _layer_features(layers: npt.ArrayLike, chosen: Sequence[int]) -> FloatArray:
    """Concatenate the chosen layers (1-based, as in the encoder's ``hidden_states``) of an
    (n, layers, dim) pooled-layers array into (n, len(chosen) * dim) features."""
    array = np.asarray(layers)
    if array.ndim != 3:
        raise ValueError(
            f"expected (n_texts, layers, dim) pooled encoder layers, got shape {array.shape}; "
            "pass the encoder's encode_layers output"
        )
    if not all(1 <= layer <= array.shape[1] for layer in chosen):
        raise ValueError(f"layers {list(chosen)} out of range for {array.shape[1]} encoder layers")
    # select before widening: the pipeline passes all layers, the head reads a few
    chosen_layers = array[:, [layer - 1 for layer in chosen]]
    return chosen_layers.reshape(len(array), -1).astype(np.float64)


def _standardisation(x: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Per-feature training mean and deviation, for heads that standardise their inputs (the
    small constant keeps a constant feature's division finite)."""
    return x.mean(axis=0), x.std(axis=0) + 1e-6


class EncoderInputs:
    """What an embedding head reads: the (n, dim) embeddings, or, with ``encoder_layers``, the
    (n, layers, dim) pooled layers, of which it concatenates those layers side by side."""

    encoder_layers: tuple[int, ...] | None = None

    @property
    def input_kind(self) -> str:
        return "embedding" if self.encoder_layers is None else "layers"

    def features(self, inputs: npt.ArrayLike) -> FloatArray:
        """The matrix the head's weights apply to."""
        if self.encoder_layers is None:
            return _as_matrix(inputs)
        return _layer_features(inputs, self.encoder_layers)

    def _encoder_params(self) -> dict[str, Any]:
        return {} if self.encoder_layers is None else {"encoder_layers": list(self.encoder_layers)}

    def _format_version(self) -> int:
        return FORMAT_VERSION if self.encoder_layers is None else LAYERED_FORMAT_VERSION


def _write(directory: Path, config: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    payload = {"format_version": FORMAT_VERSION, **config}
    (directory / CONFIG_FILE).write_text(
        json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    if arrays:
        tensors = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in arrays.items()}
        save_file(tensors, str(directory / WEIGHTS_FILE))


def _read(
    directory: Path, kind: str, max_version: int = FORMAT_VERSION
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    config = json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8"))
    if config.get("kind") != kind:
        raise ValueError(
            f"{directory / CONFIG_FILE} holds a '{config.get('kind')}' model, not '{kind}'"
        )
    if config.get("format_version", 0) > max_version:
        raise ValueError(f"{directory}: format_version {config['format_version']} is too new")
    arrays = load_file(str(directory / WEIGHTS_FILE)) if (directory / WEIGHTS_FILE).exists() else {}
    return config, {k: v.astype(np.float64) for k, v in arrays.items()}


# -- sentiment -----------------------------------------------------------------------------


@register_model_kind
class EmbeddingSentimentClassifier(EncoderInputs):
    """Single-label classifier on frozen embeddings: logistic regression or a small MLP.

    ``hidden=()`` is multinomial logistic regression; ``hidden=(256,)`` a one-hidden-layer ReLU
    MLP. Probabilities are temperature-calibrated on held-out data passed to ``fit``.
    With ``encoder_layers`` it reads pooled encoder layers (see ``EncoderInputs``). With
    ``standardize`` each feature is centred and scaled by its training mean and deviation first
    (L2-normalised embeddings have tiny, unequal per-dimension spreads, which Adam and an L2
    penalty treat badly).
    """

    kind: ClassVar[str] = "embedding-sentiment"

    def __init__(
        self,
        C: float = 1.0,
        hidden: tuple[int, ...] = (),
        alpha: float = 1e-3,
        class_weight: str | None = "balanced",
        max_iter: int = 2000,
        random_state: int = 0,
        encoder_layers: Sequence[int] | None = None,
        standardize: bool = False,
    ) -> None:
        self.C = C
        self.hidden = hidden
        self.alpha = alpha
        self.class_weight = class_weight
        self.max_iter = max_iter
        self.random_state = random_state
        self.encoder_layers = tuple(encoder_layers) if encoder_layers else None
        self.standardize = standardize

    def get_params(self) -> dict[str, Any]:
        return {
            "C": self.C,
            "hidden": list(self.hidden),
            "alpha": self.alpha,
            "class_weight": self.class_weight,
            "max_iter": self.max_iter,
            "random_state": self.random_state,
            **self._encoder_params(),
            **({"standardize": True} if self.standardize else {}),
        }

    def _format_version(self) -> int:
        return STANDARDIZED_FORMAT_VERSION if self.standardize else super()._format_version()

    def _inputs(self, embeddings: npt.ArrayLike) -> FloatArray:
        """The features the weights apply to (standardised when the head standardises)."""
        x = self.features(embeddings)
        return (x - self.input_mean_) / self.input_scale_ if self.standardize else x

    def fit(
        self,
        embeddings: npt.ArrayLike,
        labels: Sequence[str],
        *,
        sample_weight: npt.ArrayLike | None = None,
        calibration_embeddings: npt.ArrayLike | None = None,
        calibration_labels: Sequence[str] | None = None,
    ) -> Self:
        """Fit the head; calibrate the temperature on the calibration set when given."""
        x = self.features(embeddings)
        if self.standardize:
            self.input_mean_, self.input_scale_ = _standardisation(x)
            x = (x - self.input_mean_) / self.input_scale_
        y = np.asarray(labels, dtype=object)
        weights = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        if not self.hidden:
            model = LogisticRegression(
                C=self.C, class_weight=self.class_weight, max_iter=self.max_iter
            ).fit(x, y, sample_weight=weights)
            self.layers_ = [(model.coef_.T.copy(), model.intercept_.copy())]
            self.labels_ = [str(c) for c in model.classes_]
        else:
            mlp = MLPClassifier(
                hidden_layer_sizes=tuple(self.hidden),
                alpha=self.alpha,
                early_stopping=True,
                validation_fraction=0.1,
                n_iter_no_change=8,
                max_iter=self.max_iter,
                random_state=self.random_state,
            )
            if self.class_weight == "balanced":
                # as LogisticRegression does: class weights multiply the sample weights
                base = np.ones(len(y)) if weights is None else weights
                classes = np.unique(y)
                per_class = {c: base.sum() / (len(classes) * base[y == c].sum()) for c in classes}
                weights = base * np.asarray([per_class[label] for label in y])
            mlp.fit(x, y, sample_weight=weights)
            self.layers_ = [
                (np.asarray(w, dtype=np.float64), np.asarray(b, dtype=np.float64))
                for w, b in zip(mlp.coefs_, mlp.intercepts_, strict=True)
            ]
            self.labels_ = [str(c) for c in mlp.classes_]
            if len(self.labels_) == 2:
                raise ValueError("the MLP head needs at least 3 classes (binary output is 1-d)")
        self.temperature_ = 1.0
        if calibration_embeddings is not None and calibration_labels is not None:
            index = {label: i for i, label in enumerate(self.labels_)}
            truth = np.asarray([index[str(label)] for label in calibration_labels])
            logits = self.decision_function(calibration_embeddings)
            self.temperature_ = fit_temperature(logits, truth)
        return self

    def decision_function(self, embeddings: npt.ArrayLike) -> FloatArray:
        """Uncalibrated logits, columns in ``labels_`` order."""
        out = self._inputs(embeddings)
        for i, (weight, bias) in enumerate(self.layers_):
            out = out @ weight + bias
            if i < len(self.layers_) - 1:
                out = np.maximum(out, 0.0)
        return out

    def predict_proba(self, embeddings: npt.ArrayLike) -> FloatArray:
        """Calibrated probabilities, columns in ``labels_`` order."""
        return np.asarray(softmax(self.decision_function(embeddings) / self.temperature_, axis=1))

    def predict(self, embeddings: npt.ArrayLike) -> npt.NDArray[np.object_]:
        proba = self.predict_proba(embeddings)
        return np.asarray(self.labels_, dtype=object)[proba.argmax(axis=1)]

    def save(self, directory: Path) -> None:
        arrays: dict[str, np.ndarray] = {}
        for i, (weight, bias) in enumerate(self.layers_):
            arrays[f"layer{i}.weight"] = weight
            arrays[f"layer{i}.bias"] = bias
        if self.standardize:
            arrays["input.mean"], arrays["input.scale"] = self.input_mean_, self.input_scale_
        config = {
            "format_version": self._format_version(),
            "kind": self.kind,
            "params": self.get_params(),
            "labels": self.labels_,
            "layers": len(self.layers_),
            "temperature": self.temperature_,
        }
        _write(directory, config, arrays)

    @classmethod
    def load(cls, directory: Path) -> Self:
        config, arrays = _read(Path(directory), cls.kind, max_version=STANDARDIZED_FORMAT_VERSION)
        params = dict(config["params"])
        params["hidden"] = tuple(params.get("hidden", ()))
        model = cls(**params)
        if model.standardize:
            model.input_mean_, model.input_scale_ = arrays["input.mean"], arrays["input.scale"]
        model.labels_ = list(config["labels"])
        model.temperature_ = float(config["temperature"])
        model.layers_ = [
            (arrays[f"layer{i}.weight"], arrays[f"layer{i}.bias"]) for i in range(config["layers"])
        ]
        return model


# -- topics --------------------------------------------------------------------------------


def topic_indicator(topics: Sequence[Sequence[str]], labels: Sequence[str]) -> npt.NDArray[np.int8]:
    """0/1 matrix (n_texts, n_labels) from each text's list of topic ids."""
    index = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((len(topics), len(labels)), dtype=np.int8)
    for row, row_topics in enumerate(topics):
        for topic in row_topics:
            if topic in index:
                matrix[row, index[topic]] = 1
    return matrix


class TopicHead(EncoderInputs):
    """What the multi-label topic heads share: per-topic thresholds tuned on out-of-fold scores
    of the training data (``cv`` folds, so the test split is never looked at and a small seed
    set needs no dev split), fit / predict / save / load. A subclass says how its weights are
    fit (``_fit_arrays``) and how they score (``_scores``); inference is numpy only."""

    kind: ClassVar[str]
    # the newest format ``load`` reads
    max_format_version: ClassVar[int] = LAYERED_FORMAT_VERSION
    cv: int
    random_state: int

    def get_params(self) -> dict[str, Any]:
        raise NotImplementedError

    def describe(self) -> str:
        """What the head is, in a phrase, for model cards."""
        raise NotImplementedError

    def _fit_arrays(
        self, x: FloatArray, y: npt.NDArray[np.int8], seed: int
    ) -> dict[str, FloatArray]:
        raise NotImplementedError

    def _scores(self, arrays: dict[str, FloatArray], x: FloatArray) -> FloatArray:
        raise NotImplementedError

    def out_of_fold_scores(
        self,
        inputs: npt.ArrayLike,
        y: npt.NDArray[np.int8],
        groups: npt.ArrayLike | None = None,
    ) -> FloatArray:
        """Scores of each training row from a model that did not see it (threshold tuning);
        rows sharing a ``groups`` value (e.g. a complaint and its retelling) share a fold."""
        x = self.features(inputs)
        scores = np.zeros(y.shape, dtype=np.float64)
        group_array = None if groups is None else np.asarray(groups)
        folds = cv_folds(len(x), self.cv, self.random_state, group_array)
        for fold, (train_index, test_index) in enumerate(folds):
            arrays = self._fit_arrays(x[train_index], y[train_index], self.random_state + fold)
            scores[test_index] = self._scores(arrays, x[test_index])
        return scores

    def fit(
        self,
        inputs: npt.ArrayLike,
        topics: Sequence[Sequence[str]],
        *,
        labels: Sequence[str] | None = None,
        thresholds: npt.ArrayLike | None = None,
    ) -> Self:
        """``topics``: topic ids per text; ``labels`` fixes column order; thresholds from CV."""
        x = self.features(inputs)
        self.labels_ = (
            list(labels) if labels is not None else sorted({t for ts in topics for t in ts})
        )
        y = topic_indicator(topics, self.labels_)
        missing = [label for label, n in zip(self.labels_, y.sum(axis=0), strict=True) if not n]
        if missing:
            raise ValueError(
                f"no training example for topic(s) {missing}; add examples or drop them"
            )
        if thresholds is None:
            self.thresholds_ = best_thresholds(y, self.out_of_fold_scores(inputs, y))
        else:
            self.thresholds_ = np.asarray(thresholds, dtype=np.float64)
        self.arrays_ = self._fit_arrays(x, y, self.random_state)
        return self

    def predict_proba(self, inputs: npt.ArrayLike) -> FloatArray:
        """Per-topic scores in [0, 1] (not mutually exclusive), columns in ``labels_`` order."""
        x = self.features(inputs)  # a wrong input shape is reported before anything else
        return self._scores(self.arrays_, x)

    def predict(self, inputs: npt.ArrayLike) -> npt.NDArray[np.int8]:
        return (self.predict_proba(inputs) >= self.thresholds_).astype(np.int8)

    def save(self, directory: Path) -> None:
        config: dict[str, Any] = {
            "format_version": self._format_version(),
            "kind": self.kind,
            "params": self.get_params(),
            "labels": self.labels_,
        }
        _write(directory, config, {**self.arrays_, "thresholds": self.thresholds_})

    @classmethod
    def load(cls, directory: Path) -> Self:
        config, arrays = _read(Path(directory), cls.kind, max_version=cls.max_format_version)
        model = cls(**config["params"])
        model.labels_ = list(config["labels"])
        model.thresholds_ = arrays.pop("thresholds")
        model.arrays_ = arrays
        return model


@register_model_kind
class EmbeddingTopicClassifier(TopicHead):
    """Multi-label topics: one class-balanced logistic regression per topic on embeddings.

    With ``encoder_layers`` it reads pooled encoder layers (see ``EncoderInputs``).
    """

    kind: ClassVar[str] = "embedding-topics"

    def __init__(
        self,
        C: float = 4.0,
        cv: int = 5,
        random_state: int = 0,
        max_iter: int = 2000,
        encoder_layers: Sequence[int] | None = None,
    ):
        self.C = C
        self.cv = cv
        self.random_state = random_state
        self.max_iter = max_iter
        self.encoder_layers = tuple(encoder_layers) if encoder_layers else None

    def get_params(self) -> dict[str, Any]:
        return {
            "C": self.C,
            "cv": self.cv,
            "random_state": self.random_state,
            "max_iter": self.max_iter,
            **self._encoder_params(),
        }

    def describe(self) -> str:
        return "one class-balanced logistic regression per topic"

    def _fit_arrays(
        self, x: FloatArray, y: npt.NDArray[np.int8], seed: int
    ) -> dict[str, FloatArray]:
        weights = np.zeros((x.shape[1], y.shape[1]))
        biases = np.zeros(y.shape[1])
        for column in range(y.shape[1]):
            model = LogisticRegression(C=self.C, class_weight="balanced", max_iter=self.max_iter)
            model.fit(x, y[:, column])
            weights[:, column] = model.coef_[0]
            biases[column] = model.intercept_[0]
        return {"weights": weights, "biases": biases}

    def _scores(self, arrays: dict[str, FloatArray], x: FloatArray) -> FloatArray:
        return np.asarray(expit(x @ arrays["weights"] + arrays["biases"]))


# seeds of a bag's members are the head's seed plus multiples of this (apart from fold seeds)
BAG_SEED_STRIDE = 7919


def _gelu(x: FloatArray) -> FloatArray:
    """GELU as torch's default (erf form), so numpy inference equals the trained network."""
    return np.asarray(0.5 * x * (1.0 + erf(x / np.sqrt(2.0))))


@register_model_kind
class MlpTopicClassifier(TopicHead):
    """Multi-label topics: one hidden layer shared by every topic, on standardised features.

    Topics share evidence (a queue is a delay, a bribe at the counter is corruption and staff
    conduct): a shared hidden layer learns it once, where per-topic logistic regressions each
    learn alone. Trained with torch (AdamW, one-cycle schedule, dropout, BCE weighted by each
    topic's negatives/positives); predicts with numpy. With ``encoder_layers`` it reads pooled
    encoder layers (see ``EncoderInputs``).
    """

    kind: ClassVar[str] = "mlp-topics"
    max_format_version: ClassVar[int] = BAGGED_FORMAT_VERSION

    def __init__(
        self,
        hidden: int = 256,
        dropout: float = 0.3,
        weight_decay: float = 1e-2,
        learning_rate: float = 1e-3,
        epochs: int = 30,
        batch_size: int = 64,
        cv: int = 5,
        random_state: int = 0,
        encoder_layers: Sequence[int] | None = None,
        bag: int = 1,
    ):
        if bag < 1:
            raise ValueError(f"bag must be at least 1, got {bag}")
        self.bag = bag
        self.hidden = hidden
        self.dropout = dropout
        self.weight_decay = weight_decay
        self.learning_rate = learning_rate
        self.epochs = epochs
        self.batch_size = batch_size
        self.cv = cv
        self.random_state = random_state
        self.encoder_layers = tuple(encoder_layers) if encoder_layers else None

    def describe(self) -> str:
        bagged = f"the mean of {self.bag} networks" if self.bag > 1 else "a network"
        return (
            f"{bagged} with one hidden layer of {self.hidden} GELU units shared by every topic "
            f"(standardised inputs, dropout {self.dropout}, {self.epochs} epochs, BCE weighted "
            "by each topic's rarity)"
        )

    def _format_version(self) -> int:
        return BAGGED_FORMAT_VERSION if self.bag > 1 else super()._format_version()

    def get_params(self) -> dict[str, Any]:
        return {
            "hidden": self.hidden,
            "dropout": self.dropout,
            "weight_decay": self.weight_decay,
            "learning_rate": self.learning_rate,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "cv": self.cv,
            "random_state": self.random_state,
            **self._encoder_params(),
            **({"bag": self.bag} if self.bag > 1 else {}),
        }

    def _fit_arrays(
        self, x: FloatArray, y: npt.NDArray[np.int8], seed: int
    ) -> dict[str, FloatArray]:
        """One network's weights, or with ``bag`` > 1 each member's under ``bag{i}.``
        (initialised and shuffled from its own seed) beside the shared standardisation."""
        mean, scale = _standardisation(x)
        if self.bag == 1:
            return {"mean": mean, "scale": scale, **self._fit_network(x, y, seed, mean, scale)}
        arrays = {"mean": mean, "scale": scale}
        for member in range(self.bag):
            weights = self._fit_network(x, y, seed + BAG_SEED_STRIDE * member, mean, scale)
            arrays.update({f"bag{member}.{name}": value for name, value in weights.items()})
        return arrays

    def _fit_network(
        self,
        x: FloatArray,
        y: npt.NDArray[np.int8],
        seed: int,
        mean: FloatArray,
        scale: FloatArray,
    ) -> dict[str, FloatArray]:
        import torch  # training only: a loaded head predicts with numpy

        # seeded, without touching the caller's global torch RNG (dropout draws from it)
        with torch.random.fork_rng(devices=[]):
            generator = torch.Generator().manual_seed(seed)
            torch.manual_seed(seed)
            hidden = torch.nn.Linear(x.shape[1], self.hidden)
            output = torch.nn.Linear(self.hidden, y.shape[1])
            network = torch.nn.Sequential(
                torch.nn.Dropout(self.dropout),
                hidden,
                torch.nn.GELU(),
                torch.nn.Dropout(self.dropout),
                output,
            )
            positives = y.sum(axis=0)
            pos_weight = (len(y) - positives) / np.maximum(positives, 1)
            loss_of = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pos_weight).float())
            optimizer = torch.optim.AdamW(
                network.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay
            )
            inputs = torch.tensor((x - mean) / scale, dtype=torch.float32)
            targets = torch.tensor(y, dtype=torch.float32)
            batches = -(-len(x) // self.batch_size)
            schedule = torch.optim.lr_scheduler.OneCycleLR(
                optimizer, max_lr=self.learning_rate, total_steps=self.epochs * batches
            )
            network.train()
            for _ in range(self.epochs):
                order = torch.randperm(len(x), generator=generator)
                for start in range(0, len(x), self.batch_size):
                    rows = order[start : start + self.batch_size]
                    optimizer.zero_grad()
                    loss_of(network(inputs[rows]), targets[rows]).backward()
                    optimizer.step()
                    schedule.step()
        return {
            "hidden.weight": hidden.weight.detach().numpy().T.astype(np.float64),
            "hidden.bias": hidden.bias.detach().numpy().astype(np.float64),
            "output.weight": output.weight.detach().numpy().T.astype(np.float64),
            "output.bias": output.bias.detach().numpy().astype(np.float64),
        }

    def _scores(self, arrays: dict[str, FloatArray], x: FloatArray) -> FloatArray:
        standardised = (x - arrays["mean"]) / arrays["scale"]
        prefixes = [f"bag{m}." for m in range(self.bag)] if self.bag > 1 else [""]
        scores = np.zeros((len(x), arrays[f"{prefixes[0]}output.bias"].shape[0]))
        for prefix in prefixes:
            hidden = _gelu(
                standardised @ arrays[f"{prefix}hidden.weight"] + arrays[f"{prefix}hidden.bias"]
            )
            logits = hidden @ arrays[f"{prefix}output.weight"] + arrays[f"{prefix}output.bias"]
            scores += expit(logits)
        return np.asarray(scores / len(prefixes))


# -- ensembles -----------------------------------------------------------------------------


def _script_groups(texts: Sequence[str]) -> npt.NDArray[np.bool_]:
    """True where a text is mostly Latin script (where char n-grams help the encoder most)."""
    return np.asarray([dominant_script(text) == "Latn" for text in texts], dtype=bool)


def _split_inputs(
    inputs: EmbeddingsAndTexts, *, layered: bool = False
) -> tuple[npt.NDArray[np.floating[Any]], list[str]]:
    """``(embeddings, texts)`` checked; with ``layered``, ``(pooled layers, texts)``."""
    kind = "layers+text" if layered else "embedding+text"
    if not isinstance(inputs, tuple) or len(inputs) != 2:
        raise TypeError(
            f"an '{kind}' head takes a tuple ({kind.replace('+', ', ')}s); "
            "got " + type(inputs).__name__
        )
    encoded, texts = inputs
    array = np.asarray(encoded) if layered else _as_matrix(encoded)
    texts = list(texts)
    if len(texts) != array.shape[0]:
        raise ValueError(f"{array.shape[0]} embeddings for {len(texts)} texts")
    return array, texts


class PairedInputs:
    """An ensemble of an embedding head and a text head reads ``(encoded, texts)``, where
    ``encoded`` is what its embedding member reads (embeddings or pooled layers)."""

    embedding_head: EncoderInputs

    @property
    def input_kind(self) -> str:
        return f"{self.embedding_head.input_kind}+text"

    def _split(self, inputs: EmbeddingsAndTexts) -> tuple[npt.NDArray[np.floating[Any]], list[str]]:
        return _split_inputs(inputs, layered=self.embedding_head.input_kind == "layers")


def _load_member(directory: Path, kind: str) -> Any:
    if kind not in MODEL_KINDS:
        import models.heads.tfidf  # noqa: F401  (registers the text heads)
    if kind not in MODEL_KINDS:
        raise ValueError(f"{directory}: unknown model kind '{kind}' (written by newer code?)")
    return MODEL_KINDS[kind].load(directory)


# Groups the router tells apart among mostly-Latin texts, and the training rows' languages
# that teach each one. Other languages seen in Latin script (Arabic tweets counted as Latin for
# their hashtags: arsarcasm_v2's `ar-*`, umsab's `ar`) teach nothing: they are routed to
# whichever group their letters resemble.
LATIN_GROUPS: tuple[str, ...] = ("ary-Latn", "en", "fr")
_LATIN_GROUP_OF: dict[str, str] = {
    "ary-Latn": "ary-Latn",
    "ary": "ary-Latn",
    "en": "en",
    "fr": "fr",
}


def latin_group(language: object) -> str | None:
    """The router group a Latin-script training row's ``language`` teaches, or None."""
    return _LATIN_GROUP_OF.get(language) if isinstance(language, str) else None


class LatinLanguageRouter:
    """Which language group (``fr``, ``en``, ``ary-Latn``) a mostly-Latin text belongs to.

    The language identifier's recipe (class-balanced logistic regression on char_wb 1-4 gram
    TF-IDF), fit on mostly-Latin training rows only; the ensemble asks it about mostly-Latin
    texts only.
    """

    kind: ClassVar[str] = "latin-router"

    def __init__(
        self,
        ngram_range: tuple[int, int] = (1, 4),
        max_features: int = 30_000,
        min_df: int = 2,
        C: float = 4.0,
    ) -> None:
        self.ngram_range = ngram_range
        self.max_features = max_features
        self.min_df = min_df
        self.C = C

    def get_params(self) -> dict[str, Any]:
        return {
            "ngram_range": tuple(self.ngram_range),
            "max_features": self.max_features,
            "min_df": self.min_df,
            "C": self.C,
        }

    def _new_model(self) -> Pipeline:
        return char_ngram_classifier(self.ngram_range, self.max_features, self.C, self.min_df)

    @staticmethod
    def training_rows(
        texts: Sequence[str], languages: Sequence[object]
    ) -> tuple[list[str], list[str]]:
        """The mostly-Latin rows whose language names a group, with that group."""
        rows, groups = [], []
        for text, language in zip(texts, languages, strict=True):
            group = latin_group(language)
            if group is not None and dominant_script(text) == "Latn":
                rows.append(text)
                groups.append(group)
        return rows, groups

    def fit(self, texts: Sequence[str], languages: Sequence[object]) -> Self:
        """Fit on the mostly-Latin rows of ``texts`` whose ``languages`` name a group."""
        rows, groups = self.training_rows(texts, languages)
        if len(set(groups)) < 2:
            raise ValueError(
                f"a router needs mostly-Latin rows of at least two of {LATIN_GROUPS}; "
                f"got {sorted(set(groups))}"
            )
        self.model_ = compact(self._new_model().fit(rows, groups))
        self.groups_ = [str(g) for g in self.model_.named_steps["classifier"].classes_]
        return self

    def predict(self, texts: Sequence[str]) -> npt.NDArray[np.object_]:
        """The group of each text (whatever its script: callers route Latin texts only)."""
        texts = list(texts)
        if not texts:
            return np.asarray([], dtype=object)
        return np.asarray(self.model_.predict(texts), dtype=object)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        payload = {
            "kind": self.kind,
            "params": self.get_params(),
            "groups": list(self.groups_),
            "model": self.model_,
        }
        joblib.dump(payload, directory / ROUTER_FILE, compress=("xz", 6))

    @classmethod
    def load(cls, directory: Path) -> Self:
        path = Path(directory) / ROUTER_FILE
        payload = joblib.load(path)
        if not isinstance(payload, dict) or payload.get("kind") != cls.kind:
            kind = payload.get("kind") if isinstance(payload, dict) else type(payload).__name__
            raise ValueError(f"{path} holds a '{kind}' model, not '{cls.kind}'")
        model = payload.get("model")
        groups = payload.get("groups")
        if not isinstance(model, Pipeline) or not isinstance(groups, list):
            raise ValueError(f"{path}: no fitted router pipeline and group list")
        if [str(c) for c in model.classes_] != groups:
            raise ValueError(f"{path}: the pipeline's classes {list(model.classes_)} != {groups}")
        router = cls(**payload["params"])
        router.model_ = model
        router.groups_ = list(groups)
        return router


def _check_weight(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {value}")
    return float(value)


def darija_features(embeddings: npt.ArrayLike, arabizi: npt.ArrayLike) -> FloatArray:
    """What a Darija head reads: each text's embedding beside its Arabic spelling's."""
    return np.hstack([_as_matrix(embeddings), _as_matrix(arabizi)])


@register_model_kind
class EnsembleSentimentClassifier(PairedInputs):
    """Log-linear pool of an embedding head and a char n-gram head, weighted per script.

    ``p ∝ exp((w·log p_embedding + (1 − w)·log p_text) / T)`` with ``w`` = ``arabic_weight``
    for texts that are not mostly Latin; for mostly-Latin texts ``w`` = ``latin_weight``, or,
    with a ``router``, the weight of the language group (``fr``, ``en``, ``ary-Latn``) it
    routes the text to (``latin_group_weights``). Weights and ``T`` are chosen on dev splits
    by the trainer (``training.fit``), never on test data; the router is fit on train rows.

    With a ``darija_head``, texts routed to ``ary-Latn`` take their embedding-side
    probabilities from it instead: a head on the text's embedding beside the embedding of its
    Arabic spelling (``models.text.arabizi``), because the encoder reads Darija far better in
    Arabic script. Such an ensemble reads ``(encoded, texts, arabizi)`` (input kind
    ``…+text+arabizi``), ``arabizi`` being needed only on the rows ``arabizi_rows`` names, so
    only Latin-script Darija posts pay for encoding a second string.
    """

    kind: ClassVar[str] = "ensemble-sentiment"
    embedding_head: EmbeddingSentimentClassifier

    def __init__(
        self,
        embedding_head: EmbeddingSentimentClassifier,
        text_head: Any,
        arabic_weight: float = 0.5,
        latin_weight: float = 0.5,
        temperature: float = 1.0,
        latin_group_weights: dict[str, float] | None = None,
        router: LatinLanguageRouter | None = None,
        darija_head: EmbeddingSentimentClassifier | None = None,
    ) -> None:
        if (latin_group_weights is None) != (router is None):
            raise ValueError("per-language Latin weights need a router, and a router needs them")
        if router is not None and latin_group_weights is not None:
            if sorted(latin_group_weights) != sorted(router.groups_):
                raise ValueError(
                    f"Latin group weights for {sorted(latin_group_weights)}, but the router "
                    f"routes to {sorted(router.groups_)}"
                )
            latin_group_weights = {
                str(group): _check_weight(f"weight of '{group}'", w)
                for group, w in sorted(latin_group_weights.items())
            }
        if darija_head is not None and (router is None or DARIJA_GROUP not in router.groups_):
            raise ValueError(f"a Darija head needs a router with an '{DARIJA_GROUP}' group")
        self.embedding_head = embedding_head
        self.text_head = text_head
        self.arabic_weight = arabic_weight
        self.latin_weight = latin_weight
        self.temperature = temperature
        self.latin_group_weights = latin_group_weights
        self.router = router
        self.darija_head = darija_head

    @property
    def input_kind(self) -> str:
        paired = f"{self.embedding_head.input_kind}+text"
        return f"{paired}+arabizi" if self.darija_head is not None else paired

    @property
    def labels_(self) -> list[str]:
        return list(self.embedding_head.labels_)

    def _check_members(self) -> None:
        members = [self.text_head] + ([self.darija_head] if self.darija_head is not None else [])
        for member in members:
            if list(member.labels_) != list(self.embedding_head.labels_):
                raise ValueError(
                    f"members disagree on labels: {self.embedding_head.labels_} vs {member.labels_}"
                )

    def arabizi_rows(self, texts: Sequence[str]) -> npt.NDArray[np.bool_]:
        """Rows whose Arabic spelling this ensemble reads (none without a Darija head)."""
        if self.darija_head is None:
            return np.zeros(len(texts), dtype=bool)
        return np.asarray(self.route(texts) == DARIJA_GROUP, dtype=bool)

    def _split_views(
        self, inputs: EmbeddingsAndTexts | WithArabizi
    ) -> tuple[npt.NDArray[np.floating[Any]], list[str], npt.NDArray[np.floating[Any]] | None]:
        if self.darija_head is None:
            encoded, texts = self._split(inputs)  # type: ignore[arg-type]
            return encoded, texts, None
        if not isinstance(inputs, tuple) or len(inputs) != 3:
            raise TypeError(
                f"an '{self.input_kind}' head takes a tuple (encoded, texts, arabizi), the last "
                "the Arabic spelling's embeddings (models.pipeline.encode_with_spellings)"
            )
        encoded, texts = self._split((inputs[0], inputs[1]))
        arabizi = np.asarray(inputs[2], dtype=np.float64)
        if arabizi.ndim != 2 or arabizi.shape[0] != len(texts):
            raise ValueError(f"{arabizi.shape} Arabic-spelling embeddings for {len(texts)} texts")
        return encoded, texts, arabizi

    def member_log_proba(
        self, inputs: EmbeddingsAndTexts | WithArabizi
    ) -> tuple[FloatArray, FloatArray]:
        """Each member's log-probabilities (lets a trainer search weights without refitting);
        the embedding side's rows routed to Latin-script Darija come from the Darija head."""
        encoded, texts, arabizi = self._split_views(inputs)
        groups = self.route(texts) if self.darija_head is not None else None
        return self._log_proba(encoded, texts, arabizi, groups)

    def _log_proba(
        self,
        encoded: npt.NDArray[np.floating[Any]],
        texts: list[str],
        arabizi: npt.NDArray[np.floating[Any]] | None,
        groups: npt.NDArray[np.object_] | None,
    ) -> tuple[FloatArray, FloatArray]:
        """``member_log_proba`` on checked inputs; ``groups``: the texts' ``route``."""
        self._check_members()
        eps = 1e-9
        log_embedding = np.log(self.embedding_head.predict_proba(encoded) + eps)
        log_text = np.log(np.asarray(self.text_head.predict_proba(texts)) + eps)
        if self.darija_head is not None and arabizi is not None and groups is not None:
            rows = np.flatnonzero(groups == DARIJA_GROUP)
            if rows.size:
                if not np.isfinite(arabizi[rows]).all():
                    missing = [int(i) for i in rows if not np.isfinite(arabizi[i]).all()]
                    raise ValueError(
                        f"rows {missing[:10]} are Latin-script Darija but have no Arabic-spelling "
                        "embedding (models.pipeline.encode_with_spellings computes them)"
                    )
                last = encoded if encoded.ndim == 2 else encoded[:, -1]
                features = darija_features(last[rows], arabizi[rows])
                log_embedding[rows] = np.log(self.darija_head.predict_proba(features) + eps)
        return log_embedding, log_text

    def route(self, texts: Sequence[str]) -> npt.NDArray[np.object_]:
        """Each text's weight group: ``"Arab"`` (not mostly Latin, so ``arabic_weight``), the
        router's language group for a mostly-Latin text, or ``"Latn"`` without a router."""
        texts = list(texts)
        latin = _script_groups(texts)
        groups = np.where(latin, "Latn", "Arab").astype(object)
        if self.router is not None and latin.any():
            groups[latin] = self.router.predict([texts[i] for i in np.flatnonzero(latin)])
        return groups

    def text_weights(
        self, texts: Sequence[str], groups: npt.NDArray[np.object_] | None = None
    ) -> FloatArray:
        """The embedding member's weight ``w`` for each text (``groups``: their ``route``)."""
        weights = {"Arab": self.arabic_weight, "Latn": self.latin_weight}
        weights.update(self.latin_group_weights or {})
        routed = self.route(texts) if groups is None else groups
        return np.asarray([weights[g] for g in routed], dtype=np.float64)

    @staticmethod
    def pool(log_embedding: FloatArray, log_text: FloatArray, weight: npt.ArrayLike) -> FloatArray:
        """Pooled logits ``w·log p_embedding + (1 − w)·log p_text``, ``w`` one per row."""
        w = np.asarray(weight, dtype=np.float64)[:, None]
        return np.asarray(w * log_embedding + (1.0 - w) * log_text)

    @staticmethod
    def combine(
        log_embedding: FloatArray,
        log_text: FloatArray,
        latin: npt.NDArray[np.bool_],
        arabic_weight: float,
        latin_weight: float | FloatArray,
        temperature: float,
    ) -> FloatArray:
        """Pooled probabilities; ``latin_weight`` is one weight or one per row (per group)."""
        weight = np.where(latin, latin_weight, arabic_weight)
        pooled = EnsembleSentimentClassifier.pool(log_embedding, log_text, weight)
        return np.asarray(softmax(pooled / temperature, axis=1))

    def predict_proba(self, inputs: EmbeddingsAndTexts | WithArabizi) -> FloatArray:
        """Calibrated probabilities from ``(embeddings, texts[, arabizi])``, columns in
        ``labels_`` order."""
        encoded, texts, arabizi = self._split_views(inputs)
        groups = self.route(texts)  # routed once: the weights and the Darija rows both read it
        log_embedding, log_text = self._log_proba(encoded, texts, arabizi, groups)
        pooled = self.pool(log_embedding, log_text, self.text_weights(texts, groups))
        return np.asarray(softmax(pooled / self.temperature, axis=1))

    def predict(self, inputs: EmbeddingsAndTexts | WithArabizi) -> npt.NDArray[np.object_]:
        proba = self.predict_proba(inputs)
        return np.asarray(self.labels_, dtype=object)[proba.argmax(axis=1)]

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.embedding_head.save(directory / "embedding")
        self.text_head.save(directory / "text")
        config: dict[str, Any] = {
            "kind": self.kind,
            "labels": self.labels_,
            "arabic_weight": self.arabic_weight,
            "latin_weight": self.latin_weight,
            "temperature": self.temperature,
            "members": {"embedding": self.embedding_head.kind, "text": self.text_head.kind},
        }
        if self.router is not None:
            self.router.save(directory / ROUTER_DIR)
            config["format_version"] = ROUTED_FORMAT_VERSION
            config["latin_group_weights"] = dict(self.latin_group_weights or {})
            config["router"] = self.router.kind
        if self.darija_head is not None:
            self.darija_head.save(directory / DARIJA_DIR)
            config["format_version"] = DARIJA_FORMAT_VERSION
            config["members"]["darija"] = self.darija_head.kind
        _write(directory, config, {})

    @classmethod
    def load(cls, directory: Path) -> Self:
        directory = Path(directory)
        config, _ = _read(directory, cls.kind, max_version=DARIJA_FORMAT_VERSION)
        members = config["members"]
        router: LatinLanguageRouter | None = None
        group_weights = config.get("latin_group_weights")
        if ("router" in config) != (group_weights is not None):
            raise ValueError(f"{directory / CONFIG_FILE}: a router without its weights or back")
        if group_weights is not None:
            if config["router"] != LatinLanguageRouter.kind or not isinstance(group_weights, dict):
                raise ValueError(f"{directory / CONFIG_FILE}: unknown router {config['router']!r}")
            if not (directory / ROUTER_DIR / ROUTER_FILE).exists():
                raise ValueError(
                    f"{directory}: the config names a router; {ROUTER_DIR}/ is missing"
                )
            router = LatinLanguageRouter.load(directory / ROUTER_DIR)
        darija_head = None
        if "darija" in members:
            darija_head = _load_member(directory / DARIJA_DIR, members["darija"])
        model = cls(
            embedding_head=_load_member(directory / "embedding", members["embedding"]),
            text_head=_load_member(directory / "text", members["text"]),
            arabic_weight=float(config["arabic_weight"]),
            latin_weight=float(config["latin_weight"]),
            temperature=float(config["temperature"]),
            latin_group_weights=group_weights,
            router=router,
            darija_head=darija_head,
        )
        if list(config.get("labels", model.labels_)) != model.labels_:
            raise ValueError(f"{directory}: config labels {config['labels']} != the members'")
        return model


@register_model_kind
class EnsembleTopicClassifier(PairedInputs):
    """Weighted mean of an encoder topic head's (logistic or MLP) and a char n-gram topic
    head's scores.

    Thresholds are the ensemble's own (tuned by the trainer on out-of-fold scores).
    """

    kind: ClassVar[str] = "ensemble-topics"
    embedding_head: TopicHead

    def __init__(
        self,
        embedding_head: TopicHead,
        text_head: Any,
        weight: float = 0.5,
        thresholds: Sequence[float] | None = None,
    ) -> None:
        self.embedding_head = embedding_head
        self.text_head = text_head
        self.weight = weight
        self.thresholds = thresholds

    @property
    def labels_(self) -> list[str]:
        return list(self.embedding_head.labels_)

    @property
    def thresholds_(self) -> FloatArray:
        if self.thresholds is None:
            return np.full(len(self.labels_), 0.5)
        return np.asarray(self.thresholds, dtype=np.float64)

    def predict_proba(self, inputs: EmbeddingsAndTexts) -> FloatArray:
        if list(self.text_head.labels_) != self.labels_:
            raise ValueError("members disagree on topic labels / column order")
        embeddings, texts = self._split(inputs)
        return np.asarray(
            self.weight * self.embedding_head.predict_proba(embeddings)
            + (1.0 - self.weight) * np.asarray(self.text_head.predict_proba(texts))
        )

    def predict(self, inputs: EmbeddingsAndTexts) -> npt.NDArray[np.int8]:
        return (self.predict_proba(inputs) >= self.thresholds_).astype(np.int8)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.embedding_head.save(directory / "embedding")
        self.text_head.save(directory / "text")
        config = {
            "kind": self.kind,
            "labels": self.labels_,
            "weight": self.weight,
            "thresholds": [float(t) for t in self.thresholds_],
            "members": {"embedding": self.embedding_head.kind, "text": self.text_head.kind},
        }
        _write(directory, config, {})

    @classmethod
    def load(cls, directory: Path) -> Self:
        directory = Path(directory)
        config, _ = _read(directory, cls.kind)
        members = config["members"]
        return cls(
            embedding_head=_load_member(directory / "embedding", members["embedding"]),
            text_head=_load_member(directory / "text", members["text"]),
            weight=float(config["weight"]),
            thresholds=list(config["thresholds"]),
        )
