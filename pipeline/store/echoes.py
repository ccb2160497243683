"""Echoes by hour: per brand, hour and original author, the copies others made of their mentions.

The leaders query (:mod:`pipeline.store.leaders`) credits an author with the copies others
made of their mentions, the distinct authors of those copies (*echoers*) and their followers.
Counted from the mentions at query time that is a pass over every copy of the period, hashing
each copier into a set per author, and most of a loud brand's rows are copies. This table
keeps those counts per brand, hour and original author, the echoers as ``uniq`` states, so
the query merges a few states per author and hour instead (``benchmarks/README.md``).

It is built from the mentions as the store keeps them (``FINAL``: a redelivered mention counts
once), not by a materialized view on insert: a view sees every insert, and the sink inserts a
mention again after a redelivery and once per brand partition that carries it, so it would
count those copies twice. The sink *settles* it every so often (:func:`settle`): the hours
closed since the last settle are built, and the hours that got a mention after it with an
event time before its frontier (late or redelivered mentions) are built again, the newer
``built_at`` replacing. The leaders query reads it for the whole hours before the frontier
(:func:`split_hours`) and the mentions for the rest, so a late copy shows in the leaders from
the next settle on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from pipeline.store.queries import BoundQuery
from pipeline.store.sql import _DT, clickhouse_time

ECHOES: Final = "echoes_by_hour"
ECHOES_SETTLED: Final = "echoes_settled"
HOUR: Final = timedelta(hours=1)
# the backfill builds a day per statement, so the engine groups a day of copies at a time
_BUILD_SPAN: Final = timedelta(days=1)
# a copy made by someone else than the author it copies: an echo of that author
ECHOED: Final = "original_author != '' AND original_author != author_id"

Hours = tuple[datetime, datetime]
RunQuery = Callable[[BoundQuery], list[tuple[Any, ...]]]
RunCommand = Callable[[BoundQuery], None]


def echo_statements(database: str, ttl_expression: str) -> list[str]:
    """The DDL of the echoes table and its settle log, idempotent (``IF NOT EXISTS``).

    ``ttl_expression`` counts from ``hour``, so an hour leaves with the mentions it counts.
    """
    return [
        f"""CREATE TABLE IF NOT EXISTS {database}.{ECHOES} (
            brand LowCardinality(String),
            hour DateTime('UTC'),
            voice String,
            built_at DateTime64(3, 'UTC') DEFAULT now64(3),
            copies UInt64,
            echo_reach UInt64,
            echoers AggregateFunction(uniq, String)
        )
        ENGINE = ReplacingMergeTree(built_at)
        PARTITION BY toYYYYMM(hour)
        ORDER BY (brand, hour, voice)
        TTL {ttl_expression}""",
        # a row per settle: every hour before ``frontier`` was built from the mentions
        # stored before ``settled_at`` (the server's clock, as ``stored_at``'s default)
        f"""CREATE TABLE IF NOT EXISTS {database}.{ECHOES_SETTLED} (
            settled_at DateTime64(3, 'UTC'),
            frontier DateTime('UTC')
        )
        ENGINE = MergeTree ORDER BY settled_at
        TTL toDateTime(settled_at) + toIntervalDay(7)""",
    ]


def floor_hour(at: datetime) -> datetime:
    """The start of ``at``'s hour (UTC)."""
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def ceil_hour(at: datetime) -> datetime:
    """The first hour start at or after ``at``."""
    start = floor_hour(at)
    return start if start == at else start + HOUR


def split_hours(since: datetime, boundary: datetime, until: datetime,
                frontier: datetime | None) -> tuple[list[Hours], list[Hours]]:
    """The ranges of ``[since, until)`` read from the echoes table, and the rest.

    The table answers whole hours before ``frontier`` that do not straddle ``boundary``
    (where the previous period ends and the asked one starts); the mentions answer the rest.

    >>> at = lambda hour, minute=0: datetime(2026, 12, 1, hour, minute, tzinfo=UTC)
    >>> built, rest = split_hours(at(0, 30), at(3, 30), at(6, 10), at(5))
    >>> [(a.hour, b.hour) for a, b in built], [(a.strftime("%H:%M"), b.strftime("%H:%M"))
    ...                                        for a, b in rest]
    ([(1, 3), (4, 5)], [('00:30', '01:00'), ('03:00', '04:00'), ('05:00', '06:10')])
    """
    end = min(floor_hour(until), frontier) if frontier is not None else since
    built = [(start, stop) for start, stop in ((ceil_hour(since), min(floor_hour(boundary), end)),
                                              (ceil_hour(boundary), end))
             if start < stop]
    rest: list[Hours] = []
    cursor = since
    for start, stop in built:
        if cursor < start:
            rest.append((cursor, start))
        cursor = stop
    if cursor < until:
        rest.append((cursor, until))
    return built, rest


def ranges_condition(column: str, ranges: Sequence[Hours], bind: Callable[[Any, str], str],
                     kind: str = _DT) -> str:
    """``column`` in any of ``ranges`` (start included, end not), bound through ``bind``."""
    return "(" + " OR ".join(
        f"({column} >= {bind(clickhouse_time(start), kind)} AND "
        f"{column} < {bind(clickhouse_time(stop), kind)})" for start, stop in ranges) + ")"


def build_sql(database: str, table: str, ranges: Sequence[Hours]) -> BoundQuery:
    """Insert the echoes of the mentions in ``ranges`` (whole hours), every brand."""
    parameters: dict[str, Any] = {}

    def bind(value: Any, kind: str) -> str:
        name = f"p{len(parameters)}"
        parameters[name] = value
        return f"{{{name}:{kind}}}"

    return BoundQuery(
        f"INSERT INTO {database}.{ECHOES} (brand, hour, voice, copies, echo_reach, echoers) "
        f"SELECT brand, toStartOfHour(created_at) AS hour, original_author AS voice, "
        f"count(), sum(author_followers), uniqState(author_id) "
        f"FROM {table} FINAL WHERE {ranges_condition('created_at', ranges, bind)} AND {ECHOED} "
        f"GROUP BY brand, hour, voice",
        parameters,
    )


@dataclass(frozen=True, slots=True)
class Settled:
    """What a settle did: the hours built, and the frontier it left."""

    built_hours: int
    frontier: datetime | None


def frontier(query: RunQuery, database: str) -> datetime | None:
    """The last settle's frontier: every hour before it is in the echoes table."""
    rows = query(BoundQuery(f"SELECT argMax(frontier, settled_at), count() "
                            f"FROM {database}.{ECHOES_SETTLED}"))
    return _utc(rows[0][0]) if rows and rows[0][1] else None


def settle(query: RunQuery, command: RunCommand, database: str, table: str,
           now: datetime) -> Settled:
    """Build the hours closed since the last settle, and rebuild those that got late mentions.

    A store's first settle builds every closed hour from its oldest mention on (the backfill
    of a store made before this table).
    """
    marker = _utc(query(BoundQuery("SELECT now64(3)"))[0][0])
    closed = floor_hour(now)
    last = query(BoundQuery(f"SELECT argMax((settled_at, frontier), settled_at), count() "
                            f"FROM {database}.{ECHOES_SETTLED}"))[0]
    hours: set[datetime] = set()
    if last[1]:
        settled_at, start = _utc(last[0][0]), _utc(last[0][1])
        late = query(BoundQuery(
            f"SELECT DISTINCT toStartOfHour(created_at) FROM {table} "
            f"WHERE stored_at >= {{settled:{_DT}}} AND created_at < {{frontier:{_DT}}}",
            {"settled": clickhouse_time(settled_at), "frontier": clickhouse_time(start)}))
        hours.update(_utc(hour) for (hour,) in late)
    else:
        first = query(BoundQuery(f"SELECT min(created_at), count() FROM {table}"))[0]
        start = floor_hour(_utc(first[0])) if first[1] else closed
    reached = max(start, closed)
    while start < closed:
        hours.add(start)
        start += HOUR
    for ranges in _spans(sorted(hours)):
        command(build_sql(database, table, ranges))
    command(BoundQuery(
        f"INSERT INTO {database}.{ECHOES_SETTLED} (settled_at, frontier) "
        f"SELECT {{settled:{_DT}}}, {{frontier:{_DT}}}",
        {"settled": clickhouse_time(marker), "frontier": clickhouse_time(reached)}))
    return Settled(len(hours), reached)


def _utc(value: datetime) -> datetime:
    """A time the engine answered, timezone-aware (UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _spans(hours: Sequence[datetime]) -> list[list[Hours]]:
    """``hours`` (sorted) as ranges of consecutive hours, a build span's worth per group."""
    groups: list[list[Hours]] = []
    for hour in hours:
        if groups and hour - groups[-1][0][0] < _BUILD_SPAN:
            group = groups[-1]
            if group[-1][1] == hour:
                group[-1] = (group[-1][0], hour + HOUR)
            else:
                group.append((hour, hour + HOUR))
        else:
            groups.append([(hour, hour + HOUR)])
    return groups
