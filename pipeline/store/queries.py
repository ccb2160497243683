"""The store's queries: typed requests, their validation, and their SQL with bound parameters.

Everything here is pure. ``parse_*`` functions turn request parameters (the desk's query
string, as ``{name: value}``) into frozen query objects or raise :class:`BadParameter` with the
field and the reason; ``*_sql`` functions turn a query object into a :class:`BoundQuery`, a
statement whose every user-given value is a ``{name:Type}`` placeholder that ClickHouse binds
itself (server-side binding: a value is never spliced into SQL text).

Rows are read ``FINAL``: the table is a ``ReplacingMergeTree`` keyed by mention, so a mention
delivered twice (at-least-once) counts once even before ClickHouse merges its parts.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson

from pipeline.store.rows import SENTIMENT_LABELS, search_tokens

Interval = Literal["5m", "1h", "1d"]
Copies = Literal["all", "original", "copies"]
INTERVALS: Final[dict[str, str]] = {"5m": "5 MINUTE", "1h": "1 HOUR", "1d": "1 DAY"}
INTERVAL_SECONDS: Final[dict[str, int]] = {"5m": 300, "1h": 3600, "1d": 86400}
BRAND_KINDS: Final = ("brand", "competitor", "market")
DEFAULT_PERIOD: Final = timedelta(days=1)
MAX_PERIOD: Final = timedelta(days=400)
MAX_BUCKETS: Final = 2016  # a week of 5-minute buckets
MAX_MENTIONS_PAGE: Final = 500
MAX_BRANDS: Final = 20
MAX_SEARCH_TOKENS: Final = 16
# DateTime64(3) holds 1900-2299; the store's mentions are newer than Unix time
EARLIEST: Final = datetime(1970, 1, 1, tzinfo=UTC)
LATEST: Final = datetime(2200, 1, 1, tzinfo=UTC)
_EARLIEST_MS: Final = int(EARLIEST.timestamp() * 1000)
_LATEST_MS: Final = int(LATEST.timestamp() * 1000)
_T = TypeVar("_T")


class BadParameter(ValueError):
    """A request parameter that cannot be used: which one, and why (the desk answers 400)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True, slots=True)
class BoundQuery:
    """A SQL statement and the values ClickHouse binds to its ``{name:Type}`` placeholders."""

    sql: str
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Period:
    """A half-open span of event time, ``[since, until)``, timezone-aware."""

    since: datetime
    until: datetime

    @property
    def length(self) -> timedelta:
        """How long the period lasts."""
        return self.until - self.since

    def previous(self) -> Period:
        """The period of equal length just before this one."""
        return Period(self.since - self.length, self.since)


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a page of mentions ended: the last mention's event time (ms) and id."""

    created_ms: int
    mention_id: str

    def encode(self) -> str:
        """The opaque token a client sends back as ``cursor``."""
        return base64.urlsafe_b64encode(
            orjson.dumps([self.created_ms, self.mention_id]),
        ).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        """Read a token made by :meth:`encode`; ``BadParameter`` for anything else."""
        try:
            created_ms, mention_id = orjson.loads(
                base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)),
            )
        except (ValueError, TypeError, binascii.Error):
            raise BadParameter("cursor", "not a cursor this API returned") from None
        # a forged time outside the store's range would fail later, converting it, as a 500
        if (not isinstance(created_ms, int) or isinstance(created_ms, bool)
                or not isinstance(mention_id, str)
                or not _EARLIEST_MS <= created_ms < _LATEST_MS):
            raise BadParameter("cursor", "not a cursor this API returned")
        return cls(created_ms, mention_id)


@dataclass(frozen=True, slots=True)
class MentionFilter:
    """Which mentions a query looks at; empty tuples and ``None`` mean any."""

    brands: tuple[str, ...] = ()
    period: Period | None = None
    words: tuple[str, ...] = ()
    phrases: tuple[str, ...] = ()
    langs: tuple[str, ...] = ()
    sentiments: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    copies: Copies = "all"


@dataclass(frozen=True, slots=True)
class MentionsQuery:
    """A page of mentions, newest first."""

    filter: MentionFilter
    limit: int = 50
    cursor: Cursor | None = None


@dataclass(frozen=True, slots=True)
class VolumeQuery:
    """Mention counts by sentiment per interval."""

    filter: MentionFilter
    period: Period
    interval: Interval
    tz: ZoneInfo


@dataclass(frozen=True, slots=True)
class ShareOfVoiceQuery:
    """Each brand's share of the mentions (and of the negative ones), per interval or overall."""

    brands: tuple[str, ...]
    period: Period
    interval: Interval | None
    tz: ZoneInfo


@dataclass(frozen=True, slots=True)
class TopVoicesQuery:
    """Authors ranked by how far their words about a brand reached."""

    filter: MentionFilter
    period: Period
    limit: int = 20


@dataclass(frozen=True, slots=True)
class TermsQuery:
    """Top terms and hashtags of a period, and those that rose against the period before."""

    filter: MentionFilter
    period: Period
    limit: int = 20


# --------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------


class _Params:
    """Request parameters read once each; names nobody read are an error (typos are loud)."""

    def __init__(self, params: Mapping[str, str], known: Sequence[str]) -> None:
        unknown = sorted(set(params) - set(known))
        if unknown:
            raise BadParameter(unknown[0], f"unknown parameter; this endpoint takes "
                               f"{', '.join(known)}")
        self.params = {name: value.strip() for name, value in params.items()}

    def text(self, name: str) -> str | None:
        value = self.params.get(name)
        return value or None

    def choices(self, name: str, allowed: Sequence[str] | None = None) -> tuple[str, ...]:
        value = self.text(name)
        if value is None:
            return ()
        items = tuple(dict.fromkeys(item.strip() for item in value.split(",") if item.strip()))
        for item in items:
            if allowed is not None and item not in allowed:
                raise BadParameter(name, f"{item!r} is not one of {', '.join(allowed)}")
            if len(item) > 200:
                raise BadParameter(name, "a value is longer than 200 characters")
        if len(items) > 100:
            raise BadParameter(name, "more than 100 values")
        return items

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        value = self.text(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise BadParameter(name, f"{value!r} is not an integer") from None
        if not low <= number <= high:
            raise BadParameter(name, f"must be between {low} and {high}")
        return number

    def one_of(self, name: str, allowed: Mapping[str, Any] | Sequence[str], default: _T) -> _T:
        value = self.text(name)
        if value is None:
            return default
        if value not in allowed:
            raise BadParameter(name, f"{value!r} is not one of {', '.join(allowed)}")
        return value  # type: ignore[return-value]  # one of the literal's allowed values

    def zone(self) -> ZoneInfo:
        name = self.text("tz") or "UTC"
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise BadParameter("tz", f"{name!r} is not an IANA time zone "
                               "(e.g. Europe/Madrid)") from None

    def instant(self, name: str, zone: ZoneInfo) -> datetime | None:
        value = self.text(name)
        return None if value is None else parse_instant(name, value, zone)

    def period(self, now: datetime, zone: ZoneInfo, *, required: bool = True) -> Period | None:
        since, until = self.instant("since", zone), self.instant("until", zone)
        if since is None and until is None and not required:
            return None
        until = until or now
        since = since or until - DEFAULT_PERIOD
        if since >= until:
            raise BadParameter("since", "must be before until")
        if until - since > MAX_PERIOD:
            raise BadParameter("since", f"the period is longer than {MAX_PERIOD.days} days")
        return Period(since, until)


def parse_instant(name: str, value: str, zone: ZoneInfo) -> datetime:
    """An ISO 8601 time (a bare date is midnight in ``zone``; no offset means ``zone``).

    >>> parse_instant("since", "2026-12-01", ZoneInfo("Europe/Madrid")).isoformat()
    '2026-11-30T23:00:00+00:00'
    """
    try:
        if len(value) == 10:
            moment = datetime.combine(date.fromisoformat(value), time(), tzinfo=zone)
        else:
            moment = datetime.fromisoformat(value.replace(" ", "+"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=zone)
    except ValueError:
        raise BadParameter(name, f"{value!r} is not an ISO 8601 date or time "
                           "(e.g. 2026-12-01T09:00:00+01:00)") from None
    moment = moment.astimezone(UTC)
    if not EARLIEST <= moment < LATEST:
        raise BadParameter(name, f"must lie between {EARLIEST.year} and {LATEST.year}")
    return moment


def _mention_filter(params: _Params, period: Period | None) -> MentionFilter:
    words, phrases = parse_search(params.text("q") or "")
    return MentionFilter(
        brands=params.choices("brand"), period=period, words=words, phrases=phrases,
        langs=params.choices("lang"), sentiments=params.choices("sentiment", SENTIMENT_LABELS),
        sources=params.choices("source"), kinds=params.choices("kind", BRAND_KINDS),
        copies=params.one_of("copies", ("all", "original", "copies"), "all"),
    )


FILTER_PARAMS: Final = ("brand", "q", "lang", "sentiment", "source", "kind", "copies",
                        "since", "until", "tz")


def parse_search(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Words every mention must contain, and ``"quoted phrases"`` it must contain as written.

    Matching ignores case and accents, as the listening queries do.

    >>> parse_search('Cobertura "por fin" MÓVIL')
    (('cobertura', 'movil', 'por', 'fin'), ('por fin',))
    """
    if len(text) > 500:
        raise BadParameter("q", "longer than 500 characters")
    parts = text.split('"')
    if len(parts) % 2 == 0:
        raise BadParameter("q", "a quote is not closed")
    loose, quoted = parts[0::2], [part for part in parts[1::2] if part.strip()]
    words = [token for part in loose for token in search_tokens(part)]
    phrases = [" ".join(search_tokens(part)) for part in quoted]
    words += [token for phrase in phrases for token in phrase.split()]
    words = list(dict.fromkeys(words))
    if len(words) > MAX_SEARCH_TOKENS:
        raise BadParameter("q", f"more than {MAX_SEARCH_TOKENS} words")
    return tuple(words), tuple(phrase for phrase in phrases if phrase)


def parse_mentions_query(params: Mapping[str, str], now: datetime) -> MentionsQuery:
    """``GET /api/mentions``: filters, ``limit`` (1-500, default 50) and ``cursor``."""
    reader = _Params(params, (*FILTER_PARAMS, "limit", "cursor"))
    zone = reader.zone()
    cursor = reader.text("cursor")
    return MentionsQuery(
        filter=_mention_filter(reader, reader.period(now, zone, required=False)),
        limit=reader.integer("limit", 50, 1, MAX_MENTIONS_PAGE),
        cursor=Cursor.decode(cursor) if cursor else None,
    )


def parse_volume_query(params: Mapping[str, str], now: datetime) -> VolumeQuery:
    """``GET /api/volume``: one ``brand``, filters and ``interval`` (5m, 1h, 1d; default 1h)."""
    reader = _Params(params, (*FILTER_PARAMS, "interval"))
    zone = reader.zone()
    period = reader.period(now, zone)
    assert period is not None
    interval: Interval = reader.one_of("interval", INTERVALS, "1h")
    _check_buckets(period, interval)
    return VolumeQuery(_one_brand(_mention_filter(reader, period)), period, interval, zone)


def parse_share_of_voice_query(params: Mapping[str, str], now: datetime) -> ShareOfVoiceQuery:
    """``GET /api/share-of-voice``: ``brands`` (2-20 ids) and an optional ``interval``."""
    reader = _Params(params, ("brands", "since", "until", "interval", "tz"))
    zone = reader.zone()
    period = reader.period(now, zone)
    assert period is not None
    brands = reader.choices("brands")
    if not 1 <= len(brands) <= MAX_BRANDS:
        raise BadParameter("brands", f"give 1 to {MAX_BRANDS} brand ids, comma separated")
    interval: Interval | None = reader.one_of("interval", INTERVALS, None)
    if interval is not None:
        _check_buckets(period, interval)
    return ShareOfVoiceQuery(brands, period, interval, zone)


def parse_top_voices_query(params: Mapping[str, str], now: datetime) -> TopVoicesQuery:
    """``GET /api/top-voices``: one ``brand``, filters and ``limit`` (1-200, default 20)."""
    return TopVoicesQuery(*_ranking(params, now, most=200))


def parse_terms_query(params: Mapping[str, str], now: datetime) -> TermsQuery:
    """``GET /api/terms``: one ``brand``, filters and ``limit`` (1-100, default 20) per list."""
    return TermsQuery(*_ranking(params, now, most=100))


def _ranking(params: Mapping[str, str], now: datetime,
             most: int) -> tuple[MentionFilter, Period, int]:
    """A ranking's filter, period (required) and length (default 20)."""
    reader = _Params(params, (*FILTER_PARAMS, "limit"))
    period = reader.period(now, reader.zone())
    assert period is not None
    return (_one_brand(_mention_filter(reader, period)), period,
            reader.integer("limit", 20, 1, most))


def _one_brand(mention_filter: MentionFilter) -> MentionFilter:
    """A per-brand question's filter: exactly one brand (the table holds a row per brand)."""
    if len(mention_filter.brands) != 1:
        raise BadParameter("brand", "give one brand id (a listening query's id); "
                           "share-of-voice compares several")
    return mention_filter


def _check_buckets(period: Period, interval: str) -> None:
    buckets = math.ceil(period.length.total_seconds() / INTERVAL_SECONDS[interval])
    if buckets > MAX_BUCKETS:
        raise BadParameter("interval", f"{buckets} buckets of {interval} in the period (at "
                           f"most {MAX_BUCKETS}): choose a longer interval or a shorter period")


def bucket_starts(period: Period, interval: Interval, zone: ZoneInfo) -> list[datetime]:
    """The starts of every bucket that overlaps ``period``, aligned in ``zone``.

    Aligned as ClickHouse's ``toStartOfInterval(t, INTERVAL ..., zone)`` aligns them.

    >>> [start.isoformat() for start in bucket_starts(Period(
    ...     datetime(2026, 3, 28, 22, tzinfo=UTC), datetime(2026, 3, 30, tzinfo=UTC)),
    ...     "1d", ZoneInfo("Europe/Madrid"))]
    ['2026-03-28T00:00:00+01:00', '2026-03-29T00:00:00+01:00', '2026-03-30T00:00:00+02:00']
    """
    local = period.since.astimezone(zone)
    if interval == "1d":
        day = local.date()
        starts: list[datetime] = []
        while True:
            start = datetime.combine(day, time(), tzinfo=zone)
            if start >= period.until:
                return starts
            starts.append(start)
            day += timedelta(days=1)
    step = INTERVAL_SECONDS[interval]
    offset = local.utcoffset() or timedelta()
    local_seconds = period.since.timestamp() + offset.total_seconds()
    first = period.since.timestamp() - local_seconds % step
    count = math.ceil((period.until.timestamp() - first) / step)
    return [datetime.fromtimestamp(first + i * step, UTC).astimezone(zone) for i in range(count)]


# --------------------------------------------------------------------------------------------
# SQL
# --------------------------------------------------------------------------------------------

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

    ``table`` is the store's main table for one brand, and its table of a row per mention in
    time order (``mentions_by_time``) for none or several. Not ``FINAL``: a mention stored
    twice (a redelivery) can be two of them, one after the other; without ``FINAL`` the
    engine stops reading once it has the newest rows.
    """
    by_time = len(query.filter.brands) != 1
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


PARSERS: Final[dict[str, Callable[[Mapping[str, str], datetime], Any]]] = {
    "mentions": parse_mentions_query,
    "volume": parse_volume_query,
    "share-of-voice": parse_share_of_voice_query,
    "top-voices": parse_top_voices_query,
    "terms": parse_terms_query,
}
