"""Behaviour of ``models.text.normalize``: what the encoder sees for each way of typing."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.text.normalize import model_input, normalize


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("أحمد إلى آخر ٱلمدينة", "احمد الي اخر المدينة"),
        ("مستشفى", "مستشفي"),
        ("مُحَمَّدٌ", "محمد"),
        ("جميلـــة", "جميلة"),
        ("مسؤول مسئول", "مسؤول مسئول"),  # hamza seats kept
        ("مدرسة", "مدرسة"),  # ta marbuta kept
        ("ڭاع ڤيلا", "ڭاع ڤيلا"),  # Moroccan letters kept
        ("کتاب ی", "كتاب ي"),  # Persian keyboard letters
        ("ﻻ ﺔ", "لا ة"),  # presentation forms via NFKC
        ("ｗｉｆｉ", "wifi"),
    ],
)
def test_arabic_and_compatibility_forms(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("بزااااف", "بزااف"),
        ("khaybaaaa", "khaybaa"),
        ("!!!!", "!!"),
        ("wooow", "woow"),
        ("zoo", "zoo"),  # two repeats are not elongation
        ("😂😂😂😂", "😂😂"),
        ("1000 DH", "1000 DH"),  # digits never collapse
    ],
)
def test_elongation(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


def test_digits_become_ascii() -> None:
    assert normalize("٠٦١٢٣٤٥٦٧٨ و ۱۲۳") == "0612345678 و 123"
    assert normalize("٣٫٥٪ و ١٬٥٠٠") == "3.5% و 1,500"


def test_urls_and_handles() -> None:
    text = "voir https://chikaya.ma/x?id=1 et www.watiqa.ma, merci @ahmed_1 et @sara.b"
    assert normalize(text) == "voir URL et URL merci @USER et @USER"


def test_bare_domain_and_email_are_not_handles() -> None:
    assert normalize("le site chikaya.ma et a@b.com") == "le site chikaya.ma et a@b.com"


def test_invisible_and_control_characters() -> None:
    text = "a\u202eb\u2066c\u200bd\u200ce\ufeff f\x00g\ud800h\u061ci"
    assert normalize(text) == "abcde f gh" + "i"


def test_emoji_sequences_survive() -> None:
    family = "👨\u200d👩\u200d👧"
    assert normalize(f"merci {family} ❤️") == f"merci {family} ❤️"


def test_whitespace_collapsed() -> None:
    assert normalize("  a \t\n b\u00a0\u3000c  ") == "a b c"


def test_tatweel_between_letter_and_mark_recomposes() -> None:
    # Removing the tatweel brings e and U+0301 together: the result must be composed (é).
    assert normalize("e\u0640\u0301") == "é"


# A small alphabet where the interesting interactions happen often.
_TRICKY = [
    *"أإآٱىيةؤئاـًٌٍَُِّْٰٓٔبزف",
    *"khaybnw!?.@:/ ",
    *"0123456789٠١٢٣٤٥٦۰۱۲",
    "\u200d",
    "\u200c",
    "\u200b",
    "\u202e",
    "\u2066",
    "\x00",
    "\ud800",
    "😂",
    "👨",
    "\ufe0f",
    "\u0301",
    "ﻻ",
    "ﺔ",
    "ⅲ",
    "…",
    "℡",
    "https://",
    "www.",
    "@user",
    "a@b.co",
]
tricky_text = st.lists(st.sampled_from(_TRICKY), max_size=40).map("".join)
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=60)
texts = st.one_of(tricky_text, any_text, st.tuples(tricky_text, any_text).map("".join))


@settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(texts)
def test_idempotent_and_never_crashes(text: str) -> None:
    once = normalize(text)
    assert isinstance(once, str)
    assert normalize(once) == once


@settings(max_examples=200, deadline=None, database=None)
@given(texts)
def test_output_has_no_invisible_or_bidi_characters(text: str) -> None:
    out = normalize(text)
    forbidden = {"\u200b", "\u200c", "\u200e", "\u200f", "\ufeff", "\x00", "\u0640"}
    forbidden |= {chr(c) for c in range(0x202A, 0x202F)} | {chr(c) for c in range(0x2066, 0x206A)}
    assert not forbidden & set(out)
    assert not any(0xD800 <= ord(c) <= 0xDFFF for c in out)
    assert out == out.strip() and "  " not in out


def test_model_input_drops_redaction_placeholders_and_keeps_clean_text() -> None:
    assert (
        model_input("appelez le [PHONE] ou écrivez à [EMAIL] svp") == "appelez le ou écrivez à svp"
    )
    assert model_input("voir https://x.ma @ali") == "voir"
    clean = "الموقع ديال الضريبة ما خدامش 3 ايام"
    assert model_input(clean) == normalize(clean) == clean
