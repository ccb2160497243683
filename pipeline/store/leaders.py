"""``GET /api/leaders``: a brand's opinion leaders in a period, from one aggregate query.

The store aggregates (:func:`leaders_sql`: one pass over the brand's rows of this period and
the one before, a row per author and period, the top :data:`CANDIDATES` of each by a cheap
pre-score); the scoring core ranks them in Python (:mod:`pipeline.stages.leaders`); a second
query finds the shown leaders' newest mentions' keys and a third reads those mentions by key
(:func:`newest_mentions`).

A copy's row names its original's author (``original_author``), so a copy counts once for
the author who made it and once, as an echo, for the author they copied, as in
:func:`pipeline.store.sql.top_voices_sql`. Asked for a brand and period only (or a kind that
every row of them carries: :func:`without_needless_kinds`), the echoes of the settled hours
come from the echoes table instead (:mod:`pipeline.store.echoes`), and the mentions are read
once, for their own authors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Final

import orjson

from pipeline.stages.leaders import (
    SLICES,
    WEIGHTS,
    AuthorActivity,
    InsideVoices,
    Leader,
    mark_rising,
    rank_leaders,
)
from pipeline.store.echoes import ECHOED, Hours, ranges_condition, split_hours
from pipeline.store.queries import (
    FILTER_PARAMS,
    BoundQuery,
    MentionFilter,
    Period,
    RequestParams,
    _mention_filter,
    _one_brand,
)
from pipeline.store.sql import _DT, _milliseconds, _Where, clickhouse_time

# authors per period handed to the scoring core (the rest cannot reach a top list)
CANDIDATES: Final = 2000
MAX_LEADERS: Final = 100
MAX_RECENT: Final = 10
_TEXT_CHARS: Final = 280


@dataclass(frozen=True, slots=True)
class LeadersQuery:
    """A brand's leaders in a period: ``limit`` per group, ``recent`` mentions each."""

    filter: MentionFilter
    period: Period
    limit: int = 20
    recent: int = 3

    @property
    def brand(self) -> str:
        """The brand asked for (exactly one)."""
        return self.filter.brands[0]


def parse_leaders_query(params: Mapping[str, str], now: datetime) -> LeadersQuery:
    """``GET /api/leaders``: one ``brand``, filters, ``limit`` and ``recent``.

    ``limit``: leaders per group (1-100, default 20); ``recent``: newest mentions shown per
    leader (0-10, default 3).

    >>> from datetime import UTC
    >>> parse_leaders_query({"brand": "telvia", "limit": "5"}, datetime.now(UTC)).limit
    5
    """
    reader = RequestParams(params, (*FILTER_PARAMS, "limit", "recent"))
    period = reader.period(now, reader.zone())
    assert period is not None
    return LeadersQuery(_one_brand(_mention_filter(reader, period)), period,
                        reader.integer("limit", 20, 1, MAX_LEADERS),
                        reader.integer("recent", 3, 0, MAX_RECENT))


@dataclass(frozen=True, slots=True)
class EchoSource:
    """The echoes table (qualified name) and its frontier (:mod:`pipeline.store.echoes`)."""

    table: str
    frontier: datetime | None


def leaders_sql(table: str, query: LeadersQuery, inside: InsideVoices,
                candidates: int = CANDIDATES, echoes: EchoSource | None = None) -> BoundQuery:
    """Per author and period (this one, ``current = 1``, and the one before): aggregates.

    Columns in :class:`~pipeline.stages.leaders.AuthorActivity`'s order after ``current``.
    Inside voices come first among the candidates, then the pre-score's best. ``uniq``, not
    ``uniqExact``: cheaper, and below 65,536 distinct values it keeps every value's hash, so
    an author's echoers are counted exactly but for hash collisions.

    With ``echoes`` and no filter but brand and period, the echoes of the whole settled hours
    come from the echoes table (:func:`_echoes_sql`); otherwise a copy's row is read twice,
    once for its author and once, as an echo, for its original's.
    """
    previous = query.period.previous()
    where = _Where()
    where.mentions(_both_periods(query))
    since = where.bind(clickhouse_time(query.period.since), _DT)
    start_ms = int(previous.since.timestamp() * 1000)
    slice_ms = max(1, int(query.period.length.total_seconds() * 1000) // SLICES)
    # a bit per slice: exact, and no hash set per author as uniq would keep
    slice_bit = (f"bitShiftLeft(toUInt64(1), intDiv(toUnixTimestamp64Milli(created_at) "
                 f"- {start_ms}, {slice_ms}))")
    built, rest = split_hours(previous.since, query.period.since, query.period.until,
                              echoes.frontier if echoes is not None else None)
    if echoes is not None and built and _brand_and_period_only(query.filter):
        source = _own_and_echoes_sql(table, where, since, slice_bit,
                                     _echoes_sql(table, echoes.table, query.brand, where, since,
                                                 built, rest))
    else:
        source = _voices_sql(table, where, since, slice_bit)
    # one constant pattern per LIKE: a pattern from a lambda is compiled again on every row
    matches = " OR ".join(f"lower(handle) LIKE {where.bind(pattern, 'String')}"
                          for pattern in inside.like_patterns())
    inside_first = f"({matches}) DESC, " if matches else ""
    return BoundQuery(
        f"{source} "
        f"ORDER BY current DESC, {inside_first}"
        f"3 * log1p(echoers) + log1p(copies) + 0.5 * log1p(echo_reach) "
        f"+ 0.5 * log1p(followers) + 0.5 * log1p(engagement) + 0.3 * active_slices DESC, voice "
        f"LIMIT {int(candidates)} BY current",
        where.parameters,
    )


def _both_periods(query: LeadersQuery) -> MentionFilter:
    """The request's filter over its period and the one before."""
    return replace(query.filter, period=Period(query.period.previous().since,
                                               query.period.until))


def kinds_left_out_sql(table: str, query: LeadersQuery) -> BoundQuery:
    """One row if a row of either period lacks every kind asked for, none otherwise.

    Not ``FINAL``: an outdated copy of a mention that lacks them counts too, so none left
    out means none left out of what ``FINAL`` reads either.
    """
    where = _Where()
    where.mentions(replace(_both_periods(query), kinds=()))
    where.add(f"NOT hasAny(kinds, {where.bind(list(query.filter.kinds), 'Array(String)')})")
    return BoundQuery(f"SELECT 1 FROM {table} WHERE {where.sql} LIMIT 1", where.parameters)


def without_needless_kinds(run: Any, table: str, query: LeadersQuery) -> LeadersQuery:
    """``query`` without its kinds filter if that keeps every row of both periods.

    A brand's rows all carry the brand's own kind, so asking for it filters nothing; without
    the filter, a request for a brand and period only reads the echoes table
    (:func:`leaders_sql`). Any other filter, or a row the kinds would drop: ``query`` as is.
    """
    kinds_only = query.filter.kinds and _brand_and_period_only(replace(query.filter, kinds=()))
    if not kinds_only or run(kinds_left_out_sql(table, query)):
        return query
    return replace(query, filter=replace(query.filter, kinds=()))


def _brand_and_period_only(mention_filter: MentionFilter) -> bool:
    """Whether a filter asks for nothing the echoes table does not keep apart."""
    return not (mention_filter.words or mention_filter.phrases or mention_filter.langs
                or mention_filter.sentiments or mention_filter.sources or mention_filter.kinds
                or mention_filter.copies != "all")


def _voices_sql(table: str, where: _Where, since: str, slice_bit: str) -> str:
    """Every author's aggregates from the mentions alone: a copy counts for two voices."""
    return (
        f"SELECT created_at >= {since} AS current, voice, "
        f"anyLastIf(author_handle, voice = author_id AS own) AS handle, "
        f"maxIf(author_followers, own) AS followers, countIf(own) AS mentions, "
        f"countIf(own AND duplicate_of = '') AS originals, "
        f"sumIf(likes + reposts + replies + quotes, own) AS engagement, "
        f"countIf(NOT own) AS copies, uniqIf(author_id, NOT own) AS echoers, "
        f"sumIf(author_followers, NOT own) AS echo_reach, "
        f"bitCount(groupBitOrIf({slice_bit}, own)) AS active_slices, "
        f"countIf(own AND sentiment = 'negative') AS negative, "
        f"countIf(own AND sentiment = 'neutral') AS neutral, "
        f"countIf(own AND sentiment = 'positive') AS positive "
        f"FROM {table} FINAL "
        f"ARRAY JOIN if({ECHOED}, [author_id, original_author], [author_id]) AS voice "
        f"WHERE {where.sql} "
        f"GROUP BY current, voice HAVING mentions > 0"
    )


def _own_and_echoes_sql(table: str, where: _Where, since: str, slice_bit: str,
                        echoes: str) -> str:
    """Every author's own aggregates from the mentions, their echoes from ``echoes``."""
    own = (
        f"SELECT created_at >= {since} AS current, author_id AS voice, "
        f"anyLast(author_handle) AS handle, max(author_followers) AS followers, "
        f"count() AS mentions, countIf(duplicate_of = '') AS originals, "
        f"sum(likes + reposts + replies + quotes) AS engagement, "
        f"bitCount(groupBitOr({slice_bit})) AS active_slices, "
        f"countIf(sentiment = 'negative') AS negative, "
        f"countIf(sentiment = 'neutral') AS neutral, "
        f"countIf(sentiment = 'positive') AS positive "
        f"FROM {table} FINAL WHERE {where.sql} GROUP BY current, voice"
    )
    # an author none of whose own mentions is in the period is no candidate: a left join
    return (
        f"SELECT current, voice, handle, followers, mentions, originals, engagement, copies, "
        f"echoers, echo_reach, active_slices, negative, neutral, positive "
        f"FROM ({own}) AS own LEFT JOIN ({echoes}) AS echoes USING (current, voice)"
    )


def _echoes_sql(table: str, echo_table: str, brand: str, where: _Where, since: str,
                built: Sequence[Hours], rest: Sequence[Hours]) -> str:
    """Per period and original author: copies, echoers and echo reach.

    The ``built`` hours from the echoes table, the ``rest`` from the mentions.
    """
    asked = where.bind(brand, "String")
    parts = [
        f"SELECT hour >= {since} AS current, voice, copies AS made, echo_reach AS reach, "
        f"echoers AS copiers FROM {echo_table} FINAL "
        f"WHERE brand = {asked} AND {ranges_condition('hour', built, where.bind)}"
    ]
    if rest:
        parts.append(
            f"SELECT created_at >= {since} AS current, original_author AS voice, "
            f"count() AS made, sum(author_followers) AS reach, uniqState(author_id) AS copiers "
            f"FROM {table} FINAL WHERE brand = {asked} "
            f"AND {ranges_condition('created_at', rest, where.bind)} AND {ECHOED} "
            f"GROUP BY current, voice")
    return (f"SELECT current, voice, sum(made) AS copies, uniqMerge(copiers) AS echoers, "
            f"sum(reach) AS echo_reach FROM ({' UNION ALL '.join(parts)}) "
            f"GROUP BY current, voice")


def recent_keys_sql(table: str, query: LeadersQuery, authors: Sequence[str]) -> BoundQuery:
    """The keys of each of ``authors``' newest ``query.recent`` mentions in the period.

    Not ``FINAL`` and without the ``mention`` column: only the narrow key columns are read
    over the period. A redelivered mention can be two rows: grouped by key, each counts once,
    so no more keys are asked of :func:`recent_sql` than it shows (reading a mention by key
    costs a granule of the ``mention`` column).
    """
    where = _Where()
    where.mentions(query.filter)
    where.add(f"author_id IN {where.bind(list(authors), 'Array(String)')}")
    return BoundQuery(
        f"SELECT author_id, brand, toUnixTimestamp64Milli(created_at) AS created_ms, id "
        f"FROM {table} WHERE {where.sql} GROUP BY author_id, brand, created_at, id "
        f"ORDER BY created_at DESC, id DESC LIMIT {int(query.recent)} BY author_id",
        where.parameters,
    )


def recent_sql(table: str, keys: Sequence[tuple[str, int, str]]) -> BoundQuery:
    """The mentions at ``keys`` (brand, Unix ms, id), ``FINAL``, found by the table key."""
    where = _Where()
    at = [(brand, _milliseconds(created_ms), mention_id) for brand, created_ms, mention_id in keys]
    where.add(f"(brand, created_at, id) IN "
              f"{where.bind(at, f'Array(Tuple(String, {_DT}, String))')}")
    return BoundQuery(
        f"SELECT author_id, mention FROM {table} FINAL WHERE {where.sql} "
        f"ORDER BY created_at DESC, id DESC",
        where.parameters,
    )


def newest_mentions(run: Any, table: str, query: LeadersQuery,
                    authors: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """Each author's newest ``query.recent`` mentions in the period, as :func:`recent_mention`."""
    found = run(recent_keys_sql(table, query, authors))
    keys = list(dict.fromkeys((str(brand), int(created_ms), str(mention_id))
                              for _, brand, created_ms, mention_id in found))
    recent: dict[str, list[dict[str, Any]]] = {}
    if keys:
        for author_id, mention in run(recent_sql(table, keys)):
            shown = recent.setdefault(author_id, [])
            if len(shown) < query.recent:
                shown.append(recent_mention(orjson.loads(mention)))
    return recent


def activities(rows: Sequence[Sequence[Any]]) -> tuple[list[AuthorActivity],
                                                        list[AuthorActivity]]:
    """The rows of :func:`leaders_sql` as this period's and the previous period's authors."""
    current: list[AuthorActivity] = []
    previous: list[AuthorActivity] = []
    for is_current, author_id, handle, *counts in rows:
        activity = AuthorActivity(str(author_id), str(handle or ""),
                                  *(int(count) for count in counts))
        (current if is_current else previous).append(activity)
    return current, previous


def recent_mention(mention: Mapping[str, Any]) -> dict[str, Any]:
    """What a leader's recent mention shows: its text (cut), time, link, sentiment, copy."""
    sentiment = mention.get("sentiment")
    text = str(mention.get("text") or "")
    return {
        "id": mention.get("id"), "created_at": mention.get("created_at"),
        "url": mention.get("url"),
        "text": text if len(text) <= _TEXT_CHARS else text[:_TEXT_CHARS - 1] + "…",
        "sentiment": sentiment.get("label") if isinstance(sentiment, Mapping) else None,
        "copy_of": mention.get("duplicate_of"),
    }


def leader_fields(leader: Leader) -> dict[str, Any]:
    """A ranked leader as the API answers it."""
    activity = leader.activity
    return {
        "author_id": activity.author_id, "handle": activity.handle or None,
        "group": "inside" if leader.inside else "outside", "role": leader.role,
        "rank": leader.rank, "score": leader.score, "points": leader.points,
        "stance": leader.stance, "previous_rank": leader.previous_rank,
        "rising": leader.rising,
        "activity": {"followers": activity.followers, "mentions": activity.mentions,
                     "originals": activity.originals, "engagement": activity.engagement,
                     "copies": activity.copies, "echoers": activity.echoers,
                     "echo_reach": activity.echo_reach,
                     "active_slices": activity.active_slices},
        "sentiment": {"negative": activity.negative, "neutral": activity.neutral,
                      "positive": activity.positive},
    }


def leaders_answer(run: Any, table: str, query: LeadersQuery, inside: InsideVoices,
                   echoes: EchoSource | None = None) -> dict[str, Any]:
    """The answer of ``GET /api/leaders``; ``run`` runs a :class:`BoundQuery` for its rows."""
    if echoes is not None:
        query = without_needless_kinds(run, table, query)
    current, previous = activities(run(leaders_sql(table, query, inside, echoes=echoes)))
    ranked = mark_rising(rank_leaders(current, inside, limit=query.limit),
                         rank_leaders(previous, inside, limit=query.limit))
    shown = [leader_fields(leader) for leader in ranked]
    recent = newest_mentions(run, table, query, [leader["author_id"] for leader in shown]) \
        if shown and query.recent else {}
    for leader in shown:
        leader["recent"] = recent.get(leader["author_id"], [])
    previous_period = query.period.previous()
    return {
        "brand": query.brand, "since": query.period.since.isoformat(),
        "until": query.period.until.isoformat(),
        "previous": {"since": previous_period.since.isoformat(),
                     "until": previous_period.until.isoformat()},
        "slices": SLICES, "weights": WEIGHTS, "candidates": len(current),
        "outside": [leader for leader in shown if leader["group"] == "outside"],
        "inside": [leader for leader in shown if leader["group"] == "inside"],
        "rising": [{"author_id": leader["author_id"], "handle": leader["handle"],
                    "group": leader["group"], "rank": leader["rank"],
                    "previous_rank": leader["previous_rank"]}
                   for leader in sorted(shown, key=lambda leader: -leader["score"])
                   if leader["rising"]],
    }
