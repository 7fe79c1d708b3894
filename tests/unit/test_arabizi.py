"""Behaviour of ``models.text.arabizi``: Arabizi spelled in Arabic script, everything else kept."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.text.arabizi import arabizi_to_arabic


@pytest.mark.parametrize(
    ("arabizi", "arabic"),
    [
        ("bzaf", "بزاف"),
        ("Bzzaaf", "بزاف"),
        ("mzyan", "مزيان"),
        ("dyal", "ديال"),
        ("ma3ndi", "ماعندي"),
        ("khouya", "خويا"),
        ("kat9oul", "كاتقول"),
        ("chkoun", "شكون"),
        ("l7aja", "لحاجا"),
        ("ghir", "غير"),
    ],
)
def test_darija_words(arabizi: str, arabic: str) -> None:
    assert arabizi_to_arabic(arabizi) == arabic


def test_numbers_arabic_script_emoji_and_punctuation_are_kept() -> None:
    text = "3 mrat f consulat, 60 euro 😡 والو!"
    assert arabizi_to_arabic(text) == "3 مرات ف كونسولات, 60 اورو 😡 والو!"


def test_accented_letters_are_not_words_of_arabizi() -> None:
    # "santé": the ASCII run "sant" is spelled, the accented letter stays as written
    assert arabizi_to_arabic("santé") == "سانتé"


@given(st.text(st.characters(exclude_categories=["Cs"]), max_size=80))
def test_no_ascii_letter_survives_and_every_other_character_does(text: str) -> None:
    out = arabizi_to_arabic(text)
    assert not any(ch.isascii() and ch.isalpha() for ch in out)
    remaining = iter(out)  # the non-ASCII-word characters, in order, as a subsequence
    assert all(ch in remaining for ch in text if not (ch.isascii() and ch.isalnum()))


def test_the_view_experiment_pairs_the_post_with_each_second_view() -> None:
    from training.arabizi_view import views

    seen: list[tuple[str, list[str]]] = []

    def encode(texts: list[str], prefix: str) -> np.ndarray:
        seen.append((prefix, texts))
        return np.full((len(texts), 2), float(len(seen)), dtype=np.float32)

    features = views(["bzaf", "mzyan"], encode)

    assert features["as written"].shape == (2, 2)
    assert all(x.shape == (2, 4) for name, x in features.items() if name != "as written")
    assert ("query: ", ["بزاف", "مزيان"]) in seen
    assert ("passage: ", ["bzaf", "mzyan"]) in seen
