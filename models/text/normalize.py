"""Text normalisation for model input (step 1 of the analysis pipeline).

The same complaint reaches us typed on Arabic, French and Persian keyboards, pasted from
WhatsApp with bidi marks, or elongated for emphasis (``بزااااف``, ``khaybaaaa``). The encoder and
the heads should see one spelling for all of these, so they learn from meaning, not keyboards.

Choices (documented because they change what models see):

* NFKC first, so Arabic presentation forms (``ﻻ``, ``ﺔ``), full-width Latin and ligatures fold
  to ordinary letters before the Arabic-specific maps run.
* Alef variants ``أ إ آ ٱ ٲ ٳ`` → ``ا``; ``ى`` → ``ي``; Persian ``ک`` → ``ك`` and ``ی`` → ``ي``
  (Persian keyboards are common among Moroccan users).
* ``ة`` is **kept** everywhere (never mapped to ``ه``): the XLM-R vocabulary of the encoder was
  trained on standard spelling, where ``ة`` is in most feminine nouns; mapping it would turn
  frequent words into rare pieces. ``ؤ`` and ``ئ`` are kept too: the hamza seat is spelling, not
  noise, and mapping ``ؤ`` → ``و`` would merge distinct words.
* Moroccan letters ``ڭ`` (g) and ``ڤ`` (v) are kept: they carry sounds Darija needs.
* Harakat / Quranic marks and tatweel are removed; Arabic decimal/thousands separators and the
  Arabic percent sign become ``.``, ``,`` and ``%``; every Unicode decimal digit becomes ASCII.
* Any character (digits and whitespace excepted) repeated 3+ times is cut to 2: elongation is
  emphasis, two copies keep the signal while folding ``بزاااف``/``بزااااااف`` together. Digits are
  never touched (``1000`` stays ``1000``). Emojis are kept (they carry sentiment).
* URLs (with a scheme or ``www.``) → ``URL``; ``@handles`` → ``@USER``. Bare domains such as
  ``chikaya.ma`` are kept: they name the service the complaint is about.
* Never raises on any ``str``: lone surrogates and control characters are dropped or turned into
  spaces, bidi controls (U+202A–202E, U+2066–2069, LRM/RLM/ALM) and zero-width characters are
  removed (a ZWJ inside an emoji sequence is kept so that family/profession emojis survive).

``normalize`` is idempotent: ``normalize(normalize(x)) == normalize(x)``.

``strip_bidi_controls`` is the lighter cleaning applied to text *before storage*: it removes only
the Unicode ``Bidi_Control`` characters, which can make stored text display in another order
than it is read (``U+202E`` turns ``gnp.exe`` into what looks like ``exe.png``).
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["BIDI_CONTROLS", "normalize", "strip_bidi_controls"]

# The Unicode Bidi_Control property: ALM, LRM, RLM, embeddings/overrides (U+202A-202E) and
# isolates (U+2066-2069).
BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
_BIDI_TABLE: dict[int, None] = dict.fromkeys(map(ord, BIDI_CONTROLS))

_ALEF = "\u0627"
_YEH = "\u064a"
_LETTER_MAP = {
    ord("\u0623"): _ALEF,  # أ
    ord("\u0625"): _ALEF,  # إ
    ord("\u0622"): _ALEF,  # آ
    ord("\u0671"): _ALEF,  # ٱ
    ord("\u0672"): _ALEF,  # ٲ
    ord("\u0673"): _ALEF,  # ٳ
    ord("\u0649"): _YEH,  # ى
    ord("\u06cc"): _YEH,  # ی (Persian yeh)
    ord("\u06a9"): "\u0643",  # ک (Persian keheh) -> ك
    ord("\u066b"): ".",  # Arabic decimal separator
    ord("\u066c"): ",",  # Arabic thousands separator
    ord("\u066a"): "%",  # Arabic percent sign
}

# Harakat, Quranic annotation marks, superscript alef and tatweel.
_ARABIC_MARKS = re.compile("[\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed\u0640]")

_ZWJ = "\u200d"
_EMOJI_MODIFIERS = range(0x1F3FB, 0x1F400)  # skin tones
_TAG_CHARS = range(0xE0020, 0xE0080)  # subdivision flags (e.g. Scotland)

_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_HANDLE = re.compile(r"(?<![\w.@])@\w+(?:[.@]\w+)*")
_ELONGATION = re.compile(r"([^\d\s])\1{2,}")
_SPACES = re.compile(r"\s+")
# `\d` on str patterns is Unicode category Nd, the characters `str.isdecimal` accepts
_NON_ASCII_DIGIT = re.compile(r"(?![0-9])\d")


def _is_emoji_context(char: str) -> bool:
    """True for characters after which a ZWJ belongs to an emoji sequence."""
    return unicodedata.category(char) == "So" or char == "\ufe0f" or ord(char) in _EMOJI_MODIFIERS


def _clean_chars(text: str) -> str:
    """Drop surrogates and format characters, turn control characters into spaces."""
    if text.isprintable():  # no Cc, Cf or Cs character: the usual case, checked in C
        return text
    out: list[str] = []
    for char in text:
        category = unicodedata.category(char)
        if category == "Cs":
            continue
        if category == "Cc":
            out.append(" ")
            continue
        if category == "Cf":
            # Bidi controls, zero-width spaces/joiners, soft hyphens, BOM: invisible, and they
            # split words for the tokenizer. Keep only what emoji sequences need.
            in_emoji = char == _ZWJ and bool(out) and _is_emoji_context(out[-1])
            if in_emoji or ord(char) in _TAG_CHARS:
                out.append(char)
            continue
        out.append(char)
    return "".join(out)


def _ascii_digits(text: str) -> str:
    """Map every Unicode decimal digit (Eastern Arabic, Persian, ...) to its ASCII digit."""
    return _NON_ASCII_DIGIT.sub(lambda m: str(unicodedata.decimal(m.group())), text)


def strip_bidi_controls(text: str) -> str:
    """Remove the bidi control characters, so stored text displays in the order it is read.

    Nothing else changes: storage keeps the citizen's own spelling, the models see `normalize`.
    """
    return text.translate(_BIDI_TABLE)


def normalize(text: str) -> str:
    """Return the canonical model-input form of ``text`` (idempotent, never raises on a str)."""
    text = _clean_chars(text)
    text = unicodedata.normalize("NFKC", text)
    # NFKC can turn a symbol before a kept ZWJ into letters (``℡`` -> ``TEL``): clean again.
    text = _clean_chars(text)
    text = _ARABIC_MARKS.sub("", text)
    # Removing a tatweel can bring a letter and a later combining mark together (``e`` + ``ـ`` +
    # U+0301); compose again so that the result is NFC before anything counts characters.
    text = unicodedata.normalize("NFC", text)
    text = text.translate(_LETTER_MAP)
    text = _ascii_digits(text)
    text = _URL.sub(" URL ", text)
    text = _HANDLE.sub(" @USER ", text)
    text = _ELONGATION.sub(r"\1\1", text)
    return _SPACES.sub(" ", text).strip()


_PLACEHOLDER = re.compile(r"\[(?:EMAIL|PHONE|CIN|IBAN|CARD)\]|\bURL\b|@USER")


def model_input(text: str) -> str:
    """What every model sees: normalised text without redaction/URL/handle placeholders.

    Idempotent, so training (raw corpus text) and serving (redacted text) agree."""
    normalized = normalize(text)
    stripped = _PLACEHOLDER.sub(" ", normalized)
    # `normalize` is idempotent: only text that lost a placeholder needs a second pass
    return normalized if stripped == normalized else normalize(stripped).strip()
