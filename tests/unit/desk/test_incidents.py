"""The incidents endpoints over HTTP: a real uvicorn, a real chDB store, the console's contract."""

from datetime import timedelta
from typing import Any

import httpx
import pytest

from pipeline.stages.alerts.record import RESOLVED
from tests.incident_alerts import listed_incidents, newest_update_first
from tests.unit.desk.conftest import NOW
from tests.unit.desk.test_app import error_of

LISTED = listed_incidents(NOW)
# what an incident adds to its latest alert (README: Listening store and desk)
INCIDENT_FIELDS = {"opened_at", "updated_at", "resolved_at", "updates"}


def listed(desk: httpx.Client, **params: str) -> list[dict[str, Any]]:
    """Every incident a query lists, following the cursor to the end."""
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        answer = desk.get("/api/incidents",
                          params={**params, **({"cursor": cursor} if cursor else {})})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert set(body) == {"incidents", "next"}
        found += body["incidents"]
        cursor = body["next"]
        if cursor is None:
            return found
        assert len(found) <= len(LISTED), "the cursor does not advance"


def ids(incidents: list[dict[str, Any]]) -> list[str]:
    return [incident["incident_id"] for incident in incidents]


def test_an_incident_is_its_latest_alert_and_four_fields(desk: httpx.Client) -> None:
    alerts = LISTED[0]  # acme-mobile: open, update, resolved
    [found] = [incident for incident in listed(desk, brand="acme-mobile", status="resolved")]
    assert set(found) == set(alerts[-1]) | INCIDENT_FIELDS
    assert {name: found[name] for name in alerts[-1]} == alerts[-1]
    assert {name: found[name] for name in INCIDENT_FIELDS} == {
        "opened_at": alerts[0]["window_end"], "updated_at": alerts[-1]["window_end"],
        "resolved_at": alerts[-1]["window_end"], "updates": 3}


def test_incidents_of_the_last_30_days_newest_update_first(desk: httpx.Client) -> None:
    assert ids(listed(desk)) == newest_update_first(LISTED, NOW - timedelta(days=30), NOW)
    assert len(ids(listed(desk, since=(NOW - timedelta(days=60)).isoformat()))) == len(LISTED)


@pytest.mark.parametrize(("params", "keep"), [
    ({"brand": "telvia,acme-mobile"},
     lambda alerts: alerts[0]["brand"] in ("telvia", "acme-mobile")),
    ({"status": "open"}, lambda alerts: alerts[-1]["status"] != RESOLVED),
    ({"status": "resolved", "kind": "volume_spike"},
     lambda alerts: alerts[-1]["status"] == RESOLVED and alerts[-1]["kind"] == "volume_spike"),
    ({"kind": "crisis", "brand": "acme-mobile"},
     lambda alerts: alerts[0]["brand"] == "acme-mobile"),
])
def test_filters_select_incidents_by_their_latest_alert(
        desk: httpx.Client, params: dict[str, str], keep: Any) -> None:
    assert ids(listed(desk, **params)) == newest_update_first(
        [alerts for alerts in LISTED if keep(alerts)], NOW - timedelta(days=30), NOW)


def test_pages_follow_the_cursor(desk: httpx.Client) -> None:
    first = desk.get("/api/incidents", params={"limit": "4"}).json()
    assert len(first["incidents"]) == 4 and first["next"]
    assert ids(listed(desk, limit="4")) == ids(listed(desk, limit="200"))


def test_an_incident_comes_with_its_history(desk: httpx.Client) -> None:
    alerts = LISTED[1]  # acme-mobile: a volume spike that became a crisis, still open
    answer = desk.get(f"/api/incidents/{alerts[0]['incident_id']}")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {"incident", "history"}
    assert body["history"] == alerts
    assert body["incident"] == {**alerts[-1], "opened_at": alerts[0]["window_end"],
                                "updated_at": alerts[-1]["window_end"], "resolved_at": None,
                                "updates": 2}
    listed_as = next(incident for incident in listed(desk)
                     if incident["incident_id"] == alerts[0]["incident_id"])
    assert listed_as == body["incident"]


@pytest.mark.parametrize("incident_id", ["telvia-19990101T0000Z", "no%20such%20incident"])
def test_an_unknown_incident_is_404_with_the_field(desk: httpx.Client, incident_id: str) -> None:
    answer = desk.get(f"/api/incidents/{incident_id}")
    assert answer.status_code == 404
    assert error_of(answer) == {"field": "incident_id", "reason": "no such incident"}


@pytest.mark.parametrize(("path", "params", "field"), [
    ("/api/incidents", {"status": "closed"}, "status"),
    ("/api/incidents", {"kind": "outage"}, "kind"),
    ("/api/incidents", {"limit": "0"}, "limit"),
    ("/api/incidents", {"cursor": "nope"}, "cursor"),
    ("/api/incidents", {"since": "2026-11-02", "until": "2026-11-01"}, "since"),
    ("/api/incidents", {"sevrity": "critical"}, "sevrity"),
    (f"/api/incidents/{LISTED[0][0]['incident_id']}", {"limit": "1"}, "limit"),
])
def test_a_bad_parameter_is_400_with_the_field(
        desk: httpx.Client, path: str, params: dict[str, str], field: str) -> None:
    answer = desk.get(path, params=params)
    assert answer.status_code == 400
    assert error_of(answer)["field"] == field
