"""Public corpora read into one schema: ``text, label, language, script, split, source``.

The corpora stay outside the repository (``SAWT_DATA_DIR``, default ``<repo>/../shared/datasets``);
every file is checked against ``datasets/checksums/<name>.sha256`` before it is read, so a changed
copy fails loudly instead of silently shifting the numbers. Label maps, split rules and language
tags are documented per corpus in ``datasets/cards/<name>.md``.
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from models.language import dominant_script

REPO_ROOT = Path(__file__).resolve().parents[1]
CHECKSUM_DIR = REPO_ROOT / "datasets" / "checksums"
SCHEMA: tuple[str, ...] = ("text", "label", "language", "script", "split", "source")
SENTIMENT_LABELS: tuple[str, ...] = ("negative", "neutral", "positive")
SPLITS: tuple[str, ...] = ("train", "dev", "test")
SPLIT_SEED = "sawt-2024"


class CorpusError(Exception):
    """A corpus is missing, unknown or unreadable; the message says which file and why."""


class ChecksumError(CorpusError):
    """A corpus file differs from the copy recorded in ``datasets/checksums``."""


@dataclass(frozen=True)
class CorpusInfo:
    """What a corpus is, under which terms, and whether the shipped model may learn from it."""

    name: str
    licence: str
    trainable: bool
    languages: tuple[str, ...]
    task: str
    citation: str
    url: str


CORPORA: dict[str, CorpusInfo] = {
    info.name: info
    for info in (
        CorpusInfo(
            name="afrisenti_ary",
            licence="CC-BY-4.0",
            trainable=True,
            languages=("ary", "ary-Latn"),
            task="sentiment",
            citation="Muhammad et al. 2023, AfriSenti (EMNLP) / SemEval-2023 Task 12",
            url="https://github.com/afrisenti-semeval/afrisent-semeval-2023",
        ),
        CorpusInfo(
            name="arsarcasm_v2",
            licence="MIT",
            trainable=True,
            languages=("ar", "ar-egypt", "ar-gulf", "ar-levant", "ar-magreb"),
            task="sentiment",
            citation="Abu Farha, Zaghouani & Magdy 2021, WANLP shared task (ArSarcasm-v2)",
            url="https://github.com/iabufarha/ArSarcasm-v2",
        ),
        CorpusInfo(
            name="umsab_xlm_t",
            licence="Apache-2.0 (repository); upstream SemEval-2017 (ar, en), DEFT-2017 (fr)",
            trainable=True,
            languages=("ar", "fr", "en"),
            task="sentiment",
            citation="Barbieri, Espinosa Anke & Camacho-Collados 2022, XLM-T (LREC)",
            url="https://github.com/cardiffnlp/xlm-t",
        ),
        CorpusInfo(
            name="mac",
            licence="'open and free' for research (no licence file); cite Garouani & Kharroubi",
            trainable=True,
            languages=("ar", "ary"),
            task="sentiment",
            citation="Garouani & Kharroubi 2022, MAC (SCA 2021, doi 10.1007/978-3-030-94191-8_68)",
            url="https://github.com/LeMGarouani/MAC",
        ),
        CorpusInfo(
            name="astd",
            licence="GPL-2.0",
            trainable=False,
            languages=("ar-egypt",),
            task="sentiment",
            citation="Nabil, Aly & Atiya 2015, ASTD (EMNLP)",
            url="https://github.com/mahmoudnabil/ASTD",
        ),
        CorpusInfo(
            name="complaints_social_media",
            licence="unstated (no licence file); cite Preotiuc-Pietro et al. 2019",
            trainable=False,
            languages=("en",),
            task="complaint",
            citation="Preotiuc-Pietro, Gaman & Aletras 2019, Automatically Identifying Complaints "
            "in Social Media (ACL)",
            url="https://github.com/danielpreotiuc/complaints-social-media",
        ),
    )
}

# Raw label -> 3-class label. Raw labels absent from a map (mac `mixed`, astd `NEUTRAL`, which
# ASTD's README defines as "subjective mixed") have no 3-class label: dropped unless asked for.
LABEL_MAPS: dict[str, dict[str, str]] = {
    "afrisenti_ary": {"negative": "negative", "neutral": "neutral", "positive": "positive"},
    "arsarcasm_v2": {"NEG": "negative", "NEU": "neutral", "POS": "positive"},
    "umsab_xlm_t": {"0": "negative", "1": "neutral", "2": "positive"},
    "mac": {"negative": "negative", "neutral": "neutral", "positive": "positive"},
    "astd": {"NEG": "negative", "OBJ": "neutral", "POS": "positive"},
    "complaints_social_media": {"1": "complaint", "0": "not_complaint"},
}


def data_dir() -> Path:
    """The corpora root: ``$SAWT_DATA_DIR`` or ``../shared/datasets`` beside the checkout."""
    configured = os.environ.get("SAWT_DATA_DIR")
    return Path(configured) if configured else REPO_ROOT.parent / "shared" / "datasets"


def _root(configured: Path | str | None) -> Path:
    return Path(configured) if configured is not None else data_dir()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(name: str) -> dict[str, str]:
    """``relative file name -> sha256`` from ``datasets/checksums/<name>.sha256``."""
    manifest = CHECKSUM_DIR / f"{name}.sha256"
    if not manifest.exists():
        raise CorpusError(f"no checksum manifest {manifest}; write one with `sha256sum`")
    entries: dict[str, str] = {}
    for line in manifest.read_text(encoding="utf-8").splitlines():
        if line.strip():
            digest, _, filename = line.partition("  ")
            entries[filename.lstrip("*")] = digest.strip()
    return entries


def verify_checksums(name: str, root: Path | None = None) -> None:
    """Refuse a corpus whose files differ from the recorded sha256 manifest."""
    folder = _root(root) / name
    for filename, expected in read_manifest(name).items():
        path = folder / filename
        if not path.exists():
            raise ChecksumError(f"{path} is missing (listed in datasets/checksums/{name}.sha256)")
        actual = _sha256(path)
        if actual != expected:
            raise ChecksumError(
                f"{path}: sha256 {actual} does not match {expected} recorded in "
                f"datasets/checksums/{name}.sha256; the corpus copy was changed or is corrupt"
            )


def _stable_rank(text: str) -> str:
    return hashlib.sha256(f"{SPLIT_SEED}:{text}".encode()).hexdigest()


def grouped_split(
    texts: pd.Series, strata: pd.Series, fractions: tuple[float, ...], names: tuple[str, ...]
) -> pd.Series:
    """Deterministic stratified split that keeps every copy of a text in the same split.

    Seeded by hashing, not by a random generator, so it is identical across library versions;
    grouping by text matters because MAC repeats 30% of its tweets.
    """
    first = pd.DataFrame({"text": texts, "stratum": strata}).drop_duplicates("text")
    assignment: dict[str, str] = {}
    for _, group in first.groupby("stratum", sort=True):
        ordered = sorted(group["text"], key=_stable_rank)
        bounds, total = [], 0.0
        for fraction in fractions[:-1]:
            total += fraction
            bounds.append(round(total * len(ordered)))
        start = 0
        for split_name, end in zip(names, [*bounds, len(ordered)], strict=True):
            for text in ordered[start:end]:
                assignment[text] = split_name
            start = end
    return texts.map(assignment)


# -- per-corpus readers: raw files -> frame with text, label_raw, split (+ extras) -----------


def _read_afrisenti(folder: Path) -> pd.DataFrame:
    frames = []
    for split in SPLITS:
        frame = pd.read_csv(
            folder / f"data__ary__{split}.tsv", sep="\t", quoting=csv.QUOTE_NONE, dtype=str
        )
        frames.append(pd.DataFrame({"text": frame["tweet"], "label_raw": frame["label"]}))
        frames[-1]["split"] = split
    return pd.concat(frames, ignore_index=True)


def _strip_wrapping_quotes(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    return text


def _read_arsarcasm(folder: Path) -> pd.DataFrame:
    frames = []
    for filename, split in (
        ("ArSarcasm-v2__training_data.csv", "train"),
        ("ArSarcasm-v2__testing_data.csv", "test"),
    ):
        frame = pd.read_csv(folder / filename, dtype=str)
        frames.append(
            pd.DataFrame(
                {
                    "text": frame["tweet"].map(_strip_wrapping_quotes),
                    "label_raw": frame["sentiment"],
                    "split": split,
                    "dialect": frame["dialect"],
                    "sarcasm": frame["sarcasm"].str.upper().eq("TRUE"),
                }
            )
        )
    data = pd.concat(frames, ignore_index=True)
    # No official dev split: 10% of train becomes dev (stratified by sentiment x dialect).
    train = data["split"].eq("train")
    data.loc[train, "split"] = grouped_split(
        data.loc[train, "text"],
        data.loc[train, "label_raw"] + "|" + data.loc[train, "dialect"],
        (0.9, 0.1),
        ("train", "dev"),
    )
    data["language"] = data["dialect"].map(lambda d: "ar" if d == "msa" else f"ar-{d}")
    return data


def _read_umsab(folder: Path) -> pd.DataFrame:
    frames = []
    for language, code in (("arabic", "ar"), ("french", "fr"), ("english", "en")):
        for raw_split, split in (("train", "train"), ("val", "dev"), ("test", "test")):
            stem = f"data__sentiment__{language}__{raw_split}"
            texts = (folder / f"{stem}_text.txt").read_text(encoding="utf-8").split("\n")
            labels = (folder / f"{stem}_labels.txt").read_text(encoding="utf-8").split("\n")
            if texts and texts[-1] == "" and len(texts) == len(labels) + 1:
                texts = texts[:-1]
            if len(texts) != len(labels):
                raise CorpusError(f"{folder / stem}_text.txt and _labels.txt differ in length")
            frames.append(
                pd.DataFrame(
                    {
                        "text": texts,
                        "label_raw": [label.strip() for label in labels],
                        "split": split,
                        "language": code,
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


def _read_mac(folder: Path) -> pd.DataFrame:
    frame = pd.read_csv(folder / "MAC corpus.csv", dtype=str)
    frame = frame[frame["tweets"].notna() & frame["tweets"].str.strip().ne("")]
    variety = frame["class"].replace({"diatectal": "dialectal"})
    data = pd.DataFrame(
        {
            "text": frame["tweets"],
            "label_raw": frame["type"],
            "variety": variety,
            "language": variety.map({"standard": "ar", "dialectal": "ary"}),
        }
    ).reset_index(drop=True)
    data["split"] = grouped_split(
        data["text"], data["label_raw"] + "|" + data["variety"], (0.8, 0.1, 0.1), SPLITS
    )
    return data


def _read_astd(folder: Path) -> pd.DataFrame:
    tweets = pd.read_csv(
        folder / "data__Tweets.txt",
        sep="\t",
        header=None,
        names=["text", "label_raw"],
        quoting=csv.QUOTE_NONE,
        dtype=str,
        keep_default_na=False,
    )
    tweets["split"] = pd.NA
    for raw_split, split in (("train", "train"), ("validation", "dev"), ("test", "test")):
        lines = (folder / f"data__4class-unbalanced-{raw_split}.txt").read_text().split()
        tweets.loc[[int(i) for i in lines], "split"] = split
    tweets["language"] = "ar-egypt"
    return tweets


def _read_complaints(folder: Path) -> pd.DataFrame:
    frame = pd.read_csv(
        folder / "complaints-data.csv",
        header=None,
        names=["tweet_id", "text", "complaint", "domain"],
        dtype=str,
    )
    return pd.DataFrame(
        {
            "text": frame["text"],
            "label_raw": frame["complaint"],
            # No official split and evaluation-only terms: every row is test data.
            "split": "test",
            "language": "en",
            "complaint": frame["complaint"].eq("1"),
            "domain": frame["domain"],
        }
    )


_READERS: dict[str, Callable[[Path], pd.DataFrame]] = {
    "afrisenti_ary": _read_afrisenti,
    "arsarcasm_v2": _read_arsarcasm,
    "umsab_xlm_t": _read_umsab,
    "mac": _read_mac,
    "astd": _read_astd,
    "complaints_social_media": _read_complaints,
}


def load_corpus(
    name: str,
    data_dir: Path | str | None = None,
    *,
    include_unmapped: bool = False,
    verify: bool = True,
) -> pd.DataFrame:
    """One corpus as a frame with columns ``SCHEMA`` first, then ``label_raw`` and extras.

    Rows whose raw label has no 3-class meaning (mac ``mixed``, astd ``NEUTRAL``) are dropped
    unless ``include_unmapped`` (then their ``label`` is ``<NA>``).
    """
    if name not in _READERS:
        raise CorpusError(f"unknown corpus '{name}'; known: {', '.join(sorted(_READERS))}")
    root = _root(data_dir)
    folder = root / name
    if not folder.is_dir():
        raise CorpusError(
            f"corpus folder {folder} not found; set SAWT_DATA_DIR to the corpora root"
        )
    if verify:
        verify_checksums(name, root)
    data = _READERS[name](folder)
    data["text"] = data["text"].fillna("").astype(str)
    data["label"] = data["label_raw"].map(LABEL_MAPS[name])
    data["script"] = data["text"].map(dominant_script)
    if name == "afrisenti_ary":
        data["language"] = data["script"].map(lambda s: "ary-Latn" if s == "Latn" else "ary")
    data["source"] = name
    if not include_unmapped:
        data = data[data["label"].notna()]
    extras = [c for c in data.columns if c not in SCHEMA]
    return data[[*SCHEMA, *extras]].reset_index(drop=True)


def load_corpora(
    names: list[str] | None = None, data_dir: Path | str | None = None, **kwargs: bool
) -> pd.DataFrame:
    """Several corpora stacked in the common schema (extras kept, missing ones NA)."""
    chosen = names if names is not None else list(CORPORA)
    return pd.concat([load_corpus(n, data_dir, **kwargs) for n in chosen], ignore_index=True)


def trainable_corpora() -> list[str]:
    """Corpora whose terms allow training the shipped model."""
    return [name for name, info in CORPORA.items() if info.trainable]


SEED_TOPICS_DIR = REPO_ROOT / "datasets" / "seed_topics"


def load_seed_topics(directory: Path | str | None = None) -> pd.DataFrame:
    """Project-authored topic examples (``datasets/seed_topics/*.jsonl``), one row per line.

    Columns: ``text, language, topics, sentiment, split, source`` (+ ``id`` and any other field).
    Empty frame when no file exists yet.
    """
    folder = Path(directory) if directory is not None else SEED_TOPICS_DIR
    frames = []
    for path in sorted(folder.glob("*.jsonl")):
        frame = pd.read_json(path, lines=True, dtype={"id": str})
        frame["source"] = f"seed_topics/{path.name}"
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=["text", "language", "topics", "sentiment", "split", "source"])
    data = pd.concat(frames, ignore_index=True)
    data["script"] = data["text"].map(dominant_script)
    return data


def manifest_digest(name: str) -> str:
    """sha256 of a corpus's checksum manifest: one value that pins every file of it."""
    return hashlib.sha256((CHECKSUM_DIR / f"{name}.sha256").read_bytes()).hexdigest()


def provenance(name: str, splits: list[str], rows: int) -> dict[str, object]:
    """The ``training_data`` entry a model card and ``meta.json`` record for one corpus."""
    if name == "seed_topics":
        digest = hashlib.sha256()
        for path in sorted(SEED_TOPICS_DIR.glob("*.jsonl")):
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
        return {
            "corpus": name,
            "licence": "project-authored (datasets/seed_topics/README.md)",
            "trainable": True,
            "splits": splits,
            "rows": rows,
            "files_sha256": digest.hexdigest(),
        }
    info = CORPORA[name]
    return {
        "corpus": name,
        "licence": info.licence,
        "trainable": info.trainable,
        "splits": splits,
        "rows": rows,
        "manifest_sha256": manifest_digest(name),
        "citation": info.citation,
        "url": info.url,
    }
