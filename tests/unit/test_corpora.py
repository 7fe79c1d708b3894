"""Corpus loaders: one schema, the documented split sizes, and refusal of altered files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from training.corpora import (
    CORPORA,
    SCHEMA,
    ChecksumError,
    CorpusError,
    data_dir,
    grouped_split,
    load_corpus,
    read_manifest,
    trainable_corpora,
)

pytestmark = pytest.mark.corpora

DATA = data_dir()
needs_data = pytest.mark.skipif(
    not DATA.is_dir(), reason=f"public corpora not found in {DATA} (set SAWT_DATA_DIR)"
)

# (split -> rows) as stated in each corpus's README/SOURCE.txt; see datasets/cards/.
EXPECTED_SPLITS: dict[str, dict[str, int]] = {
    "afrisenti_ary": {"train": 5583, "dev": 494, "test": 2961},
    "umsab_xlm_t": {"train": 3 * 1839, "dev": 3 * 324, "test": 3 * 870},
    "astd": {"train": 6008, "dev": 1999, "test": 1999},
    "complaints_social_media": {"test": 3449},
}


@pytest.fixture(scope="module", params=sorted(CORPORA))
def corpus(request: pytest.FixtureRequest) -> tuple[str, pd.DataFrame]:
    if not DATA.is_dir():
        pytest.skip(f"public corpora not found in {DATA} (set SAWT_DATA_DIR)")
    return request.param, load_corpus(request.param, include_unmapped=True)


def test_every_corpus_has_a_manifest_and_a_card() -> None:
    cards = Path(__file__).resolve().parents[2] / "datasets" / "cards"
    for name in CORPORA:
        assert read_manifest(name), name
        assert (cards / f"{name}.md").exists(), name


def test_only_permissive_corpora_may_train_the_shipped_model() -> None:
    assert sorted(trainable_corpora()) == ["afrisenti_ary", "arsarcasm_v2", "mac", "umsab_xlm_t"]


def test_unknown_corpus_is_refused() -> None:
    with pytest.raises(CorpusError, match="unknown corpus"):
        load_corpus("no_such_corpus")


@needs_data
def test_loader_returns_the_common_schema(corpus: tuple[str, pd.DataFrame]) -> None:
    name, frame = corpus
    assert tuple(frame.columns[: len(SCHEMA)]) == SCHEMA
    assert frame["text"].str.len().gt(0).all()
    assert set(frame["split"]) <= {"train", "dev", "test"}
    assert set(frame["script"]) <= {"Arab", "Latn", "Zyyy"}
    assert set(frame["source"]) == {name}
    labels = set(frame["label"].dropna())
    if name == "complaints_social_media":
        assert labels == {"complaint", "not_complaint"}
    else:
        assert labels == {"negative", "neutral", "positive"}


@needs_data
@pytest.mark.parametrize("name", sorted(EXPECTED_SPLITS))
def test_official_split_counts_match_the_readmes(name: str) -> None:
    frame = load_corpus(name, include_unmapped=True)
    assert frame["split"].value_counts().to_dict() == EXPECTED_SPLITS[name]


@needs_data
def test_arsarcasm_dev_is_carved_from_train_only() -> None:
    frame = load_corpus("arsarcasm_v2")
    counts = frame["split"].value_counts()
    assert counts["test"] == 3000
    assert counts["train"] + counts["dev"] == 12548
    assert 0.09 < counts["dev"] / 12548 < 0.11
    assert set(frame.loc[frame["dialect"] == "msa", "language"]) == {"ar"}
    assert set(frame.loc[frame["dialect"] == "egypt", "language"]) == {"ar-egypt"}


@needs_data
def test_mac_split_is_80_10_10_and_never_splits_duplicates() -> None:
    frame = load_corpus("mac", include_unmapped=True)
    assert len(frame) == 18087 - 12  # 12 rows have an empty tweet
    shares = frame["split"].value_counts(normalize=True)
    assert shares["train"] == pytest.approx(0.8, abs=0.01)
    assert shares["dev"] == pytest.approx(0.1, abs=0.01)
    assert frame.groupby("text")["split"].nunique().max() == 1
    assert frame["label"].isna().sum() == 643  # `mixed` has no 3-class label
    assert len(load_corpus("mac")) == len(frame) - 643
    assert set(frame["language"]) == {"ar", "ary"}


@needs_data
def test_afrisenti_language_follows_the_script() -> None:
    frame = load_corpus("afrisenti_ary")
    latin = frame[frame["language"] == "ary-Latn"]
    assert set(latin["script"]) == {"Latn"}
    assert 0.4 < len(latin) / len(frame) < 0.5  # README: ~45% Latin script


def test_grouped_split_is_deterministic_and_keeps_copies_together() -> None:
    texts = pd.Series([f"t{i % 40}" for i in range(100)])
    strata = pd.Series(["a" if i % 2 else "b" for i in range(100)])
    first = grouped_split(texts, strata, (0.8, 0.1, 0.1), ("train", "dev", "test"))
    second = grouped_split(texts, strata, (0.8, 0.1, 0.1), ("train", "dev", "test"))
    assert first.tolist() == second.tolist()
    assert pd.DataFrame({"t": texts, "s": first}).groupby("t")["s"].nunique().max() == 1
    assert set(first) == {"train", "dev", "test"}


@needs_data
def test_a_corrupted_file_is_refused_with_its_name(tmp_path: Path) -> None:
    name = "complaints_social_media"
    shutil.copytree(DATA / name, tmp_path / name)
    target = tmp_path / name / "complaints-data.csv"
    target.chmod(0o644)
    with target.open("a", encoding="utf-8") as handle:
        handle.write("1,injected row,0,other\n")
    with pytest.raises(ChecksumError, match=r"complaints-data\.csv"):
        load_corpus(name, data_dir=tmp_path)


@needs_data
def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    name = "mac"
    shutil.copytree(DATA / name, tmp_path / name)
    (tmp_path / name / "README.md").chmod(0o644)
    (tmp_path / name / "README.md").unlink()
    with pytest.raises(ChecksumError, match=r"README\.md is missing"):
        load_corpus(name, data_dir=tmp_path)
