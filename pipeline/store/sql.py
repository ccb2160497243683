"""The store's SQL: a query object (:mod:`pipeline.store.queries`) as a :class:`BoundQuery`.

Every user-given value is a ``{name:Type}`` placeholder that ClickHouse binds itself
(server-side binding: a value is never spliced into SQL text).

Rows are read ``FINAL``: the table is a ``ReplacingMergeTree`` keyed by mention, so a mention
delivered twice (at-least-once) counts once even before ClickHouse merges its parts.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

from pipeline.store.queries import (
    INTERVALS,
    BoundQuery,
    Interval,
    MentionFilter,
    MentionsQuery,
    Period,
    ShareOfVoiceQuery,
    TermsQuery,
    TopVoicesQuery,
    VolumeQuery,
)

_DT: Final = "DateTime64(3, 'UTC')"


def clickhouse_time(moment: datetime) -> str:
    """A bound ``DateTime64(3, 'UTC')`` value.

    >>> clickhouse_time(datetime(2026, 12, 6, 9, 30, 0, 123456, tzinfo=UTC))
    '2026-12-06 09:30:00.123'
    """
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


class _Where:
    """Conditions and their bound values, named ``p0``, ``p1``..."""

    def __init__(self) -> None:
        self.conditions: list[str] = []
        self.parameters: dict[str, Any] = {}

    def bind(self, value: Any, kind: str) -> str:
        name = f"p{len(self.parameters)}"
        self.parameters[name] = value
        return f"{{{name}:{kind}}}"

    def add(self, condition: str) -> None:
        self.conditions.append(condition)

    def period(self, period: Period) -> None:
        self.add(f"created_at >= {self.bind(clickhouse_time(period.since), _DT)}")
        self.add(f"created_at < {self.bind(clickhouse_time(period.until), _DT)}")

    def mentions(self, mention_filter: MentionFilter, *, by_time: bool = False) -> None:
        """The filter's conditions; ``by_time``: on the table of a row per mention."""
        if mention_filter.brands:
            asked = self.bind(list(mention_filter.brands), 'Array(String)')
            self.add(f"hasAny(brands, {asked})" if by_time else f"brand IN {asked}")
        if mention_filter.period is not None:
            self.period(mention_filter.period)
        for word in mention_filter.words:
            self.add(f"hasToken(search_text, {self.bind(word, 'String')})")
        for phrase in mention_filter.phrases:
            # the stored search text is words one space apart: padded, a phrase matches
            # whole words only
            self.add(f"position(concat(' ', search_text, ' '), "
                     f"{self.bind(f' {phrase} ', 'String')}) > 0")
        for column, values in (("lang", mention_filter.langs),
                               ("sentiment", mention_filter.sentiments),
                               ("source", mention_filter.sources)):
            if values:
                self.add(f"{column} IN {self.bind(list(values), 'Array(String)')}")
        if mention_filter.kinds:
            self.add(f"hasAny(kinds, {self.bind(list(mention_filter.kinds), 'Array(String)')})")
        if mention_filter.copies == "original":
            self.add("duplicate_of = ''")
        elif mention_filter.copies == "copies":
            self.add("duplicate_of != ''")

    @property
    def sql(self) -> str:
        return " AND ".join(self.conditions) or "1"


def _mentions_where(query: MentionsQuery, *, by_time: bool = False) -> _Where:
    where = _Where()
    where.mentions(query.filter, by_time=by_time)
    if query.cursor is not None:
        at = where.bind(_milliseconds(query.cursor.created_ms), _DT)
        # the bare bound lets the engine skip the granules after the cursor (it does not
        # analyse the tuple comparison against the table key)
        where.add(f"created_at <= {at}")
        where.add(f"(created_at, id) < ({at}, {where.bind(query.cursor.mention_id, 'String')})")
    if not by_time and len(query.filter.brands) != 1:
        where.add(f"brand = {_first_brand(where, query.filter.brands)}")
    return where


def _first_brand(where: _Where, asked: Sequence[str]) -> str:
    """A mention's first brand among ``asked`` (its first, or '' without any, if none asked).

    A mention is a row per brand it names: with other than one brand asked for, only this
    row of it is read, so each shows once without sorting every row of the period to drop
    copies (as ``LIMIT 1 BY`` did, many times slower: ``benchmarks/README.md``).
    """
    if not asked:
        return "if(empty(brands), '', brands[1])"
    return f"arrayFirst(b -> has({where.bind(list(asked), 'Array(String)')}, b), brands)"


def mentions_sql(table: str, query: MentionsQuery) -> BoundQuery:
    """A page of mentions as emitted, newest first, and one more row (is there a next page?).

    Read ``FINAL``: exact, and slow where the matches are spread over the table (a rare word
    without a brand); :func:`mention_keys_sql` and :func:`page_sql` answer most pages faster.
    """
    where = _mentions_where(query)
    return BoundQuery(
        f"SELECT mention, toUnixTimestamp64Milli(created_at) AS created_ms, id "
        f"FROM {table} FINAL WHERE {where.sql} "
        f"ORDER BY created_at DESC, id DESC LIMIT {query.limit + 1}",
        where.parameters,
    )


def mention_keys_sql(table: str, query: MentionsQuery, fetch: int) -> BoundQuery:
    """The table keys ``(brand, created_ms, id)`` of the newest ``fetch`` matching rows.

    ``table`` is the store's main table when brands are asked for (their ranges of it), and
    its table of a row per mention in time order (``mentions_by_time``) when none is: there
    the engine reads from the newest granule and stops at the page, where the main table
    would be read across every brand's range. Not ``FINAL``: a mention stored twice (a
    redelivery) can be two of them, one after the other.
    """
    by_time = not query.filter.brands
    where = _mentions_where(query, by_time=by_time)
    brand = _first_brand(where, query.filter.brands) if by_time else "brand"
    return BoundQuery(
        f"SELECT {brand} AS brand, toUnixTimestamp64Milli(created_at) AS created_ms, id "
        f"FROM {table} WHERE {where.sql} ORDER BY created_at DESC, id DESC LIMIT {fetch}",
        where.parameters,
    )


def page_sql(table: str, query: MentionsQuery,
             keys: Sequence[tuple[str, int, str]]) -> BoundQuery:
    """The mentions at ``keys`` (from :func:`mention_keys_sql`) that still match, ``FINAL``.

    Found by the table key, so only their granules are read; the filters apply again to the
    newest copy of each row, so a mention whose newest copy no longer matches drops out.
    """
    where = _mentions_where(query)
    at = [(brand, _milliseconds(created_ms), mention_id) for brand, created_ms, mention_id in keys]
    key_type = f"Array(Tuple(String, {_DT}, String))"
    where.add(f"(brand, created_at, id) IN {where.bind(at, key_type)}")
    return BoundQuery(
        f"SELECT mention, toUnixTimestamp64Milli(created_at) AS created_ms, id "
        f"FROM {table} FINAL WHERE {where.sql} ORDER BY created_at DESC, id DESC",
        where.parameters,
    )


def _milliseconds(unix_ms: int) -> str:
    """A bound ``DateTime64(3)`` value from Unix milliseconds, exactly (no float on the way)."""
    seconds, milliseconds = divmod(unix_ms, 1000)
    return clickhouse_time(datetime.fromtimestamp(seconds, UTC)
                           + timedelta(milliseconds=milliseconds))


def _bucket(where: _Where, interval: Interval, zone: ZoneInfo) -> str:
    return (f"toUnixTimestamp(toStartOfInterval(toDateTime(created_at), "
            f"INTERVAL {INTERVALS[interval]}, {where.bind(zone.key, 'String')}))")


def volume_sql(table: str, query: VolumeQuery) -> BoundQuery:
    """Counts per bucket (Unix seconds of its start) and sentiment label ('' unscored)."""
    where = _Where()
    bucket = _bucket(where, query.interval, query.tz)
    where.mentions(query.filter)
    return BoundQuery(
        f"SELECT {bucket} AS bucket, sentiment, count() AS mentions "
        f"FROM {table} FINAL WHERE {where.sql} GROUP BY bucket, sentiment ORDER BY bucket",
        where.parameters,
    )


def share_of_voice_sql(table: str, query: ShareOfVoiceQuery) -> BoundQuery:
    """Per bucket (0 when no interval) and brand: mentions and negative mentions."""
    where = _Where()
    bucket = _bucket(where, query.interval, query.tz) if query.interval else "0"
    where.add(f"brand IN {where.bind(list(query.brands), 'Array(String)')}")
    where.period(query.period)
    return BoundQuery(
        f"SELECT {bucket} AS bucket, brand, count() AS mentions, "
        f"countIf(sentiment = 'negative') AS negative "
        f"FROM {table} FINAL WHERE {where.sql} GROUP BY bucket, brand ORDER BY bucket",
        where.parameters,
    )


def top_voices_sql(table: str, query: TopVoicesQuery, engagement_reach: float) -> BoundQuery:
    """Authors of the period's mentions, ranked by reach.

    An author's reach: their largest follower count, the followers of the other authors who
    copied their mentions in the period (retweets and near-copies, from dedup; a copy's row
    names its original's author), and ``engagement_reach`` people per like, repost, reply and
    quote. A copy counts for its own author and, as an echo, for its original's: one pass over
    the rows, each copy by someone else read twice (joining the copies to their originals
    here was the slowest query of the desk: ``benchmarks/README.md``).
    """
    where = _Where()
    where.mentions(query.filter)
    echoed = "original_author != '' AND original_author != author_id"
    return BoundQuery(
        f"SELECT voice, anyLastIf(author_handle, voice = author_id AS own) AS handle, "
        f"maxIf(author_followers, own) AS followers, countIf(own) AS mentions, "
        f"sumIf(likes + reposts + replies + quotes, own) AS engagement, "
        f"countIf(own AND sentiment = 'negative') AS negative, "
        f"countIf(own AND sentiment = 'neutral') AS neutral, "
        f"countIf(own AND sentiment = 'positive') AS positive, "
        f"countIf(NOT own) AS copies, "
        f"followers + sumIf(author_followers, NOT own) + {float(engagement_reach)} * engagement "
        f"AS reach "
        f"FROM {table} FINAL "
        f"ARRAY JOIN if({echoed}, [author_id, original_author], [author_id]) AS voice "
        f"WHERE {where.sql} "
        f"GROUP BY voice "
        f"HAVING mentions > 0 "
        f"ORDER BY reach DESC, mentions DESC, voice LIMIT {query.limit}",
        where.parameters,
    )


def original_authors_sql(table: str, ids: Sequence[str], since: datetime,
                         until: datetime) -> BoundQuery:
    """The author of each of the mentions ``ids`` stored with an event time in the range."""
    where = _Where()
    where.period(Period(since, until + timedelta(milliseconds=1)))
    where.add(f"id IN {where.bind(list(ids), 'Array(String)')}")
    return BoundQuery(f"SELECT id, any(author_id) FROM {table} WHERE {where.sql} GROUP BY id",
                      where.parameters)


def terms_sql(table: str, query: TermsQuery, candidates: int = 500) -> BoundQuery:
    """The period's ``candidates`` most frequent terms, with their count in the period before.

    Hashtags keep their ``#``.
    """
    where = _Where()
    wide = MentionFilter(**{**_filter_fields(query.filter), "period": Period(
        query.period.previous().since, query.period.until)})
    where.mentions(wide)
    since = where.bind(clickhouse_time(query.period.since), _DT)
    return BoundQuery(
        f"SELECT term, countIf(created_at >= {since}) AS current, "
        f"countIf(created_at < {since}) AS previous "
        f"FROM {table} FINAL ARRAY JOIN terms AS term WHERE {where.sql} "
        f"GROUP BY term ORDER BY current DESC, previous DESC, term LIMIT {candidates}",
        where.parameters,
    )


def _filter_fields(mention_filter: MentionFilter) -> dict[str, Any]:
    return {name: getattr(mention_filter, name) for name in MentionFilter.__slots__}
