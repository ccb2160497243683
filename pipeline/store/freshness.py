"""How fresh the store is, and which sources it holds: the console's small questions.

Both read ``mentions_by_time`` (a row per mention, ordered by event time), so they touch only
the recent end of the table or the period asked about. Their SQL is kept here with them, apart
from :mod:`~pipeline.store.sql` and :class:`~pipeline.store.client.ListeningStore`, which
answer the API's questions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from pipeline.store.client import ListeningStore
from pipeline.store.queries import BoundQuery, Period
from pipeline.store.sql import clickhouse_time

# the newest mentions are looked for among those of this much event time before now first
RECENT: Final = timedelta(days=2)
MAX_SOURCES: Final = 50


@dataclass(frozen=True, slots=True)
class Freshness:
    """When the store last received a mention, and the newest event time it holds."""

    newest_stored_at: datetime | None
    newest_created_at: datetime | None

    def age(self, now: datetime) -> timedelta | None:
        """How long ago the newest mention was stored (None for an empty store)."""
        return None if self.newest_stored_at is None else max(
            timedelta(), now - self.newest_stored_at)

    def stale(self, now: datetime, after: timedelta) -> bool:
        """True when nothing was stored within ``after`` (an empty store is stale).

        >>> moment = datetime(2026, 12, 1, 9, tzinfo=UTC)
        >>> Freshness(moment, moment).stale(moment + timedelta(minutes=20), timedelta(minutes=15))
        True
        """
        age = self.age(now)
        return age is None or age > after


def recent_sql(by_time: str, since: datetime) -> BoundQuery:
    """The newest store and event times among mentions made since ``since`` (a key range)."""
    return BoundQuery(
        f"SELECT count(), toUnixTimestamp64Milli(max(stored_at)), "
        f"toUnixTimestamp64Milli(max(created_at)) FROM {by_time} "
        f"WHERE created_at >= {{since:DateTime64(3, 'UTC')}}",
        {"since": clickhouse_time(since)},
    )


def newest_sql(by_time: str) -> BoundQuery:
    """The store and event time of the mention with the newest event time (read in order)."""
    return BoundQuery(
        f"SELECT toUnixTimestamp64Milli(stored_at), toUnixTimestamp64Milli(created_at) "
        f"FROM {by_time} ORDER BY created_at DESC LIMIT 1")


def sources_sql(by_time: str, period: Period) -> BoundQuery:
    """The sources of the period's mentions, the most frequent first."""
    return BoundQuery(
        f"SELECT source FROM {by_time} WHERE created_at >= {{since:DateTime64(3, 'UTC')}} "
        f"AND created_at < {{until:DateTime64(3, 'UTC')}} AND source != '' "
        f"GROUP BY source ORDER BY count() DESC, source LIMIT {MAX_SOURCES}",
        {"since": clickhouse_time(period.since), "until": clickhouse_time(period.until)},
    )


def freshness(store: ListeningStore, now: datetime) -> Freshness:
    """When the store last received a mention (the mentions of the last days first)."""
    rows = store.query(recent_sql(store.by_time, now - RECENT))
    if rows and int(rows[0][0]):
        _, stored_ms, created_ms = rows[0]
        return Freshness(_from_ms(stored_ms), _from_ms(created_ms))
    rows = store.query(newest_sql(store.by_time))
    if not rows:
        return Freshness(None, None)
    stored_ms, created_ms = rows[0]
    return Freshness(_from_ms(stored_ms), _from_ms(created_ms))


def sources(store: ListeningStore, period: Period) -> list[str]:
    """The sources the store holds mentions of within ``period``."""
    return [str(row[0]) for row in store.query(sources_sql(store.by_time, period))]


def _from_ms(unix_ms: int) -> datetime:
    return datetime.fromtimestamp(int(unix_ms) / 1000, UTC)
