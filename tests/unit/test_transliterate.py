"""Behaviour of ``models.text.transliterate``: Tifinagh reaches the encoder as Latin letters."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.text.transliterate import has_tifinagh, tifinagh_to_latin


@pytest.mark.parametrize(
    ("tifinagh", "latin"),
    [
        ("ⴰⵣⵓⵍ", "azul"),
        ("ⵜⴰⵎⴰⵣⵉⵖⵜ", "tamaziɣt"),
        ("ⵜⴰⴳⵍⴷⵉⵜ ⵏ ⵍⵎⵖⵔⵉⴱ", "tagldit n lmɣrib"),
        ("ⴰⴳⵯⵔⵏ", "agʷrn"),
        ("ⵄⵎⵎⵉ ⵃⵎⵎⵓ", "ɛmmi ḥmmu"),
        ("ⴹⵕⵚⵟⵥ", "ḍṛṣṭẓ"),
        ("ⵛⵊⵇⵅ", "cjqx"),
    ],
)
def test_ircam_letters(tifinagh: str, latin: str) -> None:
    assert tifinagh_to_latin(tifinagh) == latin


def test_mixed_text_keeps_other_scripts() -> None:
    text = "Salam, ⴰⵣⵓⵍ مرحبا 2024!"
    assert tifinagh_to_latin(text) == "Salam, azul مرحبا 2024!"


def test_ascii_only_folds_ircam_letters_but_not_surrounding_latin() -> None:
    assert tifinagh_to_latin("ⵜⴰⵎⴰⵣⵉⵖⵜ ⵄⵎⵎⵉ ⴹ", ascii_only=True) == "tamazight 3mmi d"
    assert tifinagh_to_latin("ḍ ⴹ", ascii_only=True) == "ḍ d"


def test_separator_and_joiner() -> None:
    assert tifinagh_to_latin("ⴰ\u2d70ⴱ\u2d7fⵜ") == "a bt"


def test_has_tifinagh() -> None:
    assert has_tifinagh("azul ⴰⵣⵓⵍ")
    assert not has_tifinagh("azul مرحبا")
    assert not has_tifinagh("")


_ASSIGNED = [chr(c) for c in range(0x2D30, 0x2D68)] + ["\u2d6f", "\u2d70", "\u2d7f"]


@settings(max_examples=200, deadline=None, database=None)
@given(st.lists(st.sampled_from([*_ASSIGNED, " ", "a", "ب", "1"]), max_size=30).map("".join))
def test_no_assigned_tifinagh_survives(text: str) -> None:
    out = tifinagh_to_latin(text)
    assert not has_tifinagh(out)
    assert not has_tifinagh(tifinagh_to_latin(text, ascii_only=True))
    assert tifinagh_to_latin(out) == out


@settings(max_examples=200, deadline=None, database=None)
@given(st.text(st.characters(codec=None, exclude_categories=()), max_size=40))
def test_never_crashes_and_leaves_non_tifinagh_alone(text: str) -> None:
    out = tifinagh_to_latin(text)
    if not has_tifinagh(text):
        assert out == text
