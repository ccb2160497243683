"""The theme book: centroids of the known themes, incremental assignment, new themes.

A new hour of mentions never recomputes the month: each mention's embedding is compared with
the centroids (one matrix product), joins the nearest theme when it is similar enough, and
moves that centroid by a running mean. Mentions no theme claims wait in a pool; when the pool
holds a dense group, that group becomes a new theme (agglomerative clustering, average
linkage on cosine distance, from scikit-learn: it needs no number of clusters, only a
distance, and leaves scattered mentions alone instead of forcing them into a cluster as
k-means would).

>>> import numpy as np
>>> book = ThemeBook(ThemeSettings(assign_similarity=0.8, spawn_similarity=0.8, min_size=2))
>>> pool = np.array([[1, 0], [0.99, 0.14], [0, 1]], dtype=np.float32)
>>> book.spawn(pool).tolist()
[1, 1, 0]
>>> book.assign(np.array([[0.98, 0.2]], dtype=np.float32))[0].tolist()
[1]
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

UNASSIGNED = 0


@dataclass(frozen=True, slots=True)
class ThemeSettings:
    """How close a mention must be to join a theme, and what makes a new theme.

    ``assign_similarity``: least cosine to a centroid to join its theme;
    ``spawn_similarity``: least average cosine inside a group of unclaimed mentions to make it
    a theme; ``min_size``: fewest mentions a new theme starts with. Cosines are between
    embeddings centred by language (:func:`center_by_language`), which spreads them far wider
    than raw e5 cosines. Chosen on the tuning half of the labelled themes set
    (``benchmarks/themes.py``; figures in ``benchmarks/README.md``).
    """

    assign_similarity: float = 0.075
    spawn_similarity: float = 0.075
    min_size: int = 2


@dataclass(slots=True)
class Theme:
    """One theme: its id, unit centroid and how many mentions shaped it."""

    theme_id: int
    centroid: np.ndarray
    size: int


@dataclass(slots=True)
class ThemeBook:
    """Every known theme's centroid; assigns mentions and spawns themes from the unclaimed."""

    settings: ThemeSettings = field(default_factory=ThemeSettings)
    themes: dict[int, Theme] = field(default_factory=dict)

    @classmethod
    def of(cls, themes: Iterable[Theme], settings: ThemeSettings) -> ThemeBook:
        """A book holding ``themes`` (as the store keeps them)."""
        return cls(settings, {theme.theme_id: theme for theme in themes})

    @property
    def next_id(self) -> int:
        """The id the next new theme gets (ids start at 1; 0 means unassigned)."""
        return max(self.themes, default=UNASSIGNED) + 1

    def assign(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each row's nearest theme id (0 when none is similar enough) and that similarity."""
        count = len(vectors)
        if not self.themes or count == 0:
            return np.zeros(count, dtype=np.int64), np.zeros(count, dtype=np.float32)
        ids = np.fromiter(self.themes, dtype=np.int64)
        centroids = np.stack([self.themes[int(i)].centroid for i in ids])
        similarity = vectors @ centroids.T
        nearest = similarity.argmax(axis=1)
        best = similarity[np.arange(count), nearest].astype(np.float32)
        chosen = np.where(best >= self.settings.assign_similarity, ids[nearest], UNASSIGNED)
        return chosen.astype(np.int64), best

    def absorb(self, vectors: np.ndarray, theme_ids: np.ndarray) -> None:
        """Move each theme's centroid to the running mean of its old and new members."""
        for theme_id in np.unique(theme_ids):
            if theme_id == UNASSIGNED:
                continue
            members = vectors[theme_ids == theme_id]
            theme = self.themes[int(theme_id)]
            total = theme.centroid * theme.size + members.sum(axis=0)
            theme.size += len(members)
            theme.centroid = _unit(total)

    def spawn(self, pool: np.ndarray) -> np.ndarray:
        """New themes from a pool of unclaimed mentions; each row's new theme id, or 0.

        Groups smaller than ``min_size`` stay unassigned (in the pool for a later run).
        """
        labels = group_by_similarity(pool, self.settings.spawn_similarity)
        result = np.zeros(len(pool), dtype=np.int64)
        for group in np.unique(labels):
            members = labels == group
            if members.sum() < self.settings.min_size:
                continue
            theme_id = self.next_id
            self.themes[theme_id] = Theme(theme_id, _unit(pool[members].sum(axis=0)),
                                          int(members.sum()))
            result[members] = theme_id
        return result


def group_by_similarity(vectors: np.ndarray, similarity: float) -> np.ndarray:
    """Agglomerative groups (average linkage, cosine) whose members average ``similarity``."""
    from sklearn.cluster import AgglomerativeClustering

    if len(vectors) < 2:
        return np.zeros(len(vectors), dtype=np.int64)
    clustering = AgglomerativeClustering(n_clusters=None, metric="cosine", linkage="average",
                                         distance_threshold=1.0 - similarity)
    return clustering.fit_predict(vectors).astype(np.int64)


EVERY_LANGUAGE = "*"


@dataclass(slots=True)
class LanguageMeans:
    """Each language's running mean embedding (and all languages' as ``"*"``).

    A language seen fewer than ``min_mentions`` times is centred by the mean of all languages
    instead: a mean of a handful of mentions would take most of their meaning away with it.
    """

    means: dict[str, np.ndarray] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    min_mentions: int = 50

    def update(self, vectors: np.ndarray, languages: list[str]) -> None:
        """Fold raw embeddings into their languages' means and the overall one."""
        if not len(vectors):
            return
        groups = {**language_means(vectors, languages),
                  EVERY_LANGUAGE: vectors.mean(axis=0).astype(np.float32)}
        for lang, mean in groups.items():
            count = len(languages) if lang == EVERY_LANGUAGE else languages.count(lang)
            before = self.counts.get(lang, 0)
            old = self.means.get(lang, np.zeros_like(mean))
            self.means[lang] = ((old * before + mean * count) / (before + count)).astype(
                np.float32)
            self.counts[lang] = before + count

    def center(self, vectors: np.ndarray, languages: list[str]) -> np.ndarray:
        """Raw embeddings centred by their language's mean (or the overall one)."""
        overall = self.means.get(EVERY_LANGUAGE)
        if overall is None or self.counts.get(EVERY_LANGUAGE, 0) < self.min_mentions:
            return vectors
        chosen = {lang: (self.means[lang] if self.counts.get(lang, 0) >= self.min_mentions
                         else overall) for lang in set(languages)}
        return center_by_language(vectors, languages, chosen)


def center_by_language(vectors: np.ndarray, languages: list[str],
                       means: dict[str, np.ndarray]) -> np.ndarray:
    """Rows minus their language's mean embedding, made unit again.

    A multilingual encoder puts every text of one language a little apart from the others;
    taking that shared offset away lets a Spanish and an English mention on one topic meet.
    Languages without a mean are left as they are.
    """
    centered = vectors.copy()
    for lang, mean in means.items():
        rows = np.fromiter((language == lang for language in languages), dtype=bool,
                           count=len(languages))
        centered[rows] -= mean
    norms = np.linalg.norm(centered, axis=1, keepdims=True)
    return (centered / np.maximum(norms, 1e-12)).astype(np.float32)


def language_means(vectors: np.ndarray, languages: list[str]) -> dict[str, np.ndarray]:
    """Each language's mean embedding over ``vectors``."""
    means: dict[str, np.ndarray] = {}
    for lang in sorted(set(languages)):
        rows = np.array([language == lang for language in languages])
        means[lang] = vectors[rows].mean(axis=0).astype(np.float32)
    return means


def _unit(vector: np.ndarray) -> np.ndarray:
    return (vector / max(float(np.linalg.norm(vector)), 1e-12)).astype(np.float32)
