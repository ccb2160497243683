"""Incidents: their parameters (pure) and their queries on the embedded engine (chDB)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pipeline.config import Settings
from pipeline.stages.alerts.record import OPENED, RESOLVED, UPDATED
from pipeline.store.client import ListeningStore
from pipeline.store.incident_rows import alert_rows
from pipeline.store.incidents import (
    IncidentCursor,
    incident_record,
    parse_incident_id,
    parse_incidents_query,
)
from pipeline.store.queries import BadParameter, BoundQuery, Cursor
from pipeline.store.tables import INCIDENTS
from tests.incident_alerts import incident, listed_incidents, newest_update_first

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
LISTED = listed_incidents(NOW)
ALERTS = [alert for alerts in LISTED for alert in alerts]

# -- parameters ---------------------------------------------------------------------------


@pytest.mark.parametrize(("params", "field"), [
    ({"status": "closed"}, "status"),
    ({"kind": "crisis,outage"}, "kind"),
    ({"limit": "0"}, "limit"),
    ({"limit": "201"}, "limit"),
    ({"cursor": "not-a-cursor"}, "cursor"),
    ({"since": "last week"}, "since"),
    ({"since": "2026-12-06", "until": "2026-12-01"}, "since"),
    ({"since": "2024-01-01"}, "since"),
    ({"q": "factura"}, "q"),
    ({"tz": "Mars/Olympus"}, "tz"),
])
def test_a_bad_incidents_parameter_names_its_field(params: dict[str, str], field: str) -> None:
    with pytest.raises(BadParameter) as error:
        parse_incidents_query(params, NOW)
    assert error.value.field == field and error.value.reason


def test_incidents_default_to_the_last_30_days_and_50_of_any_kind() -> None:
    query = parse_incidents_query({}, NOW)
    assert (query.period.since, query.period.until) == (NOW - timedelta(days=30), NOW)
    assert (query.brands, query.status, query.kinds, query.limit, query.cursor) == (
        (), None, (), 50, None)
    asked = parse_incidents_query({"brand": "a,b", "status": "resolved", "kind": "crisis",
                                   "since": "2026-12-01", "tz": "Europe/Madrid",
                                   "limit": "7"}, NOW)
    assert (asked.brands, asked.status, asked.kinds, asked.limit) == (
        ("a", "b"), "resolved", ("crisis",), 7)
    assert asked.period.since == datetime(2026, 11, 30, 23, 0, tzinfo=UTC)


def test_an_incident_cursor_round_trips() -> None:
    cursor = IncidentCursor(1_796_000_000_123, "telvia-20261201T0900Z")
    assert IncidentCursor.decode(cursor.encode()) == cursor
    assert parse_incidents_query({"cursor": cursor.encode()}, NOW).cursor == cursor
    # the mention cursor's form: a forged time outside the store's range is refused alike
    with pytest.raises(BadParameter):
        IncidentCursor.decode(Cursor(-5, "telvia-20261201T0900Z").encode())


def test_an_incident_id_is_checked_and_the_detail_takes_no_parameters() -> None:
    assert parse_incident_id(" telvia-20261201T0900Z ", {}) == "telvia-20261201T0900Z"
    for incident_id, params, field in (("", {}, "incident_id"), ("x" * 201, {}, "incident_id"),
                                       ("telvia-1", {"limit": "5"}, "limit")):
        with pytest.raises(BadParameter) as error:
            parse_incident_id(incident_id, params)
        assert error.value.field == field


def test_an_incident_is_its_latest_alert_with_when_it_opened_changed_and_ended() -> None:
    opened, updated = incident("telvia", NOW, (OPENED, UPDATED))
    record = incident_record(updated, opened["window_end"], 2)
    assert record == {**updated, "opened_at": opened["window_end"],
                      "updated_at": updated["window_end"], "resolved_at": None, "updates": 2}
    resolved = incident("telvia", NOW, (OPENED, RESOLVED))[1]
    assert incident_record(resolved, opened["window_end"], 2)["resolved_at"] == resolved[
        "window_end"]


# -- on the store -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def store(chdb_store_url: str) -> Iterator[ListeningStore]:
    # the alerts have fixed dates: a retention of ten years keeps them whatever today is
    store = ListeningStore.open(Settings(store_url=chdb_store_url, store_retention_days=3650),
                                database="unit_incidents")
    store.command(f"TRUNCATE TABLE {store.incident_table}")
    # every alert twice and the first incidents' a third time: redeliveries
    for alerts in (ALERTS, ALERTS, ALERTS[:5]):
        batch = alert_rows(alerts)
        assert batch.rejects == []
        store.insert(batch.payload, INCIDENTS)
    yield store


def listed(store: ListeningStore, **params: str) -> list[dict[str, Any]]:
    """Every incident a query lists, following the cursor to the end."""
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = store.incidents(parse_incidents_query(
            {**params, **({"cursor": cursor} if cursor else {})}, NOW))
        assert set(page) == {"incidents", "next"}
        found += page["incidents"]
        cursor = page["next"]
        if cursor is None:
            return found
        assert len(found) <= len(LISTED), "the cursor does not advance"


def expected(keep: Any = lambda alerts: True, since: timedelta = timedelta(days=30)) -> list[str]:
    """Ids of the incidents ``keep`` selects, last updated in the period, newest first."""
    return newest_update_first([alerts for alerts in LISTED if keep(alerts)], NOW - since, NOW)


def test_an_alert_stored_three_times_is_one_row(store: ListeningStore) -> None:
    assert store.alert_count() == len(ALERTS)
    [(rows,)] = store.query(BoundQuery(
        f"SELECT count() FROM {store.incident_table} FINAL WHERE idempotency_key = {{key:String}}",
        {"key": ALERTS[0]["idempotency_key"]}))
    assert rows == 1


def test_incidents_are_listed_newest_update_first_as_their_latest_alert(
        store: ListeningStore) -> None:
    found = listed(store)
    assert [item["incident_id"] for item in found] == expected()
    for item in found:
        alerts = next(alerts for alerts in LISTED
                      if alerts[0]["incident_id"] == item["incident_id"])
        assert item == incident_record(alerts[-1], alerts[0]["window_end"], len(alerts))


@pytest.mark.parametrize(("params", "keep"), [
    ({"brand": "telvia,acme-mobile"},
     lambda alerts: alerts[0]["brand"] in ("telvia", "acme-mobile")),
    ({"status": "open"}, lambda alerts: alerts[-1]["status"] != RESOLVED),
    ({"status": "resolved"}, lambda alerts: alerts[-1]["status"] == RESOLVED),
    # the latest alert's kind: a spike that became a crisis is a crisis
    ({"kind": "crisis"}, lambda alerts: alerts[-1]["kind"] == "crisis"),
    ({"kind": "volume_spike", "brand": "acme-mobile"}, lambda alerts: False),
    ({"brand": "nimbus-bank", "status": "open"}, lambda alerts: False),
])
def test_filters_select_by_the_latest_alert(
        store: ListeningStore, params: dict[str, str], keep: Any) -> None:
    assert [item["incident_id"] for item in listed(store, **params)] == expected(keep)


def test_the_period_selects_by_the_latest_update(store: ListeningStore) -> None:
    everything = expected(since=timedelta(days=60))
    assert [item["incident_id"] for item in listed(
        store, since=(NOW - timedelta(days=60)).isoformat())] == everything
    assert len(everything) == len(LISTED)
    # the acme crisis opened 4 hours ago and resolved 15 minutes later
    window = {"since": (NOW - timedelta(hours=4)).isoformat(),
              "until": (NOW - timedelta(hours=3)).isoformat()}
    assert [item["incident_id"] for item in listed(store, **window)] == [
        LISTED[0][0]["incident_id"]]


def test_pages_hold_every_incident_once(store: ListeningStore) -> None:
    pages, cursor = [], None
    while True:
        page = store.incidents(parse_incidents_query(
            {"limit": "5", **({"cursor": cursor} if cursor else {})}, NOW))
        pages.append([item["incident_id"] for item in page["incidents"]])
        cursor = page["next"]
        if cursor is None:
            break
    assert [len(page) for page in pages] == [5, 5, 5]
    assert [incident_id for page in pages for incident_id in page] == expected()


def test_an_incident_comes_with_its_history_in_sequence_order(store: ListeningStore) -> None:
    alerts = LISTED[1]
    detail = store.incident(alerts[0]["incident_id"])
    assert detail == {"incident": incident_record(alerts[-1], alerts[0]["window_end"], 2),
                      "history": alerts}
    assert detail["incident"]["kind"] == "crisis"
    assert detail["incident"]["previous_kind"] == "volume_spike"


def test_an_unknown_incident_is_none(store: ListeningStore) -> None:
    assert store.incident("telvia-19990101T0000Z") is None
    assert store.incident("' OR 1=1 --") is None

