"""Serve the rebuilt multilingual-e5-small: one pooled, L2-normalised vector per text.

Every text goes through the same steps as at build/evaluation time: Tifinagh is
transliterated to Latin (the vocabulary has no Tifinagh pieces), the E5 `query: ` prefix
is added, then mean pooling over the attention mask and L2 normalisation.

`encode_layers` returns the same pooling applied to every transformer layer's output, from the
same pass (its last layer is `encode`'s vector): topic heads read middle layers too, which hold
more of the surface wording that separates topics than the last layer tuned for retrieval.
"""

from __future__ import annotations

import importlib.metadata
import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from models.encoder import build
from models.text.transliterate import tifinagh_to_latin

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

DEFAULT_PREFIX = "query: "
DEFAULT_MAX_LENGTH = 256
# Texts and padded tokens per encoder call. Complaints are short (~30 tokens) but a few run to
# the 256-token cap; with a fixed count per batch one long text pads 31 short ones to its length.
# Measured on 510 mixed held-out texts (python -m bench.bench_length_batches): up to 64 texts
# and 512 tokens gave 1.42x the texts/s of 32 texts a batch, and 0.54x / 0.36x the p50 / p95
# latency of a 32-text request.
DEFAULT_BATCH_SIZE = 64
DEFAULT_MAX_BATCH_TOKENS = 512

# (rows in the caller's order, padded input ids, attention mask) of one length bucket
PaddedBatch = tuple[npt.NDArray[np.intp], npt.NDArray[np.int64], npt.NDArray[np.int64]]
EmbedBatch = Callable[[npt.NDArray[np.int64], npt.NDArray[np.int64]], npt.NDArray[np.float32]]


def available_cores() -> int:
    """CPU cores this process may run on (respects affinity masks in containers)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


def check_model_dir(model_dir: str | Path | None) -> Path:
    """Resolve and validate a rebuilt model directory, telling the caller how to fix it."""
    path = Path(model_dir) if model_dir is not None else build.model_dir()
    meta = build.read_meta(path)
    if meta is None or not (path / "model.safetensors").is_file():
        raise FileNotFoundError(
            f"no rebuilt encoder at {path}; run `python -m models.encoder.build` "
            "(or pass model_dir=...)"
        )
    if not build.is_valid(path):
        warnings.warn(
            f"{path} is incomplete or from another source/format; "
            "rebuild with `python -m models.encoder.build --force`",
            stacklevel=3,
        )
    # metadata, not an import: the ONNX path should not pay for loading transformers
    running = importlib.metadata.version("transformers")
    built_with = meta.get("versions", {}).get("transformers")
    if built_with and built_with != running:
        warnings.warn(
            f"encoder built with transformers {built_with}, running {running}", stacklevel=3
        )
    return path


class BaseEncoder:
    """Tokenisation, length bucketing and pooling shared by the torch and ONNX backends."""

    def __init__(
        self,
        model_dir: str | Path | None = None,
        *,
        max_length: int = DEFAULT_MAX_LENGTH,
        num_threads: int | None = None,
        prefix: str = DEFAULT_PREFIX,
    ) -> None:
        from tokenizers import Tokenizer

        self.model_dir = check_model_dir(model_dir)
        arch = (build.read_meta(self.model_dir) or {}).get("architecture", {})
        max_positions = int(arch.get("max_positions", 512))
        if not 3 <= max_length <= max_positions:
            raise ValueError(f"max_length must be in [3, {max_positions}] (got {max_length})")
        self.max_length = max_length
        self.num_threads = num_threads if num_threads else available_cores()
        self.prefix = prefix
        self.tokenizer_ = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
        self.tokenizer_.enable_truncation(max_length)
        self.tokenizer_.no_padding()
        pad_id = self.tokenizer_.token_to_id("<pad>")
        self.pad_id_: int = 1 if pad_id is None else pad_id
        self.dim: int = int(arch.get("hidden", 384))
        self.num_layers: int = int(arch.get("layers", 12))

    def prepare(self, text: str) -> str:
        """The exact string the model sees: Tifinagh transliterated, E5 prefix added."""
        return self.prefix + tifinagh_to_latin(text)

    def token_ids(self, text: str) -> list[int]:
        """Token ids fed to the model for `text` (prefix and specials included, truncated)."""
        return list(self.tokenizer_.encode(self.prepare(text)).ids)

    def encode(
        self,
        texts: Sequence[str],
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
    ) -> npt.NDArray[np.float32]:
        """Embed `texts` into an (n, dim) float32 array of unit vectors, in input order.

        Texts are sorted by length and batched up to `batch_size` texts and `max_batch_tokens`
        padded tokens (a text longer than that goes alone)."""
        return self._encode(texts, batch_size, max_batch_tokens, layered=False)

    def encode_layers(
        self,
        texts: Sequence[str],
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
    ) -> npt.NDArray[np.float32]:
        """(n, num_layers, dim): each layer's output pooled and normalised as `encode` pools the
        last one (``[:, -1]`` is `encode`'s vector), from one encoder pass."""
        return self._encode(texts, batch_size, max_batch_tokens, layered=True)

    def _encode(
        self, texts: Sequence[str], batch_size: int, max_batch_tokens: int, *, layered: bool
    ) -> npt.NDArray[np.float32]:
        if isinstance(texts, str):
            raise TypeError("encode() takes a sequence of texts; wrap a single text in a list")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive (got {batch_size})")
        shape = (len(texts), self.num_layers, self.dim) if layered else (len(texts), self.dim)
        out = np.zeros(shape, dtype=np.float32)
        if not texts:
            return out
        encodings = self.tokenizer_.encode_batch([self.prepare(t) for t in texts])
        ids = [e.ids for e in encodings]
        order = np.argsort([len(x) for x in ids], kind="stable")
        batches: list[PaddedBatch] = []
        for batch in length_batches([len(ids[i]) for i in order], batch_size, max_batch_tokens):
            rows = order[batch]
            width = max(len(ids[i]) for i in rows)
            input_ids = np.full((len(rows), width), self.pad_id_, dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for r, i in enumerate(rows):
                input_ids[r, : len(ids[i])] = ids[i]
                mask[r, : len(ids[i])] = 1
            batches.append((rows, input_ids, mask))
        embed = self._embed_layers if layered else self._embed
        for (rows, _, _), pooled in zip(batches, self._run_batches(embed, batches), strict=True):
            out[rows] = pooled
        return out

    def _run_batches(
        self, embed: EmbedBatch, batches: Sequence[PaddedBatch]
    ) -> Iterable[npt.NDArray[np.float32]]:
        """Each batch's pooled output, in order; one after the other (the backend's own threads
        use the cores)."""
        return (embed(input_ids, mask) for _, input_ids, mask in batches)

    def _embed(
        self, input_ids: npt.NDArray[np.int64], attention_mask: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float32]:
        """Pooled, normalised embeddings for one padded batch."""
        raise NotImplementedError

    def _embed_layers(
        self, input_ids: npt.NDArray[np.int64], attention_mask: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float32]:
        """(batch, num_layers, dim) pooled, normalised layer outputs for one padded batch."""
        raise NotImplementedError


class Encoder(BaseEncoder):
    """multilingual-e5-small on torch (CPU), loaded from local files only."""

    def __init__(
        self,
        model_dir: str | Path | None = None,
        *,
        max_length: int = DEFAULT_MAX_LENGTH,
        num_threads: int | None = None,
        prefix: str = DEFAULT_PREFIX,
    ) -> None:
        super().__init__(model_dir, max_length=max_length, num_threads=num_threads, prefix=prefix)
        import torch
        from transformers import AutoModel

        torch.set_num_threads(self.num_threads)
        self.model_: PreTrainedModel = AutoModel.from_pretrained(
            self.model_dir, local_files_only=True
        )
        self.model_.eval()

    def _embed(
        self, input_ids: npt.NDArray[np.int64], attention_mask: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float32]:
        import torch

        with torch.inference_mode():
            ids = torch.from_numpy(input_ids)
            mask = torch.from_numpy(attention_mask)
            hidden = self.model_(input_ids=ids, attention_mask=mask).last_hidden_state
            pooled = mean_pool(hidden, mask)
            return torch.nn.functional.normalize(pooled, dim=-1).numpy().astype(np.float32)

    def _embed_layers(
        self, input_ids: npt.NDArray[np.int64], attention_mask: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float32]:
        import torch

        with torch.inference_mode():
            mask = torch.from_numpy(attention_mask)
            out = self.model_(
                input_ids=torch.from_numpy(input_ids),
                attention_mask=mask,
                output_hidden_states=True,
            )
            return pooled_layers(out.hidden_states, mask).numpy().astype(np.float32)


def length_batches(
    sorted_lengths: Sequence[int], batch_size: int, max_batch_tokens: int
) -> list[slice]:
    """Consecutive slices of length-sorted texts, each at most `batch_size` texts and
    `max_batch_tokens` padded tokens (its last, longest text sets the padding); never empty."""
    batches: list[slice] = []
    start = 0
    while start < len(sorted_lengths):
        end = start + 1
        while (
            end < len(sorted_lengths)
            and end - start < batch_size
            and (end - start + 1) * sorted_lengths[end] <= max_batch_tokens
        ):
            end += 1
        batches.append(slice(start, end))
        start = end
    return batches


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average token states over real (unpadded) tokens, as in the E5 model card."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


def pooled_layers(
    hidden_states: Sequence[torch.Tensor], attention_mask: torch.Tensor
) -> torch.Tensor:
    """(batch, layers, dim): every transformer layer's output (``hidden_states[1:]``; [0] is the
    token embeddings) mean-pooled and L2-normalised."""
    import torch

    pooled = [mean_pool(hidden, attention_mask) for hidden in hidden_states[1:]]
    return torch.nn.functional.normalize(torch.stack(pooled, dim=1), dim=-1)
