"""The themes' tables and their SQL: which theme each mention joined, and the themes' centroids.

``theme_mentions`` has a row per mention and brand once the themes job has seen it: its theme
(0 while no theme claims it), its similarity to that theme's centroid, its language and
sentiment (copied so a period's mix needs no join) and, while no theme claims it, its
embedding (so the pool is clustered again later without running the encoder again; an
assigned mention's is dropped, its theme's centroid holds what is needed).
``theme_centroids`` has a row per theme version (the newest wins): centroid, size, first seen;
``theme_languages`` each language's running mean embedding (what centring takes away).

The job (:mod:`pipeline.themes_job`) reads the mentions not yet in ``theme_mentions`` and
writes both tables; ``GET /api/themes`` reads them (:class:`ThemesQuery`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from pipeline.store.queries import (
    BadParameter,
    BoundQuery,
    Period,
    RequestParams,
)
from pipeline.store.sql import clickhouse_time

THEME_MENTIONS: Final = "theme_mentions"
THEME_CENTROIDS: Final = "theme_centroids"
THEME_LANGUAGES: Final = "theme_languages"
MAX_THEMES: Final = 50
SAMPLES_PER_THEME: Final = 3
LABEL_CANDIDATES: Final = 40
_DT: Final = "DateTime64(3, 'UTC')"


def theme_statements(database: str, ttl_expression: str) -> list[str]:
    """The DDL of the themes' tables, idempotent (``IF NOT EXISTS``)."""
    return [
        f"""CREATE TABLE IF NOT EXISTS {database}.{THEME_MENTIONS} (
            brand LowCardinality(String),
            id String,
            created_at DateTime64(3, 'UTC'),
            stored_at DateTime64(3, 'UTC') DEFAULT now64(3),
            theme_id UInt32,
            similarity Float32,
            lang LowCardinality(String),
            sentiment LowCardinality(String),
            embedding Array(Float32) CODEC(ZSTD(3))
        )
        ENGINE = ReplacingMergeTree(stored_at)
        PARTITION BY toYYYYMM(created_at)
        ORDER BY (brand, created_at, id)
        TTL {ttl_expression}""",
        f"""CREATE TABLE IF NOT EXISTS {database}.{THEME_CENTROIDS} (
            theme_id UInt32,
            first_seen DateTime64(3, 'UTC'),
            updated_at DateTime64(3, 'UTC') DEFAULT now64(3),
            size UInt64,
            centroid Array(Float32)
        )
        ENGINE = ReplacingMergeTree(updated_at)
        ORDER BY theme_id""",
        f"""CREATE TABLE IF NOT EXISTS {database}.{THEME_LANGUAGES} (
            lang LowCardinality(String),
            updated_at DateTime64(3, 'UTC') DEFAULT now64(3),
            size UInt64,
            mean Array(Float32)
        )
        ENGINE = ReplacingMergeTree(updated_at)
        ORDER BY lang""",
    ]


@dataclass(frozen=True, slots=True)
class ThemesQuery:
    """A brand's themes in a period, against the period before."""

    brand: str
    period: Period
    limit: int = 20


def parse_themes_query(params: Mapping[str, str], now: datetime) -> ThemesQuery:
    """``GET /api/themes``: one ``brand``, ``since``/``until`` (default the last 24 h), ``limit``.

    ``limit`` is 1 to 50 themes (default 20).

    >>> from datetime import UTC
    >>> parse_themes_query({"brand": "telvia", "since": "2026-12-01"},
    ...                    datetime(2026, 12, 6, tzinfo=UTC)).period.since.isoformat()
    '2026-12-01T00:00:00+00:00'
    """
    reader = RequestParams(params, ("brand", "since", "until", "tz", "limit"))
    brand = params.get("brand", "").strip()
    if not brand:
        raise BadParameter("brand", "give one brand id (a listening query's id)")
    period = reader.period(now, reader.zone())
    assert period is not None
    return ThemesQuery(brand, period, reader.integer("limit", 20, 1, MAX_THEMES))


class ThemeSql:
    """The SQL of the themes job and of ``GET /api/themes`` over one database."""

    def __init__(self, database: str, mentions_table: str) -> None:
        self.mentions = mentions_table
        self.assigned = f"{database}.{THEME_MENTIONS}"
        self.centroids = f"{database}.{THEME_CENTROIDS}"
        self.language_means = f"{database}.{THEME_LANGUAGES}"

    def unseen(self, period: Period, limit: int) -> BoundQuery:
        """Stored mentions of the period the job has not seen, oldest first, with their text."""
        return BoundQuery(
            f"SELECT brand, id, created_at, lang, sentiment, "
            f"JSONExtractString(mention, 'text') AS text FROM {self.mentions} FINAL "
            f"WHERE created_at >= {{since:{_DT}}} AND created_at < {{until:{_DT}}} "
            f"AND (brand, id) NOT IN (SELECT brand, id FROM {self.assigned} "
            f"WHERE created_at >= {{since:{_DT}}} AND created_at < {{until:{_DT}}}) "
            f"ORDER BY created_at, id LIMIT {int(limit)}",
            _period_parameters(period))

    def pool(self, period: Period, limit: int) -> BoundQuery:
        """The newest unclaimed mentions of the period, with their embeddings."""
        return BoundQuery(
            f"SELECT brand, id, created_at, lang, sentiment, embedding "
            f"FROM {self.assigned} FINAL WHERE theme_id = 0 "
            f"AND created_at >= {{since:{_DT}}} AND created_at < {{until:{_DT}}} "
            f"ORDER BY created_at DESC LIMIT {int(limit)}",
            _period_parameters(period))

    def themes(self) -> BoundQuery:
        """Every theme's newest centroid."""
        return BoundQuery(f"SELECT theme_id, centroid, size, first_seen "
                          f"FROM {self.centroids} FINAL ORDER BY theme_id")

    def means(self) -> BoundQuery:
        """Every language's newest mean embedding and how many mentions it averages."""
        return BoundQuery(f"SELECT lang, mean, size FROM {self.language_means} FINAL")

    def last_run(self) -> BoundQuery:
        """When the job last moved a theme (``None`` rows when it never ran)."""
        return BoundQuery(f"SELECT max(updated_at), count() FROM {self.centroids} FINAL")

    def counts(self, query: ThemesQuery) -> BoundQuery:
        """Per theme: mentions now and before, and the sentiment mix now."""
        return BoundQuery(
            "SELECT theme_id, countIf(created_at >= {since:" + _DT + "}) AS current, "
            "countIf(created_at < {since:" + _DT + "}) AS previous, "
            "countIf(created_at >= {since:" + _DT + "} AND sentiment = 'negative'), "
            "countIf(created_at >= {since:" + _DT + "} AND sentiment = 'neutral'), "
            "countIf(created_at >= {since:" + _DT + "} AND sentiment = 'positive') "
            f"FROM {self.assigned} FINAL WHERE brand = {{brand:String}} "
            f"AND created_at >= {{before:{_DT}}} AND created_at < {{until:{_DT}}} "
            "GROUP BY theme_id",
            _brand_parameters(query))

    def languages(self, query: ThemesQuery) -> BoundQuery:
        """Per theme and language: the period's mentions."""
        return BoundQuery(
            f"SELECT theme_id, lang, count() FROM {self.assigned} FINAL "
            f"WHERE brand = {{brand:String}} AND theme_id != 0 "
            f"AND created_at >= {{since:{_DT}}} AND created_at < {{until:{_DT}}} "
            "GROUP BY theme_id, lang",
            _brand_parameters(query))

    def terms(self, query: ThemesQuery) -> BoundQuery:
        """Per theme: the period's most frequent terms (candidates for its label)."""
        return BoundQuery(
            f"SELECT theme_id, term, count() AS mentions FROM {self._joined()} "
            "ARRAY JOIN terms AS term WHERE theme_id != 0 GROUP BY theme_id, term "
            f"ORDER BY mentions DESC, term LIMIT {LABEL_CANDIDATES} BY theme_id",
            _brand_parameters(query))

    def samples(self, query: ThemesQuery) -> BoundQuery:
        """Per theme: distinct texts nearest its centroid, originals before copies."""
        nearest = (f"SELECT theme_id, id, text, lang, sentiment, created_at, similarity, "
                   f"duplicate_of != '' AS copy FROM {self._joined()} WHERE theme_id != 0 "
                   "ORDER BY copy, similarity DESC, id LIMIT 1 BY theme_id, text")
        return BoundQuery(
            f"SELECT theme_id, id, text, lang, sentiment, created_at FROM ({nearest}) "
            f"ORDER BY copy, similarity DESC, id LIMIT {SAMPLES_PER_THEME} BY theme_id",
            _brand_parameters(query))

    def _joined(self) -> str:
        # the period's assignments of the brand joined to its mentions' terms and text
        return (
            f"(SELECT t.theme_id AS theme_id, t.similarity AS similarity, t.id AS id, "
            f"t.lang AS lang, t.sentiment AS sentiment, t.created_at AS created_at, "
            f"m.terms AS terms, m.duplicate_of AS duplicate_of, "
            f"JSONExtractString(m.mention, 'text') AS text "
            f"FROM (SELECT * FROM {self.assigned} FINAL WHERE brand = {{brand:String}} "
            f"AND created_at >= {{since:{_DT}}} AND created_at < {{until:{_DT}}}) AS t "
            f"INNER JOIN (SELECT id, terms, duplicate_of, mention FROM {self.mentions} FINAL "
            f"WHERE brand = {{brand:String}} AND created_at >= {{since:{_DT}}} "
            f"AND created_at < {{until:{_DT}}}) AS m ON t.id = m.id)")


def _period_parameters(period: Period) -> dict[str, str]:
    return {"since": clickhouse_time(period.since), "until": clickhouse_time(period.until)}


def _brand_parameters(query: ThemesQuery) -> dict[str, str]:
    return {"brand": query.brand, "before": clickhouse_time(query.period.previous().since),
            **_period_parameters(query.period)}
