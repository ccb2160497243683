"""The themes job: new stored mentions into themes, off the stream, a batch at a time.

Each run reads the stored mentions it has not seen yet (the last ``lookback``), embeds their
distinct texts once (:func:`pipeline.embeddings.mean_pooled_embeddings`), assigns each to the
nearest theme's centroid (:class:`~pipeline.stages.themes.book.ThemeBook`) and writes the
assignments and the moved centroids to the store. Mentions no theme claims wait, with their
embeddings, in ``theme_mentions`` (theme 0); each run clusters that pool, and the dense
groups become new themes. So an hour's run costs that hour's mentions, never the month's.

It runs in the process that owns the store: ``mentions themes`` (once, e.g. from a
scheduler) or, every ``PIPELINE_THEMES_INTERVAL_S``, the thread :class:`ThemesScheduler`
next to the desk. The sentiment path never waits on it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import orjson

from pipeline.config import Settings
from pipeline.stages.themes.book import (
    UNASSIGNED,
    LanguageMeans,
    Theme,
    ThemeBook,
    ThemeSettings,
)
from pipeline.store.client import ListeningStore, StoreRejected, StoreUnavailable, utc_now
from pipeline.store.queries import Period
from pipeline.store.sql import clickhouse_time
from pipeline.store.themes import THEME_CENTROIDS, THEME_LANGUAGES, THEME_MENTIONS, ThemeSql

log = logging.getLogger(__name__)

Embed = Callable[[Sequence[str]], np.ndarray]


@dataclass(frozen=True, slots=True)
class JobSettings:
    """How far back a run looks, how much it takes, and the theme thresholds."""

    lookback: timedelta = timedelta(days=2)
    max_mentions: int = 20_000
    pool_size: int = 4_000
    themes: ThemeSettings = field(default_factory=ThemeSettings)


@dataclass(frozen=True, slots=True)
class RunReport:
    """What one run did."""

    mentions: int
    assigned: int
    new_themes: int
    spawned: int
    themes: int


def default_embed(texts: Sequence[str]) -> np.ndarray:
    """The bundled encoder's embeddings (imported late: torch loads only when needed)."""
    from pipeline.embeddings import mean_pooled_embeddings

    return mean_pooled_embeddings(texts)


class ThemesJob:
    """One store's themes job; :meth:`run` processes what arrived since the last run."""

    def __init__(self, store: ListeningStore, *, embed: Embed = default_embed,
                 settings: JobSettings | None = None) -> None:
        self.store = store
        self.embed = embed
        self.settings = settings or JobSettings()
        self.sql = ThemeSql(store.location.database, store.table)
        self.database = store.location.database

    def load_book(self) -> tuple[ThemeBook, dict[int, datetime]]:
        """The themes as stored, and when each was first seen."""
        rows = self.store.query(self.sql.themes())
        book = ThemeBook.of((Theme(int(theme_id), np.asarray(centroid, dtype=np.float32),
                                   int(size)) for theme_id, centroid, size, _ in rows),
                            self.settings.themes)
        return book, {int(theme_id): first_seen for theme_id, _, _, first_seen in rows}

    def load_means(self) -> LanguageMeans:
        """The languages' mean embeddings as stored."""
        means = LanguageMeans()
        for lang, mean, size in self.store.query(self.sql.means()):
            means.means[lang] = np.asarray(mean, dtype=np.float32)
            means.counts[lang] = int(size)
        return means

    def run(self, now: datetime | None = None) -> RunReport:
        """Assign the unseen mentions of the lookback, spawn themes from the pool, store both."""
        now = now or utc_now()
        period = Period(now - self.settings.lookback, now)
        rows = self.store.query(self.sql.unseen(period, self.settings.max_mentions))
        book, first_seen = self.load_book()
        known = set(book.themes)
        languages = [row[3] or "" for row in rows]
        raw = self._embed_distinct([row[5] for row in rows])
        means = self.load_means()
        if rows:
            means.update(raw, languages)
            self._insert_means(means, set(languages))
        vectors = means.center(raw, languages)
        theme_ids, similarity = book.assign(vectors)
        book.absorb(vectors, theme_ids)
        self._insert_assignments(rows, theme_ids, similarity, vectors)
        spawned = self._spawn(book, period)
        new = set(book.themes) - known
        self._insert_centroids(book, new | {int(i) for i in np.unique(theme_ids) if i},
                               first_seen, now)
        report = RunReport(len(rows), int((theme_ids != UNASSIGNED).sum()), len(new), spawned,
                           len(book.themes))
        log.info("themes: %s", report)
        return report

    def _insert_means(self, means: LanguageMeans, languages: set[str]) -> None:
        lines = [orjson.dumps({"lang": lang, "size": means.counts[lang], "mean": means.means[lang],
                               "updated_at": clickhouse_time(utc_now())},
                              option=orjson.OPT_SERIALIZE_NUMPY) for lang in sorted(languages)]
        self.store.insert(b"\n".join(lines), THEME_LANGUAGES)

    def _embed_distinct(self, texts: list[str]) -> np.ndarray:
        # copies share their original's text: each distinct text is embedded once
        distinct = list(dict.fromkeys(texts))
        if not distinct:
            return np.zeros((0, 1), dtype=np.float32)
        vectors = self.embed(distinct)
        index = {text: row for row, text in enumerate(distinct)}
        return vectors[[index[text] for text in texts]]

    def _spawn(self, book: ThemeBook, period: Period) -> int:
        """Cluster the unclaimed pool; re-store the mentions of new themes; how many."""
        pool = self.store.query(self.sql.pool(period, self.settings.pool_size))
        if len(pool) < self.settings.themes.min_size:
            return 0
        vectors = np.asarray([row[5] for row in pool], dtype=np.float32)
        theme_ids = book.spawn(vectors)
        claimed = theme_ids != UNASSIGNED
        if not claimed.any():
            return 0
        similarity = np.einsum("ij,ij->i", vectors[claimed], np.stack(
            [book.themes[int(theme_id)].centroid for theme_id in theme_ids[claimed]]))
        rows = [(*row[:5], "") for row, keep in zip(pool, claimed, strict=True) if keep]
        self._insert_assignments(rows, theme_ids[claimed], similarity, vectors[claimed])
        return int(claimed.sum())

    def _insert_assignments(self, rows: Sequence[Sequence[Any]], theme_ids: np.ndarray,
                            similarity: np.ndarray, vectors: np.ndarray) -> None:
        lines = [orjson.dumps({
            "brand": brand, "id": mention_id, "created_at": clickhouse_time(created_at),
            "theme_id": int(theme_id), "similarity": round(float(score), 5),
            "lang": lang or "", "sentiment": sentiment or "",
            # only the unclaimed need their vector again (the pool); a theme keeps a centroid
            "embedding": vector if theme_id == UNASSIGNED else [],
            "stored_at": clickhouse_time(utc_now()),
        }, option=orjson.OPT_SERIALIZE_NUMPY) for (brand, mention_id, created_at, lang, sentiment,
                                                     _), theme_id, score, vector
            in zip(rows, theme_ids, similarity, vectors, strict=True)]
        self.store.insert(b"\n".join(lines), THEME_MENTIONS)

    def _insert_centroids(self, book: ThemeBook, changed: set[int],
                          first_seen: dict[int, datetime], now: datetime) -> None:
        # a theme's first_seen never moves; a new theme's is this run
        lines = [orjson.dumps({
            "theme_id": theme_id, "first_seen": clickhouse_time(first_seen.get(theme_id, now)),
            "updated_at": clickhouse_time(utc_now()), "size": book.themes[theme_id].size,
            "centroid": book.themes[theme_id].centroid,
        }, option=orjson.OPT_SERIALIZE_NUMPY) for theme_id in sorted(changed)]
        self.store.insert(b"\n".join(lines), THEME_CENTROIDS)


def themes_job(store: ListeningStore, settings: Settings) -> ThemesJob:
    """The job over ``store`` with the configured encoder."""
    if settings.themes_model is None:
        return ThemesJob(store)
    model_dir = settings.themes_model

    def embed(texts: Sequence[str]) -> np.ndarray:
        from pipeline.embeddings import mean_pooled_embeddings

        return mean_pooled_embeddings(texts, model_dir=model_dir)

    return ThemesJob(store, embed=embed)


def start_scheduler(store: ListeningStore, settings: Settings) -> ThemesScheduler | None:
    """The themes job every ``themes_interval_s`` in a thread (``None`` when it is 0)."""
    if not settings.themes_interval_s:
        return None
    scheduler = ThemesScheduler(themes_job(store, settings), settings.themes_interval_s)
    scheduler.start()
    return scheduler


class ThemesScheduler:
    """Runs the themes job every ``interval_s`` in a daemon thread, until :meth:`stop`."""

    def __init__(self, job: ThemesJob, interval_s: float) -> None:
        self.job = job
        self.interval_s = interval_s
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="themes", daemon=True)

    def start(self) -> None:
        """Start the thread (the first run comes after one interval)."""
        self.thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Ask the loop to end and wait a little for a run in progress."""
        self.stopping.set()
        if self.thread.is_alive():
            self.thread.join(timeout_s)

    def _loop(self) -> None:
        while not self.stopping.wait(self.interval_s):
            try:
                self.job.run()
            except (StoreUnavailable, StoreRejected) as error:
                log.warning("themes: the store did not answer: %s", error)
            except Exception:
                log.exception("themes: the run failed; the next one tries again")
