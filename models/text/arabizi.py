"""Arabizi (Latin-script Darija) -> Arabic script, letter by letter: a second view for the encoder.

The encoder reads Darija far better in Arabic script than in Arabizi (afrisenti_ary: 0.73 vs 0.47
weighted-F1 for the same heads). A rough Arabic spelling of an Arabizi post, given to the encoder
beside the post itself, carries sentiment the Latin spelling alone does not: on afrisenti_ary's
Latin-script `train` rows, 5-fold CV of one logistic regression rises from 0.507 to 0.552
macro-F1 (weighted 0.527 to 0.567) with both views, where a second view without
transliteration (another prefix, upper case) gains at most 0.014 (`python -m
training.arabizi_view`). Read by the sentiment ensemble's Darija head
(``models.heads.encoder_heads.EnsembleSentimentClassifier``, fit by ``sawt train sentiment``):
the pipeline encodes the spelling of the posts it routes to Latin-script Darija, and of those
only, in the same encoder pass as the texts (``models.pipeline.encode_with_spellings``).

The spelling is deliberately simple and deterministic: the digit letters (3 ع, 7 ح, 9 ق, 2 ء,
5 خ, 8 ه), the digraphs ch/sh ش, kh خ, gh غ, ou و, dj ج, one letter for each other consonant,
long vowels written (a ا, i ي, o/u و), e dropped inside a word, doubled consonants written once.
Short vowels cannot be told from long ones in Arabizi, so ``lmo7akama`` becomes ``لموحاكاما``, not
``المحكمة``; the encoder's subword pieces still overlap. Words without a letter (numbers), and
anything not written in ASCII letters and digits (Arabic, emoji, accented French), are kept.
"""

from __future__ import annotations

import re

__all__ = ["arabizi_to_arabic"]

_DIGRAPHS: dict[str, str] = {"ch": "ش", "sh": "ش", "kh": "خ", "gh": "غ", "ou": "و", "dj": "ج"}

_LETTERS: dict[str, str] = {
    "3": "ع",
    "7": "ح",
    "9": "ق",
    "2": "ء",
    "5": "خ",
    "8": "ه",
    "a": "ا",
    "b": "ب",
    "c": "ك",
    "d": "د",
    "e": "",
    "f": "ف",
    "g": "ك",
    "h": "ه",
    "i": "ي",
    "j": "ج",
    "k": "ك",
    "l": "ل",
    "m": "م",
    "n": "ن",
    "o": "و",
    "p": "ب",
    "q": "ق",
    "r": "ر",
    "s": "س",
    "t": "ت",
    "u": "و",
    "v": "ف",
    "w": "و",
    "x": "كس",
    "y": "ي",
    "z": "ز",
}

_WORD = re.compile(r"[A-Za-z0-9]+")
_VOWELS = frozenset("aeiou")


def _word(word: str) -> str:
    if not any(char.isalpha() for char in word):
        return word  # a number, not a word spelled with digit letters
    out: list[str] = []
    i = 0
    while i < len(word):
        digraph = _DIGRAPHS.get(word[i : i + 2])
        if digraph is not None:
            out.append(digraph)
            i += 2
            continue
        char = word[i]
        if char == "e" and i == 0:
            out.append("ا")  # word-initial e is a hamza seat: "ila" / "ela"
        elif i > 0 and char == word[i - 1] and (char not in _VOWELS or char == "a"):
            pass  # "bzzaf", "saa3a": one letter
        else:
            out.append(_LETTERS.get(char, char))  # 0, 1, 4, 6: kept
        i += 1
    return "".join(out)


def arabizi_to_arabic(text: str) -> str:
    """``text`` with every ASCII word (letters and digit letters) spelled in Arabic script."""
    return _WORD.sub(lambda match: _word(match.group(0).lower()), text)
