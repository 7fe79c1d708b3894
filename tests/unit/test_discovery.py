"""Theme discovery on small synthetic corpora: planted themes, stable ids, words, JSON."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from models.discovery import (
    STOPWORD_DIR,
    STOPWORD_LANGUAGES,
    ThemeDiscoverer,
    ThemeSet,
    guess_languages,
    load_stop_words,
    preprocess,
    tokenize,
    topic_centroids,
)

DIM = 48
# Per-theme vocabularies mixing the project's languages (as real themes do, so that language
# and theme are independent); filler words are stop words.
VOCABULARIES: dict[str, list[str]] = {
    "water": ["الماء", "انقطاع", "الصنبور", "lma", "robinet", "compteur"],
    "portal": ["portail", "connexion", "bloqué", "التطبيق", "login", "password"],
    "bribe": ["rachwa", "bakchich", "piston", "الرشوة", "bribe", "محسوبية"],
    "queue": ["waiting", "queue", "hours", "الطابور", "guichet", "ntsna"],
    "roads": ["الطريق", "الحفر", "الإنارة", "zenqa", "trottoir", "potholes"],
}
FILLERS = ["في", "على", "dyal", "wach", "le", "de", "the", "and", "ديال", "هاد"]


def make_corpus(
    rng: np.random.Generator, themes: list[str], n_per: int, centres: dict[str, np.ndarray]
) -> tuple[list[str], np.ndarray, list[str]]:
    """Texts drawn from each theme's vocabulary and embeddings around the theme's centre."""
    common = np.full(DIM, 0.6)  # a shared direction, as in real sentence embeddings
    texts, vectors, labels = [], [], []
    for theme in themes:
        for _ in range(n_per):
            words = [*rng.choice(VOCABULARIES[theme], 4), *rng.choice(FILLERS, 3)]
            texts.append(" ".join(rng.permutation(words)))
            vectors.append(centres[theme] + common + rng.normal(scale=0.25, size=DIM))
            labels.append(theme)
    return texts, np.asarray(vectors, dtype=np.float32), labels


@pytest.fixture(scope="module")
def centres() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    return {theme: rng.normal(size=DIM) for theme in VOCABULARIES}


@pytest.fixture(scope="module")
def week1(centres: dict[str, np.ndarray]) -> tuple[list[str], np.ndarray, list[str]]:
    return make_corpus(np.random.default_rng(1), ["water", "portal", "bribe", "queue"], 60, centres)


@pytest.fixture(scope="module")
def fitted(week1: tuple[list[str], np.ndarray, list[str]]) -> ThemeDiscoverer:
    texts, vectors, _ = week1
    start = datetime(2024, 5, 6, tzinfo=UTC)
    times = [start + timedelta(hours=5 * i) for i in range(len(texts))]
    return ThemeDiscoverer(min_theme_size=15, granularity="week").fit(
        texts, vectors, timestamps=times
    )


def test_planted_themes_are_recovered(
    fitted: ThemeDiscoverer, week1: tuple[list[str], np.ndarray, list[str]]
) -> None:
    _, _, labels = week1
    assert len(fitted.themes_.themes) == 4
    inliers = fitted.labels_ >= 0
    assert inliers.mean() > 0.8
    assert adjusted_rand_score(np.asarray(labels)[inliers], fitted.labels_[inliers]) > 0.9
    for theme in fitted.themes_.themes:
        assert theme.theme_id.startswith("th-") and theme.is_new
        assert len(theme.centroid) == DIM
        assert np.isclose(np.linalg.norm(theme.centroid), 1.0, atol=1e-4)
        assert len(theme.representatives) == 3
        members = {i for i, t in enumerate(fitted.theme_ids_) if t == theme.theme_id}
        assert set(theme.representatives) <= members
        assert theme.size == len(members)


def test_keywords_are_whole_words_and_not_stop_words(
    fitted: ThemeDiscoverer, week1: tuple[list[str], np.ndarray, list[str]]
) -> None:
    _, _, labels = week1
    stop_words = load_stop_words()
    for k, theme in enumerate(fitted.themes_.themes):
        majority = max(
            set(labels), key=lambda t: np.sum((fitted.labels_ == k) & (np.asarray(labels) == t))
        )
        vocabulary = {w for word in VOCABULARIES[majority] for w in tokenize(preprocess(word))}
        assert theme.keywords, theme
        assert not set(theme.keywords) & stop_words
        assert set(theme.keywords[:3]) <= vocabulary, (theme.keywords, majority)
    water = next(
        t
        for k, t in enumerate(fitted.themes_.themes)
        if labels[int(np.flatnonzero(fitted.labels_ == k)[0])] == "water"
    )
    # Arabic keywords are words of the texts (normalised: إ/أ -> ا), not letters.
    assert "انقطاع" in water.keywords and all(len(w) >= 3 for w in water.keywords)


def test_refit_keeps_ids_of_persisting_themes_and_mints_new_ones(
    fitted: ThemeDiscoverer, centres: dict[str, np.ndarray]
) -> None:
    # Next week: "queue" is gone, "roads" is new, the other three persist (new documents).
    texts, vectors, labels = make_corpus(
        np.random.default_rng(2), ["water", "portal", "bribe", "roads"], 60, centres
    )
    first = fitted.themes_
    again = ThemeDiscoverer(min_theme_size=15).fit(texts, vectors, previous=first)

    def id_of(fit: ThemeDiscoverer, theme: str, label_list: list[str]) -> str | None:
        rows = [i for i, t in enumerate(label_list) if t == theme]
        ids = [fit.theme_ids_[i] for i in rows if fit.theme_ids_[i] is not None]
        return max(set(ids), key=ids.count) if ids else None

    old_labels = make_corpus(
        np.random.default_rng(1), ["water", "portal", "bribe", "queue"], 60, centres
    )[2]
    for theme in ("water", "portal", "bribe"):
        old_id = id_of(fitted, theme, old_labels)
        assert old_id is not None and id_of(again, theme, labels) == old_id
        assert not again.themes_.theme(old_id).is_new
    roads_id = id_of(again, "roads", labels)
    assert roads_id is not None and roads_id not in {t.theme_id for t in first.themes}
    assert again.themes_.theme(roads_id).is_new
    queue_id = id_of(fitted, "queue", old_labels)
    assert queue_id in {t.theme_id for t in again.themes_.archived}
    # first_seen carries over from the earlier fit
    old_water = first.theme(id_of(fitted, "water", old_labels) or "")
    assert again.themes_.theme(old_water.theme_id).first_seen == old_water.first_seen


def test_outliers_map_to_null(centres: dict[str, np.ndarray]) -> None:
    texts, vectors, _ = make_corpus(np.random.default_rng(3), ["water", "bribe"], 50, centres)
    rng = np.random.default_rng(4)
    noise = rng.normal(size=(6, DIM)) * 3
    texts += [f"random text number {i}" for i in range(6)]
    vectors = np.vstack([vectors, noise]).astype(np.float32)
    fit = ThemeDiscoverer(min_theme_size=15).fit(texts, vectors)
    assert fit.theme_ids_[-6:] == [None] * 6
    assert (fit.labels_[-6:] == -1).all()
    assert fit.themes_.n_outliers >= 6
    assert fit.predict(noise) == [None] * 6
    assert fit.predict(vectors[:3]) == fit.theme_ids_[:3]


def test_themeset_json_round_trip(fitted: ThemeDiscoverer, tmp_path: Path) -> None:
    path = tmp_path / "themes.json"
    fitted.themes_.save(path)
    assert "انقطاع" in path.read_text(encoding="utf-8")  # readable Arabic, not \u escapes
    loaded = ThemeSet.load(path)
    assert loaded == fitted.themes_
    assert ThemeSet.model_validate_json(fitted.themes_.model_dump_json()) == fitted.themes_


def test_topics_over_time_counts_per_week(fitted: ThemeDiscoverer) -> None:
    counts = fitted.themes_.topics_over_time
    assert sum(c.count for c in counts) == fitted.themes_.n_documents
    assert {c.period.weekday() for c in counts} == {0}  # weeks start on Monday
    for theme in fitted.themes_.themes:
        assert sum(c.count for c in counts if c.theme_id == theme.theme_id) == theme.size
    assert len(fitted.topics_over_time_) == len(counts)


def test_suggested_topic_is_nearest_taxonomy_topic_or_new(
    centres: dict[str, np.ndarray],
) -> None:
    rng = np.random.default_rng(5)
    seed_texts, seed_vectors, seed_labels = make_corpus(
        rng, ["water", "bribe", "queue"], 10, centres
    )
    taxonomy = topic_centroids(
        seed_texts,
        [
            [{"water": "infrastructure", "bribe": "corruption", "queue": "delays"}[t]]
            for t in seed_labels
        ],
        seed_vectors,
    )
    texts, vectors, labels = make_corpus(rng, ["water", "bribe", "portal"], 50, centres)
    fit = ThemeDiscoverer(min_theme_size=15, topic_centroids=taxonomy).fit(texts, vectors)
    suggested = {
        labels[int(np.flatnonzero(fit.labels_ == k)[0])]: t.suggested_topic
        for k, t in enumerate(fit.themes_.themes)
    }
    assert suggested == {"water": "infrastructure", "bribe": "corruption", "portal": "new"}


def test_language_tags_remove_language_clusters() -> None:
    # Two themes written in two languages; language offsets dominate the raw vectors.
    rng = np.random.default_rng(6)
    theme_dirs, lang_dirs = rng.normal(size=(2, DIM)), rng.normal(size=(2, DIM)) * 3
    vectors, themes, languages = [], [], []
    for t in range(2):
        for lang, name in enumerate(["fr", "ar"]):
            for _ in range(50):
                vectors.append(theme_dirs[t] + lang_dirs[lang] + rng.normal(scale=0.6, size=DIM))
                themes.append(t)
                languages.append(name)
    texts = ["x"] * len(vectors)  # no language cue in the texts themselves
    tagged = ThemeDiscoverer(min_theme_size=15).fit(texts, np.asarray(vectors), languages=languages)
    untagged = ThemeDiscoverer(min_theme_size=15).fit(texts, np.asarray(vectors))
    assert adjusted_rand_score(themes, tagged.labels_) > 0.9
    assert len(tagged.themes_.themes) == 2
    assert len(untagged.themes_.themes) == 4  # theme x language, what tags are there to avoid


def test_languages_are_guessed_from_stop_words_when_not_given() -> None:
    texts = [
        "wach kayn chi 7al l had lmochkil dyal lma",
        "الإدارة لا تجيب على الطلبات منذ شهر",
        "Le guichet est fermé depuis une semaine",
        "The office never answers the phone",
    ]
    assert guess_languages(texts) == ["ary-Latn", "ar", "fr", "en"]


def test_bad_input_is_refused_with_a_reason(week1: tuple[list[str], np.ndarray, list[str]]) -> None:
    texts, vectors, _ = week1
    with pytest.raises(ValueError, match="embeddings must be"):
        ThemeDiscoverer().fit(texts, vectors[:-1])
    with pytest.raises(ValueError, match="timestamps could not be read"):
        ThemeDiscoverer().fit(texts, vectors, timestamps=["not a date"] * len(texts))
    with pytest.raises(RuntimeError, match="fit"):
        ThemeDiscoverer().predict(vectors)


@pytest.mark.parametrize("language", STOPWORD_LANGUAGES)
def test_stop_word_lists_are_single_tokens(language: str) -> None:
    for line in (STOPWORD_DIR / f"{language}.txt").read_text(encoding="utf-8").splitlines():
        entry = line.split("#", 1)[0].strip()
        if entry:
            assert tokenize(preprocess(entry)) == [preprocess(entry)], entry


def test_tokenizer_keeps_arabic_and_arabizi_words_whole() -> None:
    text = "الإدارة ما جاوبتش 3la talab dyali depuis 2024, l'attente"
    assert tokenize(preprocess(text)) == [
        "الادارة",
        "ما",
        "جاوبتش",
        "3la",
        "talab",
        "dyali",
        "depuis",
        "attente",
    ]


class WordHashEncoder:
    """Stands in for the e5 encoder: texts sharing content words get nearby vectors."""

    def __init__(self, model_dir: object = None) -> None:
        self.model_dir = Path("stub-encoder")

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in set(tokenize(preprocess(text))) - load_stop_words():
                seed = int.from_bytes(word.encode()[:8].ljust(8, b"\0"), "little") % 2**32
                out[i] += np.random.default_rng(seed).normal(size=DIM)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def test_discover_command_writes_one_line_per_row_and_keeps_ids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, centres: dict[str, np.ndarray]
) -> None:
    import json

    import typer
    from typer.testing import CliRunner

    import models.encoder.encoder as encoder_module
    from service.themes.commands import discover, themes_path

    monkeypatch.setattr(encoder_module, "Encoder", WordHashEncoder)
    monkeypatch.setenv("SAWT_CACHE_DIR", str(tmp_path / "cache"))
    app = typer.Typer()
    app.command()(discover)
    texts, _, _ = make_corpus(np.random.default_rng(8), ["water", "bribe", "portal"], 40, centres)
    source = tmp_path / "in.jsonl"
    lines = [
        json.dumps({"id": f"c{i}", "text": t, "at": f"2024-05-{1 + i % 20:02d}"})
        for i, t in enumerate(texts)
    ]
    lines.insert(5, json.dumps({"id": "empty", "text": "  ", "at": "2024-05-02"}))
    lines.insert(9, "not json")
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")

    out = tmp_path / "week1.jsonl"
    args = [str(source), "-o", str(out), "--time-field", "at", "--min-theme-size", "15"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == len(lines)
    assert rows[5] == {"id": "empty", "theme": None, "error": "field 'text' is empty or missing"}
    assert rows[9]["theme"] is None and rows[9]["error"].startswith("invalid JSON")
    first = ThemeSet.load(themes_path(out))
    assert len(first.themes) == 3 and first.topics_over_time
    assert {r["theme"] for r in rows if "error" not in r} <= {t.theme_id for t in first.themes} | {
        None
    }

    again = tmp_path / "week2.jsonl"
    result = CliRunner().invoke(
        app, [*args[:2], str(again), "--previous", str(themes_path(out)), "--min-theme-size", "15"]
    )
    assert result.exit_code == 0, result.output
    second = ThemeSet.load(themes_path(again))
    assert {t.theme_id for t in second.themes} == {t.theme_id for t in first.themes}
    assert not any(t.is_new for t in second.themes)
