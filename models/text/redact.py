"""Personal-data redaction, applied to the original complaint text before anything is stored.

What is found, and why it is found this way:

* ``email`` -> ``[EMAIL]``: an ASCII address with a dotted domain. Obfuscated forms
  (``ahmed at gmail dot com``) are not caught.
* ``iban`` -> ``[IBAN]``: an IBAN (country letters + 2 check digits, spaces/dashes allowed) whose
  ISO 7064 mod-97 check passes; Moroccan ``MA`` + 26 digits is accepted even with a wrong check
  (Moroccan IBANs are not in every registry and a mistyped one is still personal data). A bare
  Moroccan RIB is any 24-digit number, whatever its grouping (``3-3-16-2``, by 4, or none), as
  long as no group but the last is shorter than 3 digits: 24-digit numbers are almost never
  anything else, and the rule keeps lists of phone numbers (2-digit groups) out. The RIB key is
  not checked (a mistyped RIB still identifies an account).
* ``card`` -> ``[CARD]``: 13-19 digits, plain or grouped with one kind of separator, every group
  but the last at least 4 digits, Luhn-valid, not starting with 0 (industry identifier 0 is not
  issued; without this rule a Luhn-valid ``00212...`` phone number would become a card). A
  Luhn-valid IMEI (15 digits) is redacted as a card too; we accept that.
* ``phone`` -> ``[PHONE]``: Moroccan numbers (``0`` or ``+212``/``00212``/``(+212)``, optional
  ``(0)``, then 9 digits starting with 5-8) in any grouping that uses one kind of separator
  (space, dot or dash; slashes only as ``06/12/34/56/78``). 05/06/07 numbers are accepted on
  shape alone: the ``phonenumbers`` metadata lags behind new allocations (it rejects whole
  0523/0535/07xx blocks) and a missed phone is worse than a redacted number. 08 numbers (sparse,
  mostly service lines) must be valid for ``phonenumbers``. Mixed separators (``06.12.2023 10``)
  are rejected: that shape is a date and a time. Foreign numbers written with ``+``/``00``
  (Moroccans abroad) are found with ``phonenumbers.PhoneNumberMatcher``; foreign numbers in
  their national form (``01001135875`` in Egypt) are not.
* ``cin`` -> ``[CIN]``: Moroccan national ID, 1-2 Latin letters + 4-6 digits, only as a token of
  its own (not ``COVID19``, ``ABC1234``, ``AB1234/2020``, ``x.AB1234``). Precision trade-offs:
  lower-case letters need 5-6 digits and no space (``n1234`` is usually ``n°1234``); a space
  between letters and digits (``BE 654321``) is accepted only for upper-case letters and 5-6
  digits; a few unit/abbreviation prefixes are never IDs (``DH 15000``, ``BP 12345``,
  ``KM 1200``); 4 digits (old cards, same shape as ``DL5899`` flights or ``HP7525`` printers)
  only when ``CIN``/``carte``/``ID``/``بطاقة``/``لاكارط`` comes within 40 characters before.
  Product codes with 5-6 digits (``CM30055``) are still redacted.

Every digit test accepts Eastern Arabic and Persian digits, and invisible characters (bidi
marks, zero-width spaces) inside a number do not hide it. Precedence when candidates overlap:
email, then IBAN/RIB, card, phone, CIN — a span claimed by an earlier kind is masked (``[XXX]``,
like a placeholder) before later kinds look. Offsets in ``Redaction`` refer to the original
text. ``redact`` runs to a fixed point, so it is idempotent.

``phonenumbers`` (Google's libphonenumber port) is used for 08 validation and foreign numbers
only, because its allocation tables miss Moroccan ranges in use. ``python-stdnum`` provides the
Luhn and ISO 7064 mod-97 checks.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import phonenumbers
from stdnum import luhn
from stdnum.iso7064 import mod_97_10

__all__ = ["KINDS", "PLACEHOLDERS", "Redaction", "RedactionResult", "redact"]

KINDS: tuple[str, ...] = ("email", "iban", "card", "phone", "cin")
PLACEHOLDERS: dict[str, str] = {kind: f"[{kind.upper()}]" for kind in KINDS}


@dataclass(frozen=True)
class Redaction:
    """One redacted span; ``start``/``end`` index the original text (end exclusive)."""

    kind: str
    start: int
    end: int


@dataclass(frozen=True)
class RedactionResult:
    """Redacted text plus what was removed, so callers can count PII without keeping it."""

    text: str
    redactions: tuple[Redaction, ...]

    @property
    def kinds(self) -> list[str]:
        return sorted({r.kind for r in self.redactions})


Span = tuple[int, int]

_DASHES = frozenset("\u2010\u2011\u2012\u2013\u2014\u2212\ufe63\uff0d")
_SEPARATORS = " .-"


def _shadow_char(char: str) -> str | None:
    """The detection form of one character; None drops it (invisible format characters)."""
    category = unicodedata.category(char)
    if category == "Cf":
        return None
    if not char.isascii():
        if char.isdecimal():
            return str(unicodedata.decimal(char))
        if category == "Zs":
            return " "
        if char in _DASHES:
            return "-"
        if char == "\uff0b":
            return "+"
    return char


# Every Basic Multilingual Plane character whose detection form differs, as one translate table
# (one-to-one, so positions do not move) plus the set of characters that are dropped.
_BMP_TABLE: dict[int, str] = {}
_BMP_DROPPED: set[str] = set()
for _code in range(0x80, 0x10000):
    _char = chr(_code)
    _form = _shadow_char(_char)
    if _form is None:
        _BMP_DROPPED.add(_char)
    elif _form != _char:
        _BMP_TABLE[_code] = _form
_FAST_PATH_BLOCKER = re.compile(
    "[" + "".join(re.escape(c) for c in sorted(_BMP_DROPPED)) + "\U00010000-\U0010ffff]"
)


def _shadow(text: str) -> tuple[str, Sequence[int]]:
    """Return a detection copy of ``text`` and, per copy character, its index in ``text``.

    Invisible format characters are dropped, any decimal digit becomes ASCII, any space becomes
    `` `` and dashes become ``-``, so one set of ASCII patterns covers every way of typing.
    Texts with nothing to drop (nearly all) take a one-to-one `str.translate`.
    """
    if text.isascii():
        return text, range(len(text))
    if not _FAST_PATH_BLOCKER.search(text):
        return text.translate(_BMP_TABLE), range(len(text))
    chars: list[str] = []
    index: list[int] = []
    for position, char in enumerate(text):
        form = _shadow_char(char)
        if form is not None:
            chars.append(form)
            index.append(position)
    return "".join(chars), index


# --- email -------------------------------------------------------------------------------------

# The look-behind makes a match start only where a run of address characters starts: without it
# a long run with no ``@`` is rescanned from every position (quadratic time).
_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}"
)


def _find_emails(text: str) -> Iterator[Span]:
    for match in _EMAIL.finditer(text):
        yield match.span()


# --- IBAN with country code ---------------------------------------------------------------------

_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}[0-9]{2}(?:[ \-]?[A-Za-z0-9]){11,32}")


def _is_iban(compact: str) -> bool:
    if not 15 <= len(compact) <= 34 or not compact[:2].isalpha():
        return False
    if compact[:2] == "MA" and len(compact) == 28 and compact[2:].isdigit():
        return True
    return bool(mod_97_10.is_valid(compact[4:] + compact[:4]))


def _find_ibans(text: str) -> Iterator[Span]:
    position = 0
    while (match := _IBAN.search(text, position)) is not None:
        start, end = match.span()
        found = None
        # The pattern also swallows following words ("... 189 merci"): keep the longest prefix
        # that is a valid IBAN and ends where a token ends.
        for stop in range(end, start + 14, -1):
            if text[stop - 1] in _SEPARATORS or (stop < len(text) and text[stop].isalnum()):
                continue
            compact = re.sub(r"[ \-]", "", text[start:stop]).upper()
            if _is_iban(compact):
                found = stop
                break
        if found is None:
            position = start + 1
            continue
        yield start, found
        position = found


# --- RIB and card numbers, found on runs of digit groups -----------------------------------------

_DIGIT_RUN = re.compile(r"(?<![0-9])[0-9]+(?:[ .\-][0-9]+)*")
_GROUP = re.compile(r"[0-9]+")


def _windows(
    text: str,
    accept: Callable[[str], bool],
    digits_range: tuple[int, int],
    min_group: int,
) -> Iterator[Span]:
    """Yield the longest accepted windows of whole digit groups, left to right, no overlap.

    A window uses one kind of separator, has ``digits_range`` digits, and every group but its
    last has at least ``min_group`` digits (so lists of 2-digit phone groups never qualify).
    """
    low, high = digits_range
    for run in _DIGIT_RUN.finditer(text):
        offset = run.start()
        groups = [(m.start() + offset, m.end() + offset) for m in _GROUP.finditer(run[0])]
        i = 0
        while i < len(groups):
            best = None
            number = ""
            separator = None
            for j in range(i, len(groups)):
                if j > i:
                    if groups[j - 1][1] - groups[j - 1][0] < min_group:
                        break
                    between = text[groups[j - 1][1]]
                    if separator is None:
                        separator = between
                    elif between != separator:
                        break
                number += text[groups[j][0] : groups[j][1]]
                if len(number) > high:
                    break
                if len(number) >= low and accept(number):
                    best = j
            if best is None:
                i += 1
                continue
            yield groups[i][0], groups[best][1]
            i = best + 1


def _is_card(number: str) -> bool:
    # No payment card starts with 0 (industry identifier 0 is not issued): 00212... is a phone.
    return number[0] != "0" and bool(luhn.is_valid(number))


def _find_ribs(text: str) -> Iterator[Span]:
    return _windows(text, lambda number: True, (24, 24), min_group=3)


def _find_cards(text: str) -> Iterator[Span]:
    return _windows(text, _is_card, (13, 19), min_group=4)


# --- phone numbers -----------------------------------------------------------------------------

_PHONE_MA = re.compile(
    r"""
    (?:
        (?:\(\s?)?(?:(?<!\+)\+\s?|(?<![0-9+])00\s?)212(?:\s?\))?  # +212, 00212, (+212)
        [ .\-]?
        (?:\(0\)\s?|0[ .\-]?)?                    # trunk 0 some people keep: +212 (0)6 / +212 06
      |
        (?<![0-9+])0
    )
    (?P<nsn>[5-8](?:[ ./\-]?[0-9]){8})
    (?![0-9])
    """,
    re.VERBOSE,
)
_LETTER = re.compile(r"[^\W\d_]")
_INTERNATIONAL_HINT = re.compile(r"(?:\+|(?<![0-9])00)\s?\(?[1-9]")


_SLASHED_PAIRS = re.compile(r"[0-9]/[0-9]{2}/[0-9]{2}/[0-9]{2}/[0-9]{2}")


def _is_moroccan_phone(nsn: str) -> bool:
    separators = {c for c in nsn if not c.isdigit()}
    if len(separators) > 1:
        return False
    if separators == {"/"} and _SLASHED_PAIRS.fullmatch(nsn) is None:
        return False  # slashes only in the 06/12/34/56/78 writing; 05/12/2023/12 is a reference
    digits = re.sub(r"[^0-9]", "", nsn)
    if digits[0] != "8":
        return True
    return bool(phonenumbers.is_valid_number(phonenumbers.parse("0" + digits, "MA")))


def _find_moroccan_phones(text: str) -> Iterator[Span]:
    for match in _PHONE_MA.finditer(text):
        if _is_moroccan_phone(match["nsn"]):
            yield match.span()


def _find_foreign_phones(text: str) -> Iterator[Span]:
    if _INTERNATIONAL_HINT.search(text) is None:
        return
    # The matcher refuses numbers glued to a letter ("f0033 6..."); letters never belong to a
    # number, so they are blanked (same length, offsets unchanged).
    blanked = _LETTER.sub(" ", text)
    leniency = phonenumbers.Leniency.VALID
    for found in phonenumbers.PhoneNumberMatcher(blanked, "MA", leniency=leniency):
        raw = found.raw_string.lstrip("(")
        if found.number.country_code != 212 and raw.startswith(("+", "00")):
            yield found.start, found.end


# --- CIN ----------------------------------------------------------------------------------------

_CIN = re.compile(
    r"(?<![A-Za-z0-9_@./\-])"
    r"(?P<letters>[A-Za-z]{1,2})(?P<sep>[ \-]?)(?P<digits>[0-9]{4,6})"
    r"(?![A-Za-z0-9_@]|[./\-][A-Za-z0-9])"
)
_NOT_CIN_PREFIXES = frozenset(
    {"DH", "BP", "CP", "KM", "PK", "RN", "RR", "HT", "KG", "KW", "MB", "GB"}
)
_NOT_SPACED_CIN_PREFIXES = frozenset({"N", "NO"})


# A 4-digit CIN (old cards) has the shape of flight numbers and product codes (``DL5899``,
# ``HP7525``): only taken when the text names the document just before it (not inside a
# placeholder: ``[CARD]`` must not make the next token an ID on the next pass).
_CIN_CONTEXT = re.compile(
    r"(?:(?<!\[)\b(?:cin|cnie|c\.i\.n|id|identit[eéy]|carte|card)\b|بطاق|كارط|ب\.?\s?ت\.?\s?و)",
    re.IGNORECASE,
)
_CIN_CONTEXT_CHARS = 40


def _find_cins(text: str) -> Iterator[Span]:
    for match in _CIN.finditer(text):
        letters, separator, digits = match["letters"], match["sep"], match["digits"]
        upper = letters.upper()
        if upper in _NOT_CIN_PREFIXES:
            continue
        if letters.isupper():
            if separator and (len(digits) < 5 or upper in _NOT_SPACED_CIN_PREFIXES):
                continue
        elif separator or len(digits) < 5:
            continue
        if len(digits) == 4:
            before = text[max(0, match.start() - _CIN_CONTEXT_CHARS) : match.start()]
            if _CIN_CONTEXT.search(before) is None:
                continue
        yield match.span()


# --- driver -------------------------------------------------------------------------------------

_DETECTORS: tuple[tuple[str, Callable[[str], Iterator[Span]]], ...] = (
    ("email", _find_emails),
    ("iban", _find_ibans),
    ("iban", _find_ribs),
    ("card", _find_cards),
    ("phone", _find_moroccan_phones),
    ("phone", _find_foreign_phones),
    ("cin", _find_cins),
)


_MAX_PASSES = 4


def _mask(chars: list[str], start: int, end: int) -> None:
    """Make a claimed span look like a placeholder to the detectors that run later."""
    chars[start:end] = ["["] + ["X"] * (end - start - 2) + ["]"]


def _detect(text: str) -> list[Redaction]:
    """One pass of every detector, in precedence order, with offsets into ``text``."""
    shadow, index = _shadow(text)
    chars = list(shadow)
    # Brackets are barriers: no span may contain one, so placeholders stay atomic.
    taken = [c in "[]" for c in chars]
    found: list[Redaction] = []
    for kind, detector in _DETECTORS:
        new: list[Span] = []
        for start, end in detector("".join(chars)):
            if end - start < 2 or any(taken[start:end]):
                continue
            taken[start:end] = [True] * (end - start)
            new.append((start, end))
        for start, end in new:
            _mask(chars, start, end)
            found.append(Redaction(kind, index[start], index[end - 1] + 1))
    return sorted(found, key=lambda r: r.start)


def _apply(text: str, redactions: list[Redaction]) -> tuple[str, list[tuple[int, int, int]]]:
    """Redacted text, plus its kept stretches as (start, end, start in ``text``)."""
    pieces: list[str] = []
    kept: list[tuple[int, int, int]] = []
    cursor = length = 0
    for item in redactions:
        piece = text[cursor : item.start]
        kept.append((length, length + len(piece), cursor))
        pieces += [piece, PLACEHOLDERS[item.kind]]
        length += len(piece) + len(PLACEHOLDERS[item.kind])
        cursor = item.end
    kept.append((length, length + len(text) - cursor, cursor))
    pieces.append(text[cursor:])
    return "".join(pieces), kept


def redact(text: str) -> RedactionResult:
    """Replace personal data in ``text`` by ``[KIND]`` placeholders (see module docstring).

    Detection runs again on its own output until nothing new is found: a value glued to another
    one (``0500000000AB123456``) only stands alone once its neighbour is a placeholder. Running
    to this fixed point is what makes ``redact(redact(x).text)`` change nothing.
    """
    redactions = _detect(text)
    redacted, kept = _apply(text, redactions)
    for _ in range(_MAX_PASSES):
        if not redactions:
            break
        more: list[Redaction] = []
        for item in _detect(redacted):
            # Spans never contain brackets, so each lies inside one kept stretch.
            for start, end, origin in kept:
                if start <= item.start and item.end <= end:
                    shift = origin - start
                    more.append(Redaction(item.kind, item.start + shift, item.end + shift))
                    break
        if not more:
            break
        redactions = sorted(redactions + more, key=lambda r: r.start)
        redacted, kept = _apply(text, redactions)
    return RedactionResult(redacted, tuple(redactions))
