"""Emerging-theme discovery over complaints: BERTopic on stored embeddings, with stable ids.

Why this shape (measured; see ``bench/bench_discovery.py`` and ``training/discovery_eval.py``):

* **Language before topic.** multilingual-e5 embeddings group texts by language first (on the
  seed set, clusters of the raw vectors follow the language: NMI 0.66 with language, 0.10 with
  topic). Before clustering we subtract each language's mean vector, using the given language
  tags, else a guess from distinctive stop words and script (86% right on the seed set, and as
  good for clustering as the true tags: topic NMI 0.31 vs 0.27, raw vectors 0.00).
* **UMAP + HDBSCAN on a sample, nearest centroid for the rest.** PCA + HDBSCAN is fast but finds
  almost no density structure in real sentence embeddings (2-4 clusters, mostly outliers), and
  UMAP on 100,000 vectors does not fit in 3 minutes on 2 cores. UMAP (5 dims, cosine) and
  HDBSCAN run on at most ``max_cluster_samples`` documents; every other document joins the theme
  with the nearest centroid when it is within the theme's own spread (Tukey's lower fence of the
  members' cosine to the centroid), else it is an outlier. The same fence removes sampled points
  that UMAP pulled into a cluster from far away; ``predict`` uses the same rule. Documents
  outside the sample are therefore outliers less often than sampled ones (HDBSCAN noise).
* **BERTopic for the words.** Clusters are handed to BERTopic as given labels (its documented
  "manual" mode: ``BaseDimensionalityReduction`` + ``BaseCluster``), which computes c-TF-IDF
  keywords with a CountVectorizer that keeps Arabic words whole (same normalisation as the
  models see) and drops the union of the Arabic, Darija (both scripts), French and English
  stop-word lists in ``models/stopwords``.
* **Stable ids.** A theme's centroid is compared with earlier themes (active and archived) by
  cosine after subtracting a frozen reference vector (the first fit's mean embedding): e5
  vectors share a large common direction (mean pairwise cosine ~0.8), so raw cosines cannot tell
  themes apart. Hungarian assignment (``linear_sum_assignment``) keeps one-to-one matches at or
  above ``match_threshold`` (0.7: on two halves of the seed set, pairs with the same majority
  topic scored 0.78-0.95 and pairs with different ones at most 0.55); matched themes keep their
  ids, the rest get new ``th-NNNN`` ids that are never reused.
* **Taxonomy suggestion.** Cosine between a theme centroid and each taxonomy topic centroid,
  both centred on the mean of the topic centroids; below ``topic_threshold`` (0.4) the theme is
  "new" (seed themes with a clear majority topic scored 0.43-0.75, mixed or off-taxonomy themes,
  e.g. political tweets in afrisenti, 0.08-0.29).
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import BaseModel, Field
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from models.seed import seed_embeddings
from models.text.normalize import normalize

if TYPE_CHECKING:
    from models.encoder.encoder import BaseEncoder

__all__ = [
    "STOPWORD_LANGUAGES",
    "ArchivedTheme",
    "Granularity",
    "PeriodCount",
    "Theme",
    "ThemeDiscoverer",
    "ThemeSet",
    "guess_languages",
    "load_stop_words",
    "preprocess",
    "tokenize",
    "topic_centroids",
    "topic_centroids_from_seed",
]

Granularity = Literal["day", "week", "month"]
FloatArray = npt.NDArray[np.float32]

STOPWORD_DIR = Path(__file__).resolve().parent / "stopwords"
STOPWORD_LANGUAGES: tuple[str, ...] = ("ar", "ary", "ary-Latn", "fr", "en")
THEMESET_SCHEMA_VERSION = 1
NEW_TOPIC = "new"
_PERIOD_CODES: dict[str, str] = {"day": "D", "week": "W-SUN", "month": "M"}
# Tokens of 2+ word characters with at least one letter: keeps Arabic words whole and Arabizi
# words with digit letters (3la, 9adi, m7al), drops bare numbers (2024, 10).
_TOKEN = re.compile(r"(?u)\b(?=\w*[^\W\d_])\w{2,}\b")
_PLACEHOLDER = re.compile(r"\[(?:EMAIL|IBAN|CARD|PHONE|CIN)\]|\bURL\b|@USER")


# -- text handling ---------------------------------------------------------------------------
def preprocess(text: str) -> str:
    """The project's normalisation, lower-cased: one spelling per word for the keyword counts.

    Placeholders left by normalisation and redaction (``URL``, ``@USER``, ``[PHONE]``...) go:
    they are not words of the complaint, and ``phone`` or ``card`` must still count when typed.
    """
    return _PLACEHOLDER.sub(" ", normalize(text)).lower()


def tokenize(text: str) -> list[str]:
    """Whole words of an already preprocessed text."""
    return _TOKEN.findall(text)


def _read_list(path: Path) -> set[str]:
    words: set[str] = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        entry = line.split("#", 1)[0].strip()
        if entry:
            words.update(tokenize(preprocess(entry)))
    return words


@lru_cache(maxsize=8)
def load_stop_words(languages: tuple[str, ...] = STOPWORD_LANGUAGES) -> frozenset[str]:
    """Union of the stop-word lists, normalised like documents (English adds sklearn's list)."""
    words: set[str] = set()
    for language in languages:
        path = STOPWORD_DIR / f"{language}.txt"
        if not path.is_file():
            raise FileNotFoundError(
                f"no stop-word list {path}; known: {', '.join(STOPWORD_LANGUAGES)}"
            )
        words |= _read_list(path)
        if language == "en":
            words |= {w for word in ENGLISH_STOP_WORDS for w in tokenize(preprocess(word))}
    return frozenset(words)


@lru_cache(maxsize=1)
def _distinctive_stop_words() -> dict[str, frozenset[str]]:
    """Each list's words that no other list has: cheap, reliable language cues."""
    lists = {lang: load_stop_words((lang,)) for lang in STOPWORD_LANGUAGES}
    return {
        lang: frozenset(words - set().union(*(w for other, w in lists.items() if other != lang)))
        for lang, words in lists.items()
    }


def guess_languages(texts: Sequence[str]) -> list[str]:
    """A coarse language per text from distinctive stop words, else its script.

    Only used to remove language offsets before clustering when no language tags are given;
    the pipeline's language identifier is better and its tags should be passed when known.
    """
    from models.language import dominant_script

    cues = _distinctive_stop_words()
    guesses: list[str] = []
    for text in texts:
        tokens = tokenize(preprocess(text))
        hits = {lang: sum(t in words for t in tokens) for lang, words in cues.items()}
        best = max(hits, key=lambda lang: hits[lang])
        guesses.append(best if hits[best] > 0 else f"und-{dominant_script(text)}")
    return guesses


# -- serialisable results --------------------------------------------------------------------
class Theme(BaseModel):
    """One discovered theme, as dashboards and the next refit see it."""

    theme_id: str
    keywords: list[str]
    keyword_scores: list[float]
    size: int
    centroid: list[float] = Field(description="mean member embedding, L2-normalised")
    representatives: list[int] = Field(description="row indices in the fitted input")
    representative_ids: list[str]
    representative_texts: list[str]
    suggested_topic: str = Field(description="nearest taxonomy topic, or 'new'")
    topic_similarity: float | None = None
    is_new: bool = Field(description="True when this id was minted by this fit")
    match_similarity: float | None = Field(
        default=None, description="cosine (reference-centred) with the earlier theme it continues"
    )
    first_seen: datetime
    last_seen: datetime


class ArchivedTheme(BaseModel):
    """A theme seen before but absent from the latest fit: kept so that it can come back."""

    theme_id: str
    keywords: list[str]
    centroid: list[float]
    first_seen: datetime
    last_seen: datetime


class PeriodCount(BaseModel):
    """Documents of one theme (``None``: outliers) in one period starting at ``period``."""

    period: date
    theme_id: str | None
    count: int


class ThemeSet(BaseModel):
    """Everything a fit found, JSON-serialisable; pass it back as ``previous`` to keep ids."""

    schema_version: int = THEMESET_SCHEMA_VERSION
    created_at: datetime
    n_documents: int
    n_outliers: int
    next_id: int = Field(description="number of the next id to mint; ids are never reused")
    reference: list[float] = Field(description="frozen vector subtracted before matching")
    themes: list[Theme]
    archived: list[ArchivedTheme] = Field(default_factory=list)
    granularity: Granularity | None = None
    topics_over_time: list[PeriodCount] = Field(default_factory=list)
    params: dict[str, Any] = Field(default_factory=dict)

    def theme(self, theme_id: str) -> Theme:
        """The active theme with this id (KeyError when absent)."""
        for theme in self.themes:
            if theme.theme_id == theme_id:
                return theme
        raise KeyError(theme_id)

    def save(self, path: str | Path) -> None:
        """Write UTF-8 JSON (Arabic keywords stay readable)."""
        Path(path).write_text(
            json.dumps(self.model_dump(mode="json"), ensure_ascii=False, indent=1) + "\n",
            encoding="utf-8",
        )

    @classmethod
    def load(cls, path: str | Path) -> ThemeSet:
        """Read a file written by ``save``; refuses other schema versions."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        version = data.get("schema_version")
        if version != THEMESET_SCHEMA_VERSION:
            raise ValueError(
                f"{path} has ThemeSet schema_version {version}, this code reads "
                f"{THEMESET_SCHEMA_VERSION}; rerun discovery without --previous to start anew"
            )
        return cls.model_validate(data)


# -- numeric helpers -------------------------------------------------------------------------
def _unit_rows(matrix: npt.ArrayLike) -> FloatArray:
    array = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(array, axis=-1, keepdims=True)
    return (array / np.maximum(norms, 1e-12)).astype(np.float32)


def _centred_cosine(a: FloatArray, b: FloatArray, reference: FloatArray) -> FloatArray:
    """Cosine between rows of ``a`` and ``b`` after subtracting ``reference`` from both."""
    return _unit_rows(a - reference) @ _unit_rows(b - reference).T


def _lower_fence(similarities: npt.NDArray[np.float32]) -> float:
    """Tukey's lower fence of members' cosine to their centroid: below it, not a member."""
    q1, q3 = np.quantile(similarities, [0.25, 0.75])
    return float(q1 - 1.5 * (q3 - q1))


def _theme_number(theme_id: str) -> int:
    match = re.fullmatch(r"th-(\d+)", theme_id)
    return int(match.group(1)) if match else -1


def _parse_timestamps(timestamps: Sequence[Any], n: int) -> pd.DatetimeIndex:
    if len(timestamps) != n:
        raise ValueError(f"got {len(timestamps)} timestamps for {n} texts; give one per text")
    parsed = pd.DatetimeIndex(pd.to_datetime(list(timestamps), utc=True, errors="coerce"))
    bad = np.flatnonzero(parsed.isna())
    if bad.size:
        raise ValueError(
            f"{bad.size} timestamps could not be read (first at row {bad[0]}: "
            f"{timestamps[bad[0]]!r}); use ISO 8601 such as 2024-05-01T10:00:00Z"
        )
    return parsed


# -- the model -------------------------------------------------------------------------------
class ThemeDiscoverer:
    """Finds themes in complaints from their stored embeddings (never re-encodes).

    Parameters are stored as given; ``fit`` learns ``themes_`` (a ``ThemeSet``), ``labels_``
    (theme index per document, -1 for outliers), ``theme_ids_`` (theme id or None per document),
    ``topics_over_time_`` and the fitted ``bertopic_`` model (for its plots).
    """

    def __init__(
        self,
        *,
        min_theme_size: int | None = None,
        min_samples: int | None = None,
        max_cluster_samples: int = 20_000,
        n_components: int = 5,
        n_neighbors: int = 15,
        n_keywords: int = 10,
        n_representatives: int = 3,
        topic_centroids: Mapping[str, npt.ArrayLike] | None = None,
        topic_threshold: float = 0.4,
        match_threshold: float = 0.7,
        granularity: Granularity = "week",
        stop_word_languages: tuple[str, ...] = STOPWORD_LANGUAGES,
        extra_stop_words: Iterable[str] = (),
        max_archived: int = 500,
        random_state: int | None = 0,
    ) -> None:
        self.min_theme_size = min_theme_size
        self.min_samples = min_samples
        self.max_cluster_samples = max_cluster_samples
        self.n_components = n_components
        self.n_neighbors = n_neighbors
        self.n_keywords = n_keywords
        self.n_representatives = n_representatives
        self.topic_centroids = topic_centroids
        self.topic_threshold = topic_threshold
        self.match_threshold = match_threshold
        self.granularity = granularity
        self.stop_word_languages = stop_word_languages
        self.extra_stop_words = extra_stop_words
        self.max_archived = max_archived
        self.random_state = random_state

    # -- public API ---------------------------------------------------------------------------
    def fit(
        self,
        texts: Sequence[str],
        embeddings: npt.ArrayLike,
        timestamps: Sequence[Any] | None = None,
        previous: ThemeSet | None = None,
        *,
        ids: Sequence[str] | None = None,
        languages: Sequence[str | None] | None = None,
    ) -> Self:
        """Discover themes; ``previous`` (an earlier ``themes_``) keeps ids of persisting themes.

        ``embeddings`` may be float16 (as stored); ``languages`` (optional, one tag per text)
        improves clustering of mixed-language input.
        """
        if isinstance(texts, str):
            raise TypeError("fit() takes a sequence of texts, not one string")
        vectors = np.asarray(embeddings)
        n = len(texts)
        if vectors.ndim != 2 or vectors.shape[0] != n:
            raise ValueError(
                f"embeddings must be a (n_texts, dim) matrix; got shape {vectors.shape} "
                f"for {n} texts"
            )
        if ids is not None and len(ids) != n:
            raise ValueError(f"got {len(ids)} ids for {n} texts; give one per text")
        if languages is not None and len(languages) != n:
            raise ValueError(f"got {len(languages)} languages for {n} texts; give one per text")
        if self.granularity not in _PERIOD_CODES:
            raise ValueError(f"granularity must be one of {sorted(_PERIOD_CODES)}")
        raw = _unit_rows(vectors)
        if not np.isfinite(raw).all():
            raise ValueError("embeddings contain NaN or infinite values")
        times = _parse_timestamps(timestamps, n) if timestamps is not None else None
        doc_ids = [str(i) for i in ids] if ids is not None else [str(i) for i in range(n)]
        now = datetime.now(UTC)

        space = self._fit_space(raw, languages, texts)
        labels = self._cluster(space, n)
        self.labels_ = labels
        n_themes = int(labels.max()) + 1 if labels.size else 0

        keywords = self._keywords(list(texts), raw, labels, n_themes)
        reference = (
            np.asarray(previous.reference, dtype=np.float32)
            if previous is not None
            else raw.mean(axis=0)
            if n
            else np.zeros(raw.shape[1], dtype=np.float32)
        )
        if previous is not None and reference.shape[0] != raw.shape[1]:
            raise ValueError(
                f"previous themes were fitted on {reference.shape[0]}-dim embeddings, "
                f"these have {raw.shape[1]}; use the same encoder or start without previous"
            )
        centroids = (
            np.stack([raw[labels == k].mean(axis=0) for k in range(n_themes)])
            if n_themes
            else np.zeros((0, raw.shape[1]), dtype=np.float32)
        )
        centroids = _unit_rows(centroids)
        assigned, match_sims, next_id = self._assign_ids(centroids, reference, previous)
        suggestions = self._suggest_topics(centroids)

        themes: list[Theme] = []
        previous_by_id = self._previous_by_id(previous)
        for k in range(n_themes):
            members = np.flatnonzero(labels == k)
            reps = self._representatives(space, members, texts)
            if times is not None:
                first, last = times[members].min().to_pydatetime(), times[members].max()
                last = last.to_pydatetime()
            else:
                first = last = now
            earlier = previous_by_id.get(assigned[k])
            if earlier is not None:
                first = min(first, earlier.first_seen)
            topic, topic_sim = suggestions[k]
            words = keywords[k]
            themes.append(
                Theme(
                    theme_id=assigned[k],
                    keywords=[w for w, _ in words],
                    keyword_scores=[round(float(s), 6) for _, s in words],
                    size=int(members.size),
                    centroid=[round(float(x), 6) for x in centroids[k]],
                    representatives=[int(i) for i in reps],
                    representative_ids=[doc_ids[i] for i in reps],
                    representative_texts=[texts[i] for i in reps],
                    suggested_topic=topic,
                    topic_similarity=topic_sim,
                    is_new=earlier is None,
                    match_similarity=match_sims[k],
                    first_seen=first,
                    last_seen=last,
                )
            )
        self.theme_ids_: list[str | None] = [
            assigned[label] if label >= 0 else None for label in labels.tolist()
        ]
        over_time = self._over_time(times, self.theme_ids_)
        self.topics_over_time_ = pd.DataFrame(
            [c.model_dump() for c in over_time], columns=["period", "theme_id", "count"]
        )
        self.themes_ = ThemeSet(
            created_at=now,
            n_documents=n,
            n_outliers=int((labels < 0).sum()),
            next_id=next_id,
            reference=[round(float(x), 6) for x in reference],
            themes=themes,
            archived=self._archive(previous, {t.theme_id for t in themes}),
            granularity=self.granularity if times is not None else None,
            topics_over_time=over_time,
            params=self._params(n),
        )
        return self

    def predict(
        self,
        embeddings: npt.ArrayLike,
        texts: Sequence[str] | None = None,
        languages: Sequence[str | None] | None = None,
    ) -> list[str | None]:
        """Theme id (or None for outliers) of new documents, by the fit's nearest-centroid rule.

        Give ``languages`` when the fit had them, else ``texts`` (languages are then guessed
        as in ``fit``); with neither, only the overall mean is removed.
        """
        if not hasattr(self, "themes_"):
            raise RuntimeError("call fit() before predict()")
        vectors = _unit_rows(np.asarray(embeddings))
        if languages is None:
            languages = guess_languages(texts) if texts is not None else [None] * len(vectors)
        space = self._transform(vectors, languages)
        labels = self._nearest(space)
        ids = [theme.theme_id for theme in self.themes_.themes]
        return [ids[k] if k >= 0 else None for k in labels.tolist()]

    # -- clustering space ---------------------------------------------------------------------
    def _fit_space(
        self, raw: FloatArray, languages: Sequence[str | None] | None, texts: Sequence[str]
    ) -> FloatArray:
        """Learn and apply the language-removing map (see module docstring)."""
        self.mean_ = raw.mean(axis=0) if len(raw) else np.zeros(raw.shape[1], np.float32)
        self.language_means_: dict[str, FloatArray] = {}
        tags = list(languages) if languages is not None else guess_languages(texts)
        tag_array = np.array([str(t) if t else "und" for t in tags])
        for tag in np.unique(tag_array):
            rows = tag_array == tag
            # A mean from a handful of texts would erase their content, not their language.
            if rows.sum() >= max(20, 2 * self._sample_min_size(len(raw))):
                self.language_means_[str(tag)] = raw[rows].mean(axis=0)
        self.languages_given_ = languages is not None
        return self._transform(raw, tags)

    def _transform(self, raw: FloatArray, languages: Sequence[str | None]) -> FloatArray:
        means = (
            np.stack(
                [self.language_means_.get(str(t) if t else "und", self.mean_) for t in languages]
            )
            if len(raw)
            else self.mean_[None, :]
        )
        return _unit_rows(raw - means)

    def _sample_rows(self, n: int, size: int) -> npt.NDArray[np.intp]:
        rng = np.random.default_rng(self.random_state)
        return np.sort(rng.choice(n, size=size, replace=False)) if size < n else np.arange(n)

    def _min_theme_size(self, n: int) -> int:
        return self.min_theme_size if self.min_theme_size is not None else max(10, n // 500)

    def _sample_min_size(self, n: int) -> int:
        size = min(n, self.max_cluster_samples)
        return max(5, int(np.ceil(self._min_theme_size(n) * size / max(n, 1))))

    def _cluster(self, space: FloatArray, n: int) -> npt.NDArray[np.int64]:
        """UMAP + HDBSCAN on a sample, then nearest-centroid assignment of every other row."""
        self.cluster_centroids_ = np.zeros((0, space.shape[1]), dtype=np.float32)
        self.assign_thresholds_ = np.zeros(0, dtype=np.float32)
        labels = np.full(n, -1, dtype=np.int64)
        min_size = self._sample_min_size(n)
        sample = self._sample_rows(n, min(n, self.max_cluster_samples))
        if sample.size < max(2 * min_size, self.n_components + 2, 8):
            return labels
        import hdbscan
        import umap

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reducer = umap.UMAP(
                n_neighbors=min(self.n_neighbors, sample.size - 1),
                n_components=self.n_components,
                min_dist=0.0,
                metric="cosine",
                random_state=self.random_state,
                low_memory=True,
            )
            reduced = reducer.fit_transform(space[sample])
            clusterer = hdbscan.HDBSCAN(
                min_cluster_size=min_size,
                min_samples=self.min_samples if self.min_samples is not None else min(min_size, 10),
                metric="euclidean",
                core_dist_n_jobs=1,
            ).fit(reduced)
        sample_labels = np.asarray(clusterer.labels_, dtype=np.int64)
        n_clusters = int(sample_labels.max()) + 1
        if n_clusters == 0:
            return labels
        centroids = _unit_rows(
            np.stack([space[sample[sample_labels == k]].mean(axis=0) for k in range(n_clusters)])
        )
        thresholds = np.array(
            [
                _lower_fence(space[sample[sample_labels == k]] @ centroids[k])
                for k in range(n_clusters)
            ],
            dtype=np.float32,
        )
        self.cluster_centroids_, self.assign_thresholds_ = centroids, thresholds
        labels = self._nearest(space)
        # Sampled rows keep HDBSCAN's label unless far off their theme (UMAP pulls isolated
        # points into clusters); the others get the nearest theme under the same fence.
        fenced = sample_labels.copy()
        inside = fenced >= 0
        sims = np.einsum("ij,ij->i", space[sample[inside]], centroids[fenced[inside]])
        fenced[np.flatnonzero(inside)[sims < thresholds[fenced[inside]]]] = -1
        labels[sample] = fenced
        # Themes ordered by size, largest first (BERTopic's convention); ids come later.
        sizes = np.bincount(labels[labels >= 0], minlength=n_clusters)
        order = np.argsort(-sizes, kind="stable")
        keep = order[sizes[order] > 0]
        remap = np.full(n_clusters, -1, dtype=np.int64)
        remap[keep] = np.arange(keep.size)
        self.cluster_centroids_ = centroids[keep]
        self.assign_thresholds_ = thresholds[keep]
        return np.where(labels >= 0, remap[np.maximum(labels, 0)], -1)

    def _nearest(self, space: FloatArray, chunk: int = 8192) -> npt.NDArray[np.int64]:
        labels = np.full(len(space), -1, dtype=np.int64)
        if not self.cluster_centroids_.shape[0]:
            return labels
        for start in range(0, len(space), chunk):
            sims = space[start : start + chunk] @ self.cluster_centroids_.T
            best = sims.argmax(axis=1)
            ok = sims[np.arange(len(best)), best] >= self.assign_thresholds_[best]
            labels[start : start + chunk] = np.where(ok, best, -1)
        return labels

    # -- words and examples -------------------------------------------------------------------
    def _keywords(
        self,
        texts: list[str],
        raw: FloatArray,
        labels: npt.NDArray[np.int64],
        n_themes: int,
    ) -> list[list[tuple[str, float]]]:
        """c-TF-IDF keywords per theme from BERTopic, given our clusters as labels."""
        self.bertopic_: Any = None
        if n_themes == 0:
            return []
        from bertopic import BERTopic
        from bertopic.cluster import BaseCluster
        from bertopic.dimensionality import BaseDimensionalityReduction
        from bertopic.vectorizers import ClassTfidfTransformer
        from sklearn.feature_extraction.text import CountVectorizer

        stop_words = set(load_stop_words(tuple(self.stop_word_languages)))
        stop_words |= {w for word in self.extra_stop_words for w in tokenize(preprocess(word))}
        vectorizer = CountVectorizer(
            preprocessor=preprocess,
            tokenizer=tokenize,
            token_pattern=None,
            stop_words=sorted(stop_words),
        )
        # language != "english": BERTopic's English mode deletes every non-ASCII character
        # before counting words, which leaves nothing of Arabic and mangles French accents.
        model = BERTopic(
            language="multilingual",
            umap_model=BaseDimensionalityReduction(),
            hdbscan_model=BaseCluster(),
            vectorizer_model=vectorizer,
            ctfidf_model=ClassTfidfTransformer(reduce_frequent_words=True),
            top_n_words=self.n_keywords,
            calculate_probabilities=False,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                topics, _ = model.fit_transform(texts, embeddings=raw, y=labels)
            except ValueError as exc:  # empty vocabulary: only stop words and numbers
                if "empty vocabulary" not in str(exc):
                    raise
                return [[] for _ in range(n_themes)]
        self.bertopic_ = model
        # BERTopic renumbers topics by size; map each of our themes through one member.
        topic_of = np.asarray(topics)
        result: list[list[tuple[str, float]]] = []
        for k in range(n_themes):
            topic = int(topic_of[np.flatnonzero(labels == k)[0]])
            words = model.get_topic(topic) or []
            result.append([(w, float(s)) for w, s in words if w and s > 0][: self.n_keywords])
        return result

    def _representatives(
        self, space: FloatArray, members: npt.NDArray[np.intp], texts: Sequence[str]
    ) -> list[int]:
        """Members closest to the theme centroid, one per distinct text."""
        centroid = _unit_rows(space[members].mean(axis=0, keepdims=True))[0]
        order = members[np.argsort(-(space[members] @ centroid), kind="stable")]
        chosen: list[int] = []
        seen: set[str] = set()
        for index in order.tolist():
            key = preprocess(texts[index])
            if key in seen:
                continue
            seen.add(key)
            chosen.append(index)
            if len(chosen) == self.n_representatives:
                break
        return chosen

    # -- taxonomy and ids ---------------------------------------------------------------------
    def _suggest_topics(self, centroids: FloatArray) -> list[tuple[str, float | None]]:
        if not self.topic_centroids or not len(centroids):
            return [(NEW_TOPIC, None)] * len(centroids)
        names = list(self.topic_centroids)
        topics = _unit_rows(np.stack([np.asarray(self.topic_centroids[t]) for t in names]))
        if topics.shape[1] != centroids.shape[1]:
            raise ValueError(
                f"topic centroids have {topics.shape[1]} dims, embeddings {centroids.shape[1]}"
            )
        # Centre on the taxonomy's own mean: what is left is what tells topics apart.
        sims = _centred_cosine(centroids, topics, topics.mean(axis=0))
        out: list[tuple[str, float | None]] = []
        for row in sims:
            best = int(row.argmax())
            score = round(float(row[best]), 4)
            out.append((names[best] if score >= self.topic_threshold else NEW_TOPIC, score))
        return out

    @staticmethod
    def _previous_by_id(previous: ThemeSet | None) -> dict[str, Theme | ArchivedTheme]:
        if previous is None:
            return {}
        found: dict[str, Theme | ArchivedTheme] = {t.theme_id: t for t in previous.archived}
        found.update({t.theme_id: t for t in previous.themes})
        return found

    def _assign_ids(
        self, centroids: FloatArray, reference: FloatArray, previous: ThemeSet | None
    ) -> tuple[list[str], list[float | None], int]:
        """Reuse ids of matched earlier themes (Hungarian on centred cosine), mint the rest."""
        from scipy.optimize import linear_sum_assignment

        candidates = list(self._previous_by_id(previous).values())
        next_id = previous.next_id if previous is not None else 1
        if candidates:
            next_id = max(next_id, 1 + max(_theme_number(t.theme_id) for t in candidates))
        assigned: list[str | None] = [None] * len(centroids)
        sims: list[float | None] = [None] * len(centroids)
        if candidates and len(centroids):
            earlier = np.asarray([t.centroid for t in candidates], dtype=np.float32)
            similarity = _centred_cosine(centroids, earlier, reference)
            rows, cols = linear_sum_assignment(-similarity)
            for row, col in zip(rows.tolist(), cols.tolist(), strict=True):
                if similarity[row, col] >= self.match_threshold:
                    assigned[row] = candidates[col].theme_id
                    sims[row] = round(float(similarity[row, col]), 4)
        final: list[str] = []
        for theme_id in assigned:
            if theme_id is None:
                theme_id = f"th-{next_id:04d}"
                next_id += 1
            final.append(theme_id)
        return final, sims, next_id

    def _archive(self, previous: ThemeSet | None, active: set[str]) -> list[ArchivedTheme]:
        if previous is None:
            return []
        earlier: list[Theme | ArchivedTheme] = [*previous.themes, *previous.archived]
        gone = [
            ArchivedTheme(
                theme_id=t.theme_id,
                keywords=t.keywords,
                centroid=t.centroid,
                first_seen=t.first_seen,
                last_seen=t.last_seen,
            )
            for t in earlier
            if t.theme_id not in active
        ]
        gone.sort(key=lambda t: t.last_seen, reverse=True)
        return gone[: self.max_archived]

    # -- time ---------------------------------------------------------------------------------
    def _over_time(
        self, times: pd.DatetimeIndex | None, theme_ids: list[str | None]
    ) -> list[PeriodCount]:
        if times is None:
            return []
        periods = times.tz_convert(None).to_period(_PERIOD_CODES[self.granularity]).start_time
        frame = pd.DataFrame({"period": periods.date, "theme_id": theme_ids})
        counts = frame.groupby(["period", "theme_id"], dropna=False).size()
        return [
            PeriodCount(
                period=period,
                theme_id=None if pd.isna(theme) else str(theme),
                count=int(count),
            )
            for (period, theme), count in counts.items()
        ]

    def _params(self, n: int) -> dict[str, Any]:
        return {
            "min_theme_size": self._min_theme_size(n),
            "max_cluster_samples": self.max_cluster_samples,
            "n_components": self.n_components,
            "n_neighbors": self.n_neighbors,
            "match_threshold": self.match_threshold,
            "topic_threshold": self.topic_threshold,
            "language_means": sorted(self.language_means_),
            "languages_given": self.languages_given_,
            "random_state": self.random_state,
        }


# -- taxonomy centroids from the seed set ----------------------------------------------------
def topic_centroids(
    texts: Sequence[str], topics: Sequence[Sequence[str]], embeddings: npt.ArrayLike
) -> dict[str, FloatArray]:
    """Mean embedding (L2-normalised) of the examples of each topic (multi-label aware)."""
    vectors = _unit_rows(np.asarray(embeddings))
    members: dict[str, list[int]] = {}
    for i, labels in enumerate(topics):
        for label in labels:
            members.setdefault(label, []).append(i)
    return {t: _unit_rows(vectors[rows].mean(axis=0)) for t, rows in sorted(members.items())}


def topic_centroids_from_seed(
    encoder: BaseEncoder, seed_dir: str | Path, cache_dir: str | Path | None = None
) -> dict[str, FloatArray]:
    """Taxonomy centroids from ``seed_dir/*.jsonl`` (split=train only); embeddings cached by
    content (seed files + encoder), so a changed seed set or encoder is encoded again."""
    rows, embeddings = seed_embeddings(
        encoder.encode,
        encoder_key=Path(encoder.model_dir).name,
        cache_dir=Path(cache_dir) if cache_dir is not None else None,
        seed_dir=Path(seed_dir),
    )
    train = [(r, e) for r, e in zip(rows, embeddings, strict=True) if r.get("topics")]
    if not train:
        raise ValueError(f"no split=train rows with topics in {seed_dir}")
    return topic_centroids(
        [str(r["text"]) for r, _ in train], [r["topics"] for r, _ in train], [e for _, e in train]
    )
