"""The listening store's Python API over one ClickHouse client, embedded or remote.

``PIPELINE_STORE_URL`` picks the engine: ``chdb:///path/to/folder`` runs ClickHouse's engine
in this process (chDB, data in that folder, kept across restarts), ``http(s)://host:8123/db``
talks to a ClickHouse server. Both go through ``clickhouse-connect``'s client (its chDB
backend for the first), so the DDL, the queries, the parameter binding and the insert format
are the same code on both.

Measured here (``benchmarks/README.md``, chDB 26.9): an embedded folder is locked by the
process that opened it (a second process fails with ``Cannot lock file .../status``, read-only
mode included) until its client closes; while one is open the process can open no other folder;
rows whose insert returned survive a SIGKILL. So exactly one process owns an embedded store:
the worker that runs the ``store`` stage, which then also serves the desk
(``PIPELINE_DESK_IN_WORKER``); with a ClickHouse server any number of sinks and desks share
it.
"""

from __future__ import annotations

import fcntl
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import orjson

from pipeline.config import Settings
from pipeline.stages.alerts.context import ENGAGEMENT_REACH
from pipeline.stages.leaders import InsideVoices
from pipeline.store import echoes, incidents, leaders, queries, sql
from pipeline.store.echoes import ECHOES
from pipeline.store.incidents import IncidentsQuery
from pipeline.store.queries import (
    BoundQuery,
    Cursor,
    MentionsQuery,
    ShareOfVoiceQuery,
    TermsQuery,
    TopVoicesQuery,
    VolumeQuery,
)
from pipeline.store.rows import SENTIMENT_LABELS
from pipeline.store.tables import (
    BY_TIME,
    INCIDENTS,
    TABLE,
    TTL_COLUMNS,
    by_time_select,
    schema_statements,
    ttl,
)

log = logging.getLogger(__name__)

_IDENTIFIER: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# embedded folders this process opened: its own lock on one is not another process's
_OPEN_HERE: set[Path] = set()
# a rising term needs this many mentions in the period, so one tweet is not a trend
RISING_MIN_COUNT: Final = 3


class StoreUnavailable(RuntimeError):
    """The store cannot be reached (down, locked by another process); worth retrying."""


class StoreRejected(RuntimeError):
    """The store refused a statement or its data; retrying the same thing will not help."""


@dataclass(frozen=True, slots=True)
class StoreLocation:
    """Where the store lives, parsed from ``PIPELINE_STORE_URL``."""

    url: str
    database: str
    embedded_path: Path | None

    @classmethod
    def parse(cls, url: str, default_database: str = "mentions") -> StoreLocation:
        """Read ``chdb:///folder`` or ``http(s)://host:port/database``.

        >>> StoreLocation.parse("chdb:///var/lib/mentions").embedded_path
        PosixPath('/var/lib/mentions')
        >>> StoreLocation.parse("https://ch.internal:8443/listening").database
        'listening'
        """
        parts = urlsplit(url)
        if parts.scheme == "chdb":
            if not parts.path.startswith("/") or parts.netloc:
                raise ValueError(f"store URL {url!r}: write chdb:///absolute/folder")
            return cls(url, default_database, Path(parts.path))
        if parts.scheme in ("http", "https") and parts.hostname:
            database = parts.path.strip("/") or default_database
            if not _IDENTIFIER.match(database):
                raise ValueError(f"store URL {url!r}: database {database!r} is not a name")
            return cls(url, database, None)
        raise ValueError(f"store URL {url!r}: expected chdb:///folder or "
                         "http(s)://host:port/database")

    def __str__(self) -> str:
        if self.embedded_path is not None:
            return f"chDB folder {self.embedded_path}"
        parts = urlsplit(self.url)
        return f"ClickHouse {parts.scheme}://{parts.hostname}:{parts.port or ''}/{self.database}"


def connect(location: StoreLocation, settings: Settings) -> Any:
    """A ``clickhouse-connect`` client for the location (chDB in-process, or HTTP)."""
    import clickhouse_connect
    from clickhouse_connect.driver.exceptions import ClickHouseError

    in_use = StoreUnavailable(
        f"{location} is open in another process (a worker running the store stage, a desk, "
        "or a store command): an embedded store opens in one process at a time, so read it "
        "through that process's desk, or stop it first")
    embedded = location.embedded_path
    if embedded is not None and embedded not in _OPEN_HERE and held_elsewhere(embedded):
        raise in_use
    try:
        if embedded is not None:
            embedded.mkdir(parents=True, exist_ok=True)
            client = clickhouse_connect.get_client(dsn=f"chdb://{embedded}")
            _OPEN_HERE.add(embedded)
            return client
        parts = urlsplit(location.url)
        # the sink and the desk say themselves, once, that a server is down; the HTTP layers'
        # own warnings would repeat it on every retry
        for noisy in ("clickhouse_connect.driver", "urllib3.connectionpool"):
            logging.getLogger(noisy).setLevel(logging.ERROR)
        return clickhouse_connect.get_client(
            host=parts.hostname, port=parts.port or (8443 if parts.scheme == "https" else 8123),
            secure=parts.scheme == "https", username=settings.store_user,
            password=settings.store_password.get_secret_value(),
            connect_timeout=settings.store_timeout_s, send_receive_timeout=settings.store_timeout_s,
        )
    except (ClickHouseError, RuntimeError, OSError) as error:
        if embedded is not None and held_elsewhere(embedded):
            raise in_use from error
        raise StoreUnavailable(f"{location}: {_first_line(error)}") from error


def held_elsewhere(folder: Path) -> bool:
    """True when another process holds the embedded store in ``folder``.

    ClickHouse keeps an exclusive ``flock`` on the folder's ``status`` file while it runs.
    """
    try:
        with (folder / "status").open("rb") as status:
            fcntl.flock(status, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(status, fcntl.LOCK_UN)
    except BlockingIOError:
        return True
    except OSError:
        return False
    return False


class ListeningStore:
    """Every scored mention, kept; the queries of the desk, the CLI and the sink."""

    def __init__(self, client: Any, location: StoreLocation, *, retention_days: int) -> None:
        self.client = client
        self.location = location
        self.table = f"{location.database}.{TABLE}"
        self.by_time = f"{location.database}.{BY_TIME}"
        self.incident_table = f"{location.database}.{INCIDENTS}"
        self.retention_days = retention_days

    @classmethod
    def open(cls, settings: Settings, *, database: str | None = None) -> ListeningStore:
        """Connect to the configured store and create or update its schema.

        ``database`` overrides the URL's (tests keep apart in one embedded folder this way:
        a process opens one chDB folder in its life).
        """
        location = StoreLocation.parse(settings.store_url_or_default)
        if database is not None:
            if not _IDENTIFIER.match(database):
                raise ValueError(f"database {database!r} is not a name")
            location = StoreLocation(location.url, database, location.embedded_path)
        store = cls(connect(location, settings), location,
                    retention_days=settings.store_retention_days)
        store.ensure_schema()
        return store

    def ensure_schema(self) -> None:
        """Create the database and tables if missing; apply a changed retention."""
        engines = self._engines()
        for statement in schema_statements(self.location.database, self.retention_days):
            self.command(statement)
        if TABLE in engines and BY_TIME not in engines:
            log.warning("store: filling %s from the stored mentions (once)", self.by_time)
            self.command(f"INSERT INTO {self.by_time} {by_time_select(self.table)}")
        if TABLE in engines and ECHOES not in engines:
            log.warning("store: building %s from the stored mentions (once)", ECHOES)
            self.settle_echoes()
        wanted = f"toIntervalDay({self.retention_days})"
        for name, engine in self._engines().items():
            if "TTL" in engine and wanted not in engine:
                log.warning("store: %s retention changed to %d days", name, self.retention_days)
                self.command(f"ALTER TABLE {self.location.database}.{name} "
                             f"MODIFY TTL {ttl(self.retention_days, TTL_COLUMNS[name])}")

    def _engines(self) -> dict[str, str]:
        """The store's tables and their engine definitions."""
        return dict(self.query(BoundQuery(
            "SELECT name, engine_full FROM system.tables WHERE database = {db:String} "
            "AND name IN {names:Array(String)}",
            {"db": self.location.database, "names": list(TTL_COLUMNS)},
        )))

    def close(self) -> None:
        """Release the client (and, embedded, nothing else: the engine lives with the process)."""
        self.client.close()

    # -- low level -------------------------------------------------------------------------

    def command(self, sql: str, parameters: dict[str, Any] | None = None) -> None:
        """Run a statement that returns nothing (``parameters``: its bound values)."""
        self._call(self.client.command, sql, parameters=parameters)

    def settle_echoes(self, now: datetime | None = None) -> echoes.Settled:
        """Bring the leaders' echoes table up to the hours closed at ``now`` (default: now).

        The sink calls it every so often; a store made before the table builds it at open.
        """
        return echoes.settle(self.query, lambda bound: self.command(bound.sql, bound.parameters),
                             self.location.database, self.table, now or utc_now())

    def query(self, bound: BoundQuery) -> list[tuple[Any, ...]]:
        """Rows of a bound query."""
        result = self._call(self.client.query, bound.sql, parameters=bound.parameters)
        return list(result.result_rows)

    def insert(self, payload: bytes, table: str = TABLE) -> None:
        """Insert ``JSONEachRow`` rows into :data:`TABLE` or :data:`INCIDENTS`.

        Mentions' rows come from :class:`~pipeline.store.rows.RowEncoder`, alerts' from
        :func:`~pipeline.store.incident_rows.alert_rows`.
        """
        if payload:
            self._call(self.client.raw_insert, f"{self.location.database}.{table}",
                       insert_block=payload, fmt="JSONEachRow")

    def _call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

        try:
            return method(*args, **kwargs)
        except OperationalError as error:
            raise StoreUnavailable(f"{self.location}: {_first_line(error)}") from error
        except DatabaseError as error:
            raise StoreRejected(_first_line(error)) from error

    # -- queries ---------------------------------------------------------------------------

    def ping(self) -> None:
        """Touch the table without counting it; raises when the store cannot answer."""
        self.query(BoundQuery(f"SELECT 1 FROM {self.table} LIMIT 1"))

    def count(self) -> int:
        """How many distinct mentions are stored."""
        return int(self.query(BoundQuery(f"SELECT uniqExact(id) FROM {self.table}"))[0][0])

    def alert_count(self) -> int:
        """How many distinct alerts are stored."""
        return int(self.query(BoundQuery(f"SELECT count() FROM {self.incident_table} FINAL"))[0][0])

    def mention_ids(self) -> set[str]:
        """Every stored mention's id (for checks on small stores, such as the demo's)."""
        return {row[0] for row in self.query(BoundQuery(f"SELECT DISTINCT id FROM {self.table}"))}

    def original_authors(self, ids: Sequence[str], since_s: float,
                         until_s: float) -> dict[str, str]:
        """The authors of the stored mentions ``ids`` made between the two Unix seconds."""
        return dict(self.query(sql.original_authors_sql(
            self.table, ids, datetime.fromtimestamp(since_s, UTC),
            datetime.fromtimestamp(until_s, UTC))))

    def mentions(self, query: MentionsQuery) -> dict[str, Any]:
        """A page of mentions as the pipeline emitted them, newest first, and the next cursor.

        The page's keys are found without ``FINAL`` and its mentions then read by key: read
        ``FINAL``, a rare word over every brand read every granule it might be in.
        """
        rows = self._newest_first(query)
        page = rows[:query.limit]
        more = len(rows) > query.limit
        return {
            "mentions": [orjson.loads(mention) for mention, _, _ in page],
            "next": Cursor(int(page[-1][1]), page[-1][2]).encode() if more else None,
        }

    def _newest_first(self, query: MentionsQuery) -> list[tuple[Any, ...]]:
        # the newest rows' keys first (fast, but a redelivered mention may be two rows), then
        # those mentions read FINAL by key; where that is not exactly the page (many repeated
        # rows, or a newer copy that no longer matches) the whole query is read FINAL
        wanted = query.limit + 1
        fetch = 2 * wanted
        keyed = self.table if query.filter.brands else self.by_time
        found = self.query(sql.mention_keys_sql(keyed, query, fetch))
        keys = list(dict.fromkeys((brand, int(created_ms), mention_id)
                                  for brand, created_ms, mention_id in found))[:wanted]
        if not keys:
            return []
        if len(keys) == wanted or len(found) < fetch:
            rows = self.query(sql.page_sql(self.table, query, keys))
            if len(rows) == len(keys):
                return rows
        return self.query(sql.mentions_sql(self.table, query))

    def volume(self, query: VolumeQuery) -> dict[str, Any]:
        """Mentions per bucket by sentiment (copies count as volume), empty buckets included."""
        counts: dict[int, dict[str, int]] = {}
        for bucket, label, mentions in self.query(sql.volume_sql(self.table, query)):
            counts.setdefault(int(bucket), {})[label or "unscored"] = int(mentions)
        buckets = []
        for start in queries.bucket_starts(query.period, query.interval, query.tz):
            by_label = counts.get(int(start.timestamp()), {})
            row = {label: by_label.get(label, 0) for label in (*SENTIMENT_LABELS, "unscored")}
            buckets.append({"start": start.isoformat(), "total": sum(row.values()), **row})
        return {**_period_fields(query.period, query.tz), "interval": query.interval,
                "buckets": buckets}

    def share_of_voice(self, query: ShareOfVoiceQuery) -> dict[str, Any]:
        """Each brand's share of the mentions and of the negative ones, overall and per bucket.

        A mention naming two of the brands counts for both.
        """
        counts: dict[int, dict[str, tuple[int, int]]] = {}
        for bucket, brand, mentions, negative in self.query(
                sql.share_of_voice_sql(self.table, query)):
            counts.setdefault(int(bucket), {})[brand] = (int(mentions), int(negative))
        overall: dict[str, tuple[int, int]] = {}
        for by_brand in counts.values():
            for brand, (mentions, negative) in by_brand.items():
                total, total_negative = overall.get(brand, (0, 0))
                overall[brand] = (total + mentions, total_negative + negative)
        answer: dict[str, Any] = {
            **_period_fields(query.period, query.tz), "interval": query.interval,
            "brands": list(query.brands), "total": _shares(query.brands, overall),
        }
        if query.interval is not None:
            answer["buckets"] = [
                {"start": start.isoformat(),
                 "brands": _shares(query.brands, counts.get(int(start.timestamp()), {}))}
                for start in queries.bucket_starts(query.period, query.interval, query.tz)
            ]
        return answer

    def top_voices(self, query: TopVoicesQuery) -> dict[str, Any]:
        """Authors ranked by reach, with their mention count and sentiment mix."""
        rows = self.query(sql.top_voices_sql(self.table, query, ENGAGEMENT_REACH))
        voices = [{
            "author_id": author_id, "handle": handle or None, "followers": int(followers),
            "mentions": int(mentions), "copies": int(copies), "engagement": int(engagement),
            "reach": round(float(reach), 1),
            "sentiment": {"negative": int(negative), "neutral": int(neutral),
                          "positive": int(positive)},
        } for (author_id, handle, followers, mentions, engagement, negative, neutral, positive,
               copies, reach) in rows]
        return {**_period_fields(query.period, None), "voices": voices}

    def leaders(self, query: leaders.LeadersQuery,
                inside: InsideVoices | None = None) -> dict[str, Any]:
        """A brand's opinion leaders, inside and outside apart, and the rising ones.

        ``inside``: the brand's own accounts and employees (:mod:`pipeline.store.leaders`).
        """
        database = self.location.database
        source = leaders.EchoSource(f"{database}.{echoes.ECHOES}",
                                    echoes.frontier(self.query, database))
        return leaders.leaders_answer(self.query, self.table, query, inside or InsideVoices(),
                                      source)

    def terms(self, query: TermsQuery) -> dict[str, Any]:
        """Top terms and hashtags of the period, and those that rose most against the last.

        The period before is of equal length and ends where this one starts.
        """
        rows = [(term, int(current), int(previous)) for term, current, previous in
                self.query(sql.terms_sql(self.table, query))]

        def listed(candidates: list[tuple[str, int, int]]) -> list[dict[str, Any]]:
            return [{"term": term, "count": current, "previous": previous}
                    for term, current, previous in candidates[:query.limit]]

        rising = sorted(
            (row for row in rows if row[1] >= RISING_MIN_COUNT and row[1] > row[2]),
            key=lambda row: (-rise_score(row[1], row[2]), -row[1], row[0]),
        )
        return {
            **_period_fields(query.period, None),
            "previous": {"since": query.period.previous().since.isoformat(),
                         "until": query.period.since.isoformat()},
            "terms": listed([row for row in rows if row[1] and not row[0].startswith("#")]),
            "hashtags": listed([row for row in rows if row[1] and row[0].startswith("#")]),
            "rising": listed(rising),
        }


    def incidents(self, query: IncidentsQuery) -> dict[str, Any]:
        """A page of incidents, newest update first (:mod:`pipeline.store.incidents`)."""
        return incidents.incidents_page(
            self.query(incidents.incidents_sql(self.incident_table, query)), query.limit)

    def incident(self, incident_id: str) -> dict[str, Any] | None:
        """An incident and its alerts in sequence order; ``None`` when there is no such one."""
        return incidents.incident_detail(
            [alert for (alert,) in self.query(incidents.history_sql(self.incident_table,
                                                                   incident_id))])


def rise_score(current: int, previous: int) -> float:
    """How surprising a term's count is against the period before.

    The rise in units of the Poisson spread of the previous count (30 after 10 outranks 3
    after 0).

    >>> rise_score(30, 10) > rise_score(3, 0)
    True
    """
    return (current - previous) / math.sqrt(previous + 1)


def _shares(brands: tuple[str, ...], counts: dict[str, tuple[int, int]]) -> dict[str, Any]:
    total = sum(counts.get(brand, (0, 0))[0] for brand in brands)
    negative = sum(counts.get(brand, (0, 0))[1] for brand in brands)
    return {brand: {
        "mentions": counts.get(brand, (0, 0))[0],
        "share": round(counts.get(brand, (0, 0))[0] / total, 4) if total else 0.0,
        "negative": counts.get(brand, (0, 0))[1],
        "negative_share": round(counts.get(brand, (0, 0))[1] / negative, 4) if negative else 0.0,
    } for brand in brands}


def _period_fields(period: queries.Period, zone: Any) -> dict[str, Any]:
    fields = {"since": period.since.isoformat(), "until": period.until.isoformat()}
    if zone is not None:
        fields["tz"] = zone.key
    return fields


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:500]


def utc_now() -> datetime:
    """The wall clock, as the queries' default end of period."""
    return datetime.now(UTC)
