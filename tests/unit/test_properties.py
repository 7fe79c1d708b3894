"""Property tests (issue #6) that complement those next to each module.

Already covered elsewhere, so not repeated here: `normalize` idempotent and never raising
(test_normalize), `redact` idempotent, never raising, and planted phones/cards/emails in
digit-free context (test_redact), `parse_upload` raising only `UploadError` on random bytes
(test_parsing). Added here: bidi stripping before storage, redaction of every kind (CIN and
IBAN/RIB included) inside multilingual sentences, and upload round-trips, including CSVs
with undecodable garbage after the valid rows.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any, Literal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.text.normalize import BIDI_CONTROLS, model_input, normalize, strip_bidi_controls
from models.text.redact import redact
from service.batches.parsing import UploadError, parse_upload

SETTINGS = settings(
    max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
EASTERN = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")

any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=80)
bidi_text = st.lists(
    st.one_of(st.sampled_from(sorted(BIDI_CONTROLS)), st.sampled_from(["abc", "ملف", " ", "٣"])),
    max_size=20,
).map("".join)


# --- bidi controls and the normaliser ------------------------------------------------------------


@SETTINGS
@given(st.one_of(any_text, bidi_text, st.tuples(bidi_text, any_text).map("".join)))
def test_strip_bidi_controls_removes_exactly_the_bidi_controls(text: str) -> None:
    stripped = strip_bidi_controls(text)

    assert not BIDI_CONTROLS & set(stripped)
    assert stripped == "".join(c for c in text if c not in BIDI_CONTROLS)
    assert strip_bidi_controls(stripped) == stripped


@SETTINGS
@given(st.one_of(any_text, bidi_text, st.tuples(bidi_text, any_text).map("".join)))
def test_storage_cleaning_does_not_change_what_models_see(text: str) -> None:
    assert normalize(strip_bidi_controls(text)) == normalize(text)


@SETTINGS
@given(st.one_of(any_text, bidi_text))
def test_model_input_is_idempotent(text: str) -> None:
    once = model_input(text)

    assert model_input(once) == once


# --- redaction inside multilingual sentences -----------------------------------------------------

WORDS = [
    "الإدارة", "ديال", "بزاف", "مشكل", "الماء", "البطاقة", "الوطنية", "réclamation", "merci",
    "appelez-moi", "à", "l'hôpital", "please", "call", "me", "ⴰⵎⵓⵙⵙⵓ", "ⵡⴰⵎⴰⵏ", "3afak", "wa9t",
    "lwra9", "😡", "🙏", "N°", "tél", "رقم", "الهاتف", "CIN", "compte", "IBAN",
]  # fmt: skip
# Free context: letters, marks, punctuation, spaces and symbols of any script, no digits (a digit
# glued to a number makes it another number by construction; test_redact covers those cases).
free_text = st.text(
    st.characters(
        codec=None,
        categories=("L", "M", "P", "Zs", "So"),
        exclude_characters="+@",
    ),
    max_size=25,
)
sentence = st.lists(st.one_of(st.sampled_from(WORDS), free_text), max_size=6).map(" ".join)
left_separator = st.sampled_from([" ", ": ", "\n", " (", "، ", " - ", " :"])
right_separator = st.sampled_from([" ", ", ", "\n", ") ", "، ", ". ", " ؟"])


def _digits(draw: st.DrawFn, count: int) -> str:
    return draw(st.text("0123456789", min_size=count, max_size=count))


def _pairs(digits: str) -> str:
    return " ".join(digits[i : i + 2] for i in range(0, len(digits), 2))


def _by_four(value: str) -> str:
    return " ".join(value[i : i + 4] for i in range(0, len(value), 4))


@st.composite
def phones(draw: st.DrawFn) -> str:
    """Moroccan numbers in every common writing (national, +212, 00212, (0), separators)."""
    first = draw(st.sampled_from("5678"))
    nsn = first + ("0" + _digits(draw, 7) if first == "8" else _digits(draw, 8))
    national = "0" + nsn
    written = draw(
        st.sampled_from(
            [
                national,
                _pairs(national),
                _pairs(national).replace(" ", "."),
                _pairs(national).replace(" ", "-"),
                _pairs(national).replace(" ", "/"),
                f"{national[:4]} {national[4:7]} {national[7:]}",
                "+212" + nsn,
                "+212 " + nsn[0] + " " + _pairs(nsn[1:]),
                "+212 " + _pairs("0" + nsn),
                "+212 (0)" + nsn[0] + " " + _pairs(nsn[1:]),
                "00212" + nsn,
                "00212 " + nsn[0] + " " + _pairs(nsn[1:]),
                "(+212) " + nsn[0] + " " + _pairs(nsn[1:]),
                "(+212)" + nsn,
            ]
        )
    )
    return written.translate(EASTERN) if draw(st.booleans()) else written


def _luhn_complete(partial: str) -> str:
    total = 0
    for i, char in enumerate(reversed(partial)):
        digit = int(char) * (2 if i % 2 == 0 else 1)
        total += digit - 9 if digit > 9 else digit
    return partial + str((10 - total % 10) % 10)


@st.composite
def cards(draw: st.DrawFn) -> str:
    prefix = draw(st.sampled_from(["4", "51", "55", "2221", "6011"]))
    number = _luhn_complete(prefix + _digits(draw, 15 - len(prefix)))
    return draw(st.sampled_from([number, _by_four(number), _by_four(number).replace(" ", "-")]))


IBAN_LENGTHS = {"MA": 28, "FR": 27, "ES": 24, "DE": 22, "BE": 16, "TN": 24}


def _iban_check(country: str, bban: str) -> str:
    numeric = "".join(str(int(c, 36)) for c in bban + country) + "00"
    return f"{98 - int(numeric) % 97:02d}"


@st.composite
def ibans(draw: st.DrawFn) -> str:
    """Valid IBANs (mod-97) of a few countries, compact or by four, and bare Moroccan RIBs."""
    country = draw(st.sampled_from(sorted(IBAN_LENGTHS)))
    bban = _digits(draw, IBAN_LENGTHS[country] - 4)
    iban = country + _iban_check(country, bban) + bban
    rib = _digits(draw, 24)
    return draw(
        st.sampled_from(
            [
                iban,
                _by_four(iban),
                f"{rib[:3]} {rib[3:6]} {rib[6:22]} {rib[22:]}",
                _by_four(rib),
                rib,
            ]
        )
    )


NOT_CIN = {"DH", "BP", "CP", "KM", "PK", "RN", "RR", "HT", "KG", "KW", "MB", "GB"}


@st.composite
def cins(draw: st.DrawFn) -> str:
    """National IDs in the shapes the redactor promises to catch (5-6 digits)."""
    letters = draw(st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=2))
    digits = _digits(draw, draw(st.sampled_from([5, 6])))
    if letters in NOT_CIN:
        letters = "BE"
    spaced = letters not in {"N", "NO"} and draw(st.booleans())
    style = draw(st.sampled_from(["upper", "lower"]))
    if style == "lower":
        return letters.lower() + digits
    return letters + (" " if spaced else "") + digits


emails = st.builds(
    lambda local, domain: f"{local}@{domain}",
    st.from_regex(r"[a-z][a-z0-9._%+\-]{0,14}[a-z0-9]", fullmatch=True),
    st.sampled_from(["gmail.com", "yahoo.fr", "menara.ma", "interieur.gov.ma", "uni-rabat.ac.ma"]),
)
planted = st.one_of(phones(), cards(), ibans(), cins(), emails)


@SETTINGS
@given(sentence, left_separator, planted, right_separator, sentence)
def test_no_character_of_a_planted_item_survives(
    before: str, left: str, value: str, right: str, after: str
) -> None:
    text = before + left + value + right + after
    start = len(before + left)

    result = redact(text)

    uncovered = [
        text[i]
        for i in range(start, start + len(value))
        if text[i].isalnum() and not any(r.start <= i < r.end for r in result.redactions)
    ]
    assert uncovered == [], f"{value!r} left {''.join(uncovered)!r} in {result.text!r}"
    assert value not in result.text


@SETTINGS
@given(st.lists(st.tuples(sentence, left_separator, planted, right_separator), max_size=4))
def test_several_planted_items_are_all_redacted_and_redaction_is_idempotent(
    parts: list[tuple[str, str, str, str]],
) -> None:
    text = "".join(a + b + c + d for a, b, c, d in parts)

    result = redact(text)

    for _, _, value, _ in parts:
        assert value not in result.text
    assert redact(result.text).text == result.text


# --- uploads --------------------------------------------------------------------------------------

# Values that survive validation unchanged: no NUL/bidi/surrogates, no outer whitespace.
value_alphabet = st.one_of(
    st.characters(codec="utf-8", categories=("L", "N", "P", "S")),
    st.sampled_from([" ", ",", ";", "\t", '"', "'", "\n", "\r\n", "ش", "é", "ⵣ", "😡"]),
)
field_text = (
    st.lists(value_alphabet, min_size=1, max_size=40).map("".join).map(str.strip).filter(bool)
)
rows_strategy = st.lists(
    st.tuples(field_text, st.sampled_from([None, "web", "app", "téléphone"])),
    min_size=1,
    max_size=12,
).map(lambda rows: [(f"r{i}", text, channel) for i, (text, channel) in enumerate(rows)])


def _expected(rows: list[tuple[str, str, str | None]]) -> list[tuple[str, str, str | None]]:
    return [
        (ext, strip_bidi_controls(text).strip(), channel)
        for ext, text, channel in rows
        if strip_bidi_controls(text).strip()
    ]


def _parsed(body: bytes, content_type: str, **kwargs: Any) -> list[tuple[str, str, str | None]]:
    parsed = parse_upload(body, content_type, **kwargs)
    return [(c.external_id or "", c.text, c.channel) for _, c in parsed.rows]


def _csv_body(
    rows: list[tuple[str, str, str | None]], delimiter: str, quoting: Literal[0, 1, 2, 3]
) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, quoting=quoting)
    writer.writerow(["id", "text", "channel"])
    writer.writerows([ext, text, channel or ""] for ext, text, channel in rows)
    return buffer.getvalue()


@SETTINGS
@given(
    rows_strategy,
    st.sampled_from([",", ";", "\t"]),
    st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]),
    st.sampled_from(["utf-8", "utf-8-sig", "utf-16"]),
)
def test_valid_csv_rows_round_trip(
    rows: list[tuple[str, str, str | None]],
    delimiter: str,
    quoting: Literal[0, 1, 2, 3],
    encoding: str,
) -> None:
    body = _csv_body(rows, delimiter, quoting).encode(encoding)

    assert _parsed(body, "text/csv") == _expected(rows)


@SETTINGS
@given(rows_strategy, st.sampled_from(["cp1256", "iso8859-6", "latin-1"]))
def test_valid_csv_rows_round_trip_in_a_declared_legacy_encoding(
    rows: list[tuple[str, str, str | None]], encoding: str
) -> None:
    representable = [r for r in rows if _encodable(r[1], encoding) and _encodable(r[2], encoding)]
    body = _csv_body(representable or [("r0", "ok", None)], ",", csv.QUOTE_MINIMAL)

    parsed = _parsed(body.encode(encoding), "text/csv", declared_encoding=encoding)

    assert parsed == _expected(representable or [("r0", "ok", None)])


def _encodable(value: str | None, encoding: str) -> bool:
    try:
        (value or "").encode(encoding)
    except UnicodeEncodeError:
        return False
    return True


@SETTINGS
@given(rows_strategy, st.sampled_from(["application/json", "application/x-ndjson"]))
def test_valid_json_rows_round_trip(
    rows: list[tuple[str, str, str | None]], content_type: str
) -> None:
    items = [{"id": ext, "text": text, "channel": channel} for ext, text, channel in rows]
    if content_type == "application/json":
        body = json.dumps({"complaints": items}, ensure_ascii=False).encode()
    else:
        body = "".join(json.dumps(item) + "\n" for item in items).encode()

    assert _parsed(body, content_type) == _expected(rows)


@SETTINGS
@given(rows_strategy, st.binary(min_size=1, max_size=200))
def test_garbage_after_valid_csv_rows_never_loses_them(
    rows: list[tuple[str, str, str | None]], garbage: bytes
) -> None:
    body = _csv_body(rows, ",", csv.QUOTE_ALL).encode() + garbage

    try:
        parsed = parse_upload(body, "text/csv")
    except UploadError as error:  # only a whole-upload refusal may stop it
        assert 400 <= error.status_code < 500 and error.message
        return
    kept = [(c.external_id or "", c.text, c.channel) for _, c in parsed.rows]
    expected = _expected(rows)
    assert kept[: len(expected)] == expected
