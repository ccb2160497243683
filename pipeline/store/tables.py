"""The store's tables: their DDL, idempotent, and the retention they keep.

``brand_mentions`` has a row per mention and brand it names (:mod:`pipeline.store.rows`);
``mentions_by_time`` a row per mention in time order, for explorer pages over every brand;
``incident_alerts`` a row per crisis alert (:mod:`pipeline.store.incident_rows`);
``echoes_by_hour`` the copies of each author's mentions per brand and hour, for the leaders
(:mod:`pipeline.store.echoes`).
"""

from __future__ import annotations

from typing import Final

from pipeline.store.echoes import ECHOES, echo_statements
from pipeline.store.themes import THEME_MENTIONS, theme_statements

TABLE: Final = "brand_mentions"
BY_TIME: Final = "mentions_by_time"
INCIDENTS: Final = "incident_alerts"
# the event time each table's retention counts from (an incident's alerts expire together)
TTL_COLUMNS: Final = {TABLE: "created_at", BY_TIME: "created_at", INCIDENTS: "started_at",
                      THEME_MENTIONS: "created_at", ECHOES: "hour"}
# the columns a page of the explorer is found by (MentionFilter's), kept in time order
_BY_TIME_COLUMNS: Final = ("created_at, id, stored_at, brands, kinds, source, lang, sentiment, "
                           "duplicate_of, search_text")

# A mention read by key (a leader's recent mentions, an explorer page) costs the granule
# holding it of the ``mention`` JSON: ~1 MB granules (about a thousand rows) instead of
# 8,192 rows. Only a new table gets it; the search index keeps ~8,192 rows per filter.
_GRANULE_BYTES: Final = 1 << 20
_SEARCH_INDEX_GRANULES: Final = 8

_MENTION_COLUMNS: Final = f"""
brand LowCardinality(String),
id String,
created_at DateTime64(3, 'UTC'),
ingested_at DateTime64(3, 'UTC'),
stored_at DateTime64(3, 'UTC') DEFAULT now64(3),
brands Array(LowCardinality(String)),
kinds Array(LowCardinality(String)),
source LowCardinality(String),
author_id String,
author_handle String,
author_followers UInt64,
lang LowCardinality(String),
sentiment LowCardinality(String),
negative Float32,
neutral Float32,
positive Float32,
duplicate_of String,
original_author String,
duplicate_kind LowCardinality(String),
copy_count UInt32,
needs_reply LowCardinality(Nullable(String)),
likes UInt32,
reposts UInt32,
replies UInt32,
quotes UInt32,
url String CODEC(ZSTD(3)),
search_text String CODEC(ZSTD(3)),
terms Array(String) CODEC(ZSTD(3)),
mention String CODEC(ZSTD(3)),
INDEX search_tokens search_text TYPE tokenbf_v1(8192, 3, 0) GRANULARITY {_SEARCH_INDEX_GRANULES}"""

_BY_TIME_COLUMN_TYPES: Final = """
created_at DateTime64(3, 'UTC'),
id String,
stored_at DateTime64(3, 'UTC'),
brands Array(LowCardinality(String)),
kinds Array(LowCardinality(String)),
source LowCardinality(String),
lang LowCardinality(String),
sentiment LowCardinality(String),
duplicate_of String,
search_text String CODEC(ZSTD(3)),
INDEX search_tokens search_text TYPE tokenbf_v1(8192, 3, 0) GRANULARITY 1"""

_INCIDENT_COLUMNS: Final = """
brand LowCardinality(String),
incident_id String,
sequence UInt32,
idempotency_key String,
kind LowCardinality(String),
status LowCardinality(String),
severity LowCardinality(String),
started_at DateTime64(3, 'UTC'),
window_start DateTime64(3, 'UTC'),
window_end DateTime64(3, 'UTC'),
stored_at DateTime64(3, 'UTC') DEFAULT now64(3),
alert String CODEC(ZSTD(3))"""


def schema_statements(database: str, retention_days: int) -> list[str]:
    """The DDL of the store, idempotent (``IF NOT EXISTS``).

    One row per mention and brand it names (:mod:`pipeline.store.rows`). The desk's questions
    are per brand and period, so the key is ``(brand, created_at, id)``: a brand's period is
    one contiguous range of the table (a time-first key made every 30-day query read every
    granule, whatever the brand: ``benchmarks/README.md``).
    ``ReplacingMergeTree`` on that key keeps one row per mention and brand (a mention's event
    time never changes, so a redelivery has the same key; queries read ``FINAL``); monthly
    partitions let the TTL drop whole parts.
    """
    table = f"{database}.{TABLE}"
    return [
        f"CREATE DATABASE IF NOT EXISTS {database}",
        f"""CREATE TABLE IF NOT EXISTS {table} (
            {_MENTION_COLUMNS}
        )
        ENGINE = ReplacingMergeTree(stored_at)
        PARTITION BY toYYYYMM(created_at)
        ORDER BY (brand, created_at, id)
        TTL {ttl(retention_days)}
        SETTINGS index_granularity_bytes = {_GRANULE_BYTES}""",
        # a store made before copies named their original's author (a metadata change)
        f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS original_author String "
        "AFTER duplicate_of",
        # a store made before mentions said whether they need an answer (pipeline.stages.reply)
        f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS needs_reply "
        "LowCardinality(Nullable(String)) AFTER copy_count",
        # A row per mention, in time order, for explorer pages over every brand: in the
        # main table those span every brand's range and the engine reads them all, here it
        # reads from the newest granule and stops at the page. Fed by a materialized view
        # on every insert; a store made before it is filled once at start (ensure_schema).
        f"""CREATE TABLE IF NOT EXISTS {database}.{BY_TIME} (
            {_BY_TIME_COLUMN_TYPES}
        )
        ENGINE = ReplacingMergeTree(stored_at)
        PARTITION BY toYYYYMM(created_at)
        ORDER BY (created_at, id)
        TTL {ttl(retention_days)}""",
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.{BY_TIME}_feed "
        f"TO {database}.{BY_TIME} AS {by_time_select(table)}",
        # A row per crisis alert, keyed by its idempotency key (brand/incident/sequence): a
        # redelivered alert is one row. An incident's alerts share its start, so they share a
        # partition (where the engine replaces) and expire together.
        f"""CREATE TABLE IF NOT EXISTS {database}.{INCIDENTS} (
            {_INCIDENT_COLUMNS}
        )
        ENGINE = ReplacingMergeTree(stored_at)
        PARTITION BY toYYYYMM(started_at)
        ORDER BY (brand, incident_id, sequence)
        TTL {ttl(retention_days, TTL_COLUMNS[INCIDENTS])}""",
        # the themes job's assignments, centroids and language means (pipeline.store.themes)
        *theme_statements(database, ttl(retention_days)),
        # per brand, hour and original author, the copies the leaders count (built by settles)
        *echo_statements(database, ttl(retention_days, TTL_COLUMNS[ECHOES])),
    ]


def by_time_select(table: str) -> str:
    """The rows of ``mentions_by_time`` from the main table's: each mention's first brand's."""
    return (f"SELECT {_BY_TIME_COLUMNS} FROM {table} "
            "WHERE brand = if(empty(brands), '', brands[1])")


def ttl(retention_days: int, column: str = "created_at") -> str:
    """A table's TTL expression for a retention in days, counted from ``column``."""
    return f"toDateTime({column}) + toIntervalDay({int(retention_days)})"
