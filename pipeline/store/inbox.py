"""The listening store's side of the inbox: the stored mentions that need a reply.

An inbox item is a mention whose ``needs_reply`` is set (its reason); the store answers them by
brand, reason, language and period, each mention once, as the pipeline emitted it with
``needs_reply`` and ``stored_at`` beside it. The workflow state is not here
(:mod:`pipeline.store.workflow` says why).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import orjson

from pipeline.store.client import ListeningStore
from pipeline.store.queries import BoundQuery
from pipeline.store.sql import clickhouse_time

MOST_ITEMS: Final = 2000


@dataclass(frozen=True, slots=True)
class InboxQuery:
    """Which items: brands (empty: all of them), reasons, a language, and a period."""

    since: datetime
    until: datetime
    brands: Sequence[str] = field(default=())
    reasons: Sequence[str] = field(default=())
    lang: str = ""
    ids: Sequence[str] = field(default=())
    limit: int = MOST_ITEMS


def inbox_sql(table: str, query: InboxQuery) -> BoundQuery:
    """The newest items matching ``query``, one row per mention (its first brand's row).

    >>> bound = inbox_sql("m.brand_mentions", InboxQuery(
    ...     datetime.fromisoformat("2026-12-01T00:00:00+00:00"),
    ...     datetime.fromisoformat("2026-12-02T00:00:00+00:00"), reasons=("complaint",)))
    >>> "needs_reply IN {reasons:Array(String)}" in bound.sql, bound.parameters["limit"]
    (True, 2000)
    """
    conditions = ["needs_reply IS NOT NULL", "created_at >= {since:DateTime64(3, 'UTC')}",
                  "created_at < {until:DateTime64(3, 'UTC')}"]
    parameters: dict[str, Any] = {"since": clickhouse_time(query.since),
                                  "until": clickhouse_time(query.until), "limit": query.limit}
    if query.brands:
        conditions.append("brand IN {brands:Array(String)}")
        parameters["brands"] = list(query.brands)
    if query.reasons:
        conditions.append("needs_reply IN {reasons:Array(String)}")
        parameters["reasons"] = list(query.reasons)
    if query.lang:
        conditions.append("lang = {lang:String}")
        parameters["lang"] = query.lang
    if query.ids:
        conditions.append("id IN {ids:Array(String)}")
        parameters["ids"] = list(query.ids)
    return BoundQuery(
        f"SELECT mention, needs_reply, toUnixTimestamp64Milli(stored_at) FROM {table} FINAL "
        f"WHERE {' AND '.join(conditions)} "
        "ORDER BY created_at DESC, id LIMIT 1 BY id LIMIT {limit:UInt32}", parameters)


def stored_since_sql(table: str, stored_after_ms: int, limit: int) -> BoundQuery:
    """Items stored after a moment (Unix ms), oldest first: what the forwarding rules read."""
    return BoundQuery(
        f"SELECT mention, needs_reply, toUnixTimestamp64Milli(stored_at) FROM {table} "
        "WHERE needs_reply IS NOT NULL AND stored_at > fromUnixTimestamp64Milli("
        "{after:Int64}, 'UTC') ORDER BY stored_at, id LIMIT 1 BY id LIMIT {limit:UInt32}",
        {"after": stored_after_ms, "limit": limit})


def inbox_mentions(store: ListeningStore, query: InboxQuery) -> list[dict[str, Any]]:
    """The items ``query`` asks for, newest first (each mention with its ``needs_reply``)."""
    return _mentions(store.query(inbox_sql(store.table, query)))


def stored_since(store: ListeningStore, stored_after_ms: int,
                 limit: int = 500) -> list[dict[str, Any]]:
    """Items stored after ``stored_after_ms``, oldest first, each with ``stored_at_ms``."""
    return _mentions(store.query(stored_since_sql(store.table, stored_after_ms, limit)))


def _mentions(rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    mentions = []
    for mention, reason, stored_ms in rows:
        record = orjson.loads(mention)
        record["needs_reply"] = reason
        record["stored_at_ms"] = int(stored_ms)
        mentions.append(record)
    return mentions
