"""The incident queries: their parameters, their SQL, and the incidents they answer (pure).

An incident is the alerts the crisis stage emitted for it (``incident_alerts``, a row per
alert: :mod:`pipeline.store.incident_rows`). The desk shows an incident as its latest alert,
exactly as :meth:`~pipeline.stages.alerts.record.Alert.to_dict` emitted it, plus four fields
(:func:`incident_record`): ``opened_at`` (its first alert's ``window_end``), ``updated_at``
(its latest alert's), ``resolved_at`` (the latest's, once resolved; else null) and ``updates``
(how many alerts it had).

As in :mod:`pipeline.store.queries`, ``parse_*`` functions read request parameters or raise
:class:`~pipeline.store.queries.BadParameter`, and ``*_sql`` functions return statements whose
every given value is a bound ``{name:Type}`` placeholder. Rows are read ``FINAL``, so an alert
delivered twice counts once; the table holds a few rows per incident, so an incident's latest
alert is found by aggregating its rows at query time rather than kept in a second table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

import orjson

from pipeline.stages.alerts.record import KINDS, RESOLVED
from pipeline.store.queries import BadParameter, BoundQuery, Cursor, Period, RequestParams
from pipeline.store.sql import clickhouse_time

Status = Literal["open", "resolved"]
STATUSES: Final = ("open", "resolved")
DEFAULT_INCIDENTS_PERIOD: Final = timedelta(days=30)
MAX_INCIDENTS_PAGE: Final = 200
MAX_INCIDENT_ID: Final = 200
INCIDENTS_PARAMS: Final = ("brand", "status", "kind", "since", "until", "tz", "limit", "cursor")
_DT: Final = "DateTime64(3, 'UTC')"
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class IncidentCursor:
    """Where a page of incidents ended: the last one's latest update (Unix ms) and its id.

    The token has the mention cursor's form, so both are read by one decoder.
    """

    updated_ms: int
    incident_id: str

    def encode(self) -> str:
        """The opaque token a client sends back as ``cursor``."""
        return Cursor(self.updated_ms, self.incident_id).encode()

    @classmethod
    def decode(cls, token: str) -> IncidentCursor:
        """Read a token made by :meth:`encode`; ``BadParameter`` for anything else."""
        cursor = Cursor.decode(token)
        return cls(cursor.created_ms, cursor.mention_id)


@dataclass(frozen=True, slots=True)
class IncidentsQuery:
    """A page of incidents whose latest update falls in ``period``, newest update first.

    Empty tuples and ``None`` mean any; ``status`` and ``kinds`` are the latest alert's
    (``open``: any status but resolved).
    """

    period: Period
    brands: tuple[str, ...] = ()
    status: Status | None = None
    kinds: tuple[str, ...] = ()
    limit: int = 50
    cursor: IncidentCursor | None = None


def parse_incidents_query(params: Mapping[str, str], now: datetime) -> IncidentsQuery:
    """``GET /api/incidents``: ``brand``, ``status``, ``kind``, the period, ``limit``, ``cursor``.

    The period (``since``, ``until``, ``tz`` as in the mention queries) defaults to the 30 days
    before ``now``; ``limit`` is 1 to 200 (default 50).

    >>> query = parse_incidents_query({"brand": "telvia,acme-mobile", "status": "open"},
    ...                               datetime.fromisoformat("2026-12-06T12:00:00+00:00"))
    >>> query.brands, query.status, query.period.since.isoformat()
    (('telvia', 'acme-mobile'), 'open', '2026-11-06T12:00:00+00:00')
    """
    reader = RequestParams(params, INCIDENTS_PARAMS)
    period = reader.period(now, reader.zone(), default=DEFAULT_INCIDENTS_PERIOD)
    assert period is not None
    cursor = reader.text("cursor")
    status: Status | None = reader.one_of("status", STATUSES, None)
    return IncidentsQuery(
        period=period, brands=reader.choices("brand"), status=status,
        kinds=reader.choices("kind", KINDS),
        limit=reader.integer("limit", 50, 1, MAX_INCIDENTS_PAGE),
        cursor=IncidentCursor.decode(cursor) if cursor else None,
    )


def parse_incident_id(incident_id: str, params: Mapping[str, str]) -> str:
    """``GET /api/incidents/{incident_id}``: the id (the endpoint takes no parameters).

    >>> parse_incident_id("telvia-20261201T0900Z", {})
    'telvia-20261201T0900Z'
    """
    if params:
        raise BadParameter(sorted(params)[0], "unknown parameter; this endpoint takes none")
    incident_id = incident_id.strip()
    if not incident_id:
        raise BadParameter("incident_id", "give an incident id")
    if len(incident_id) > MAX_INCIDENT_ID:
        raise BadParameter("incident_id", f"longer than {MAX_INCIDENT_ID} characters")
    return incident_id


def incidents_sql(table: str, query: IncidentsQuery) -> BoundQuery:
    """Each matching incident's latest alert, first ``window_end``, alert count and sort key.

    Rows start ``(incident_id, latest alert JSON, opened_at, updates, updated_ms)``, newest
    update first, one more than the page (is there a next page?). An incident started before it
    was last updated, so only incidents started before ``until`` are read.
    """
    parameters: dict[str, Any] = {
        "since": clickhouse_time(query.period.since),
        "until": clickhouse_time(query.period.until),
    }
    where = [f"started_at < {{until:{_DT}}}"]
    having = [f"updated_at >= {{since:{_DT}}}", f"updated_at < {{until:{_DT}}}"]
    if query.brands:
        where.append("brand IN {brands:Array(String)}")
        parameters["brands"] = list(query.brands)
    if query.status is not None:
        having.append(f"latest_status {'=' if query.status == RESOLVED else '!='} 'resolved'")
    if query.kinds:
        having.append("latest_kind IN {kinds:Array(String)}")
        parameters["kinds"] = list(query.kinds)
    if query.cursor is not None:
        having.append(f"(updated_at, incident_id) < "
                      f"({{cursor_at:{_DT}}}, {{cursor_id:String}})")
        parameters["cursor_at"] = _milliseconds(query.cursor.updated_ms)
        parameters["cursor_id"] = query.cursor.incident_id
    return BoundQuery(
        f"SELECT incident_id, argMax(alert, sequence) AS latest, "
        f"argMin(JSONExtractString(alert, 'window_end'), sequence) AS opened_at, "
        f"count() AS updates, toUnixTimestamp64Milli(updated_at) AS updated_ms, "
        f"argMax(window_end, sequence) AS updated_at, "
        f"argMax(status, sequence) AS latest_status, argMax(kind, sequence) AS latest_kind "
        f"FROM {table} FINAL WHERE {' AND '.join(where)} "
        f"GROUP BY incident_id HAVING {' AND '.join(having)} "
        f"ORDER BY updated_at DESC, incident_id DESC LIMIT {query.limit + 1}",
        parameters,
    )


def history_sql(table: str, incident_id: str) -> BoundQuery:
    """An incident's alerts as emitted, in sequence order."""
    return BoundQuery(
        f"SELECT alert FROM {table} FINAL WHERE incident_id = {{incident_id:String}} "
        f"ORDER BY sequence",
        {"incident_id": incident_id},
    )


def incident_record(latest: Mapping[str, Any], opened_at: str, updates: int) -> dict[str, Any]:
    """An incident as the desk shows it: its latest alert and when it opened, changed, ended.

    >>> incident_record({"status": "resolved", "window_end": "2026-12-01T10:00:00+00:00"},
    ...                 "2026-12-01T09:05:00+00:00", 3)["resolved_at"]
    '2026-12-01T10:00:00+00:00'
    """
    updated_at = latest["window_end"]
    return {
        **latest,
        "opened_at": opened_at,
        "updated_at": updated_at,
        "resolved_at": updated_at if latest["status"] == RESOLVED else None,
        "updates": updates,
    }


def incidents_page(rows: Sequence[Sequence[Any]], limit: int) -> dict[str, Any]:
    """``{"incidents": [...], "next": cursor or None}`` from :func:`incidents_sql`'s rows."""
    page = rows[:limit]
    last = page[-1] if page else None
    return {
        "incidents": [incident_record(orjson.loads(latest), opened_at, int(updates))
                      for _, latest, opened_at, updates, *_ in page],
        "next": (IncidentCursor(int(last[4]), last[0]).encode()
                 if last is not None and len(rows) > limit else None),
    }


def incident_detail(alerts: Sequence[str | bytes]) -> dict[str, Any] | None:
    """``{"incident": ..., "history": [...]}`` from an incident's alerts in sequence order.

    ``None`` when there are none (no such incident).
    """
    if not alerts:
        return None
    history = [orjson.loads(alert) for alert in alerts]
    return {"incident": incident_record(history[-1], history[0]["window_end"], len(history)),
            "history": history}


def _milliseconds(unix_ms: int) -> str:
    """A bound ``DateTime64(3)`` value from Unix milliseconds, exactly (no float on the way)."""
    return clickhouse_time(_EPOCH + timedelta(milliseconds=unix_ms))
