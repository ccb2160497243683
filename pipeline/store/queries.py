"""The store's queries: typed requests and their validation.

Everything here is pure. ``parse_*`` functions turn request parameters (the desk's query
string, as ``{name: value}``) into frozen query objects or raise :class:`BadParameter` with the
field and the reason; :mod:`pipeline.store.sql` turns a query object into SQL.
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


class RequestParams:
    """Request parameters read once each; names nobody read are an error (typos are loud).

    Every query module reads its requests with it, so all endpoints validate alike.
    """

    def __init__(self, params: Mapping[str, str], known: Sequence[str]) -> None:
        unknown = sorted(set(params) - set(known))
        if unknown:
            raise BadParameter(unknown[0], f"unknown parameter; this endpoint takes "
                               f"{', '.join(known)}")
        self.params = {name: value.strip() for name, value in params.items()}

    def text(self, name: str) -> str | None:
        """The parameter's value, stripped; ``None`` when absent or empty."""
        value = self.params.get(name)
        return value or None

    def choices(self, name: str, allowed: Sequence[str] | None = None) -> tuple[str, ...]:
        """A comma-separated list, each value once (and among ``allowed`` when given)."""
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
        """An integer between ``low`` and ``high``, ``default`` when absent."""
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
        """One of ``allowed``, ``default`` when absent."""
        value = self.text(name)
        if value is None:
            return default
        if value not in allowed:
            raise BadParameter(name, f"{value!r} is not one of {', '.join(allowed)}")
        return value  # type: ignore[return-value]  # one of the literal's allowed values

    def zone(self) -> ZoneInfo:
        """The ``tz`` parameter's IANA zone (default UTC)."""
        name = self.text("tz") or "UTC"
        try:
            return ZoneInfo(name)
        # a name too long for a file name is an OSError (ENAMETOOLONG), not "not found"
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise BadParameter("tz", f"{name!r} is not an IANA time zone "
                               "(e.g. Europe/Madrid)") from None

    def instant(self, name: str, zone: ZoneInfo) -> datetime | None:
        """An ISO 8601 time (:func:`parse_instant`), ``None`` when absent."""
        value = self.text(name)
        return None if value is None else parse_instant(name, value, zone)

    def period(self, now: datetime, zone: ZoneInfo, *, required: bool = True,
               default: timedelta = DEFAULT_PERIOD) -> Period | None:
        """``since``/``until``; missing ends are ``now`` and ``default`` before ``until``.

        Not ``required``: ``None`` when neither is given.
        """
        since, until = self.instant("since", zone), self.instant("until", zone)
        if since is None and until is None and not required:
            return None
        until = until or now
        since = since or until - default
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


def _mention_filter(params: RequestParams, period: Period | None) -> MentionFilter:
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
    reader = RequestParams(params, (*FILTER_PARAMS, "limit", "cursor"))
    zone = reader.zone()
    cursor = reader.text("cursor")
    return MentionsQuery(
        filter=_mention_filter(reader, reader.period(now, zone, required=False)),
        limit=reader.integer("limit", 50, 1, MAX_MENTIONS_PAGE),
        cursor=Cursor.decode(cursor) if cursor else None,
    )


def parse_volume_query(params: Mapping[str, str], now: datetime) -> VolumeQuery:
    """``GET /api/volume``: one ``brand``, filters and ``interval`` (5m, 1h, 1d; default 1h)."""
    reader = RequestParams(params, (*FILTER_PARAMS, "interval"))
    zone = reader.zone()
    period = reader.period(now, zone)
    assert period is not None
    interval: Interval = reader.one_of("interval", INTERVALS, "1h")
    _check_buckets(period, interval)
    return VolumeQuery(_one_brand(_mention_filter(reader, period)), period, interval, zone)


def parse_share_of_voice_query(params: Mapping[str, str], now: datetime) -> ShareOfVoiceQuery:
    """``GET /api/share-of-voice``: ``brands`` (2-20 ids) and an optional ``interval``."""
    reader = RequestParams(params, ("brands", "since", "until", "interval", "tz"))
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
    reader = RequestParams(params, (*FILTER_PARAMS, "limit"))
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


PARSERS: Final[dict[str, Callable[[Mapping[str, str], datetime], Any]]] = {
    "mentions": parse_mentions_query,
    "volume": parse_volume_query,
    "share-of-voice": parse_share_of_voice_query,
    "top-voices": parse_top_voices_query,
    "terms": parse_terms_query,
}
