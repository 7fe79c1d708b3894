"""Language identification: script rules, per-script models, code-switching, persistence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.language import (
    LANGUAGES,
    LanguageIdentifier,
    LanguageResult,
    dominant_script,
    segments,
)
from models.registry import MODEL_KINDS, ArtifactError, Registry

# A toy training set: enough for the rules and the plumbing, not for accuracy claims.
TOY: dict[str, list[str]] = {
    "ar": [
        "لم أتلق أي رد من الإدارة منذ شهرين",
        "نطالب بتحسين الخدمات في المستشفى العمومي",
        "تأخر كبير في معالجة الملفات الإدارية",
        "أرجو منكم الاهتمام بهذا الموضوع في أقرب وقت",
    ],
    "ary": [
        "مشيت للإدارة و ما بغاوش يجاوبوني",
        "واش كاين شي حد يعرف فين نمشي",
        "الموظف ما بغاش يعطيني الوراق ديالي",
        "بزاف ديال الناس كيتسناو من الصباح",
    ],
    "ary-Latn": [
        "mchit l idara w ma bghawch yjawbouni",
        "wach kayn chi wa7ed y3ref fin nmchi",
        "lmowadaf ma bghach y3tini lwra9 dyali",
        "bzaf dyal nass kaytsnaw mn sba7",
    ],
    "fr": [
        "je n'ai reçu aucune réponse de l'administration",
        "nous demandons l'amélioration des services publics",
        "le dossier est en cours de traitement depuis des mois",
        "merci de traiter ma demande au plus vite",
    ],
    "en": [
        "I have not received any answer from the office",
        "we ask for better public services in the hospital",
        "my application has been pending for months",
        "please handle my request as soon as possible",
    ],
}


@pytest.fixture(scope="module")
def toy_model() -> LanguageIdentifier:
    texts = [t for rows in TOY.values() for t in rows]
    languages = [lang for lang, rows in TOY.items() for _ in rows]
    return LanguageIdentifier(C=10.0).fit(texts, languages)


@pytest.fixture(scope="module")
def shipped() -> LanguageIdentifier:
    try:
        model, meta = Registry().load("langid")
    except ArtifactError as exc:
        pytest.skip(f"no promoted langid artifact ({exc}); run `python -m training.langid`")
    assert meta.kind == LanguageIdentifier.kind
    return model


def test_kind_is_registered() -> None:
    assert MODEL_KINDS[LanguageIdentifier.kind] is LanguageIdentifier


@pytest.mark.parametrize(
    ("text", "script"),
    [
        ("مشيت للإدارة", "Arab"),
        ("ⵜⴰⵎⴰⵣⵉⵖⵜ", "Tfng"),
        ("salam 3likoum", "Latn"),
        ("😡😡 123 !!", "Zyyy"),
        ("https://example.org/ma-page @handle", "Zyyy"),  # URLs and handles are not language
    ],
)
def test_dominant_script(text: str, script: str) -> None:
    assert dominant_script(text) == script


def test_segments_split_at_script_changes_and_clauses() -> None:
    parts = segments("مشيت للمقاطعة و قالو ليا le système est en panne, 3afak 3awnni")
    scripts = [script for script, _ in parts]
    assert scripts == ["Arab", "Latn", "Latn"]
    assert parts[1][1] == "le système est en panne"


def test_tifinagh_is_amazigh(toy_model: LanguageIdentifier) -> None:
    result = toy_model.identify(["ⴰⵣⵓⵍ ⴼⵍⵍⴰⵡⵏ ⵜⴰⵎⴰⵣⵉⵖⵜ"])[0]
    assert result == LanguageResult(language="zgh", script="Tfng", confidence=1.0, mix=[])


@pytest.mark.parametrize("text", ["😡😡😡 !!!", "123 456", "", "   ", "ok", "🙏 https://t.co/x"])
def test_no_letters_or_too_short_is_undetermined(toy_model: LanguageIdentifier, text: str) -> None:
    result = toy_model.identify([text])[0]
    assert result.language == "und"
    assert result.mix == []


def test_emoji_only_has_no_script(toy_model: LanguageIdentifier) -> None:
    assert toy_model.identify(["😡😡😡"])[0].script == "Zyyy"


def test_predict_proba_agrees_with_identify(toy_model: LanguageIdentifier) -> None:
    texts = ["mchit l idara", "je n'ai reçu aucune réponse", "ⵜⴰⵎⴰⵣⵉⵖⵜ", "😡", "واش كاين"]
    proba = toy_model.predict_proba(texts)
    assert proba.shape == (len(texts), len(LANGUAGES))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    labels = [toy_model.labels_[i] for i in proba.argmax(axis=1)]
    assert labels == list(toy_model.predict(texts))
    assert labels[2:4] == ["zgh", "und"]


def test_fit_needs_every_language_of_a_script() -> None:
    with pytest.raises(ValueError, match="ary"):
        LanguageIdentifier().fit(
            TOY["ar"] + TOY["fr"] + TOY["en"] + TOY["ary-Latn"],
            ["ar"] * 4 + ["fr"] * 4 + ["en"] * 4 + ["ary-Latn"] * 4,
        )


def test_save_load_round_trip(toy_model: LanguageIdentifier, tmp_path: Path) -> None:
    toy_model.save(tmp_path)
    loaded = LanguageIdentifier.load(tmp_path)
    texts = ["mchit l idara w ma jawbounich", "merci pour votre aide", "مشيت للإدارة"]
    assert loaded.identify(texts) == toy_model.identify(texts)
    assert loaded.get_params() == toy_model.get_params()


# -- the shipped artifact ----------------------------------------------------------------------

OBVIOUS = [
    ("Je n'arrive pas à payer ma facture d'électricité en ligne depuis trois jours.", "fr"),
    ("I have been waiting for my passport renewal for two months without any answer.", "en"),
    ("salam, 3andi mochkil m3a lbaladiya, mabghawch y3tiwni chahada dyal sokna", "ary-Latn"),
    ("لم أتلق أي رد من المصلحة منذ شهرين رغم تقديم جميع الوثائق المطلوبة", "ar"),
    ("الإدارة ديال الضمان الاجتماعي ما بغاوش يجاوبوني واخا مشيت ليهم بزاف د المرات", "ary"),
]


@pytest.mark.parametrize(("text", "language"), OBVIOUS)
def test_shipped_model_identifies_obvious_sentences(
    shipped: LanguageIdentifier, text: str, language: str
) -> None:
    result = shipped.identify([text])[0]
    assert result.language == language
    assert result.confidence > 0.5
    assert result.mix == []


@pytest.mark.parametrize(
    ("text", "languages"),
    [
        (
            "مشيت للمقاطعة باش نخرج عقد الازدياد و قالو ليا le système est en panne ce matin",
            {"ary", "fr"},
        ),
        (
            "salam, 3ndi mochkil f la carte, je n'arrive pas à payer en ligne depuis hier",
            {"ary-Latn", "fr"},
        ),
        ("ⵜⴰⵎⴰⵣⵉⵖⵜ ⴰⵣⵓⵍ, salam khouya kifach ndir bach nsjjel", {"zgh", "ary-Latn"}),
    ],
)
def test_shipped_model_reports_code_switching(
    shipped: LanguageIdentifier, text: str, languages: set[str]
) -> None:
    result = shipped.identify([text])[0]
    assert set(result.mix) == languages
    assert result.mix[0] == result.language
