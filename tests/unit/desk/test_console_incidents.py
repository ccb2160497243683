"""The console's incidents over HTTP, against what ``/api/incidents`` answers."""

import re

import httpx
import pytest

from tests.incident_alerts import listed_incidents
from tests.unit.desk.conftest import NOW
from tests.unit.desk.test_console import ISO_TIME, visible_text

LISTED = listed_incidents(NOW)


def shown_incidents(html: str) -> list[str]:
    return re.findall(r'<li class="incident[^"]*" data-incident="([^"]+)"', html)


def api_ids(desk: httpx.Client, **params: str) -> list[str]:
    answer = desk.get("/api/incidents", params={**params, "limit": "50"}).json()
    return [incident["incident_id"] for incident in answer["incidents"]]


@pytest.mark.parametrize("params", [
    {}, {"status": "open"}, {"status": "resolved"}, {"brand": "nimbus-bank"},
    {"status": "open", "brand": "acme-mobile"},
])
def test_the_incidents_page_lists_what_the_api_answers(desk: httpx.Client,
                                                       params: dict[str, str]) -> None:
    page = desk.get("/incidents", params=params)
    assert page.status_code == 200
    shown = shown_incidents(page.text)
    assert shown == api_ids(desk, **params) and shown
    assert not ISO_TIME.search(visible_text(page.text))
    fragment = desk.get("/fragments/incidents", params=params)
    assert shown_incidents(fragment.text) == shown


def test_an_incident_page_shows_its_lifecycle_baseline_context_and_chart(
        desk: httpx.Client) -> None:
    alerts = LISTED[0]  # acme-mobile: open, update, resolved
    page = desk.get(f"/incidents/{alerts[0]['incident_id']}")
    assert page.status_code == 200
    text = visible_text(page.text)
    for label in ("Apertura", "Actualización", "Cierre", "Referencia frente a lo observado",
                  "Voces principales", "Menciones de muestra", "Resuelto"):
        assert label in text, label
    assert re.findall(r'<li data-sequence="(\d+)"', page.text) == ["0", "1", "2"]
    assert 'data-chart="incident-volume-data"' in page.text
    assert '"marks":[{' in page.text
    assert "sin servicio otra vez" in text and "@ana" in text
    assert not ISO_TIME.search(text)


def test_an_unknown_incident_is_a_page_that_says_so(desk: httpx.Client) -> None:
    page = desk.get("/incidents/nobody-20260101T0000Z")
    assert page.status_code == 404 and "Incidente no encontrado" in page.text


def test_the_overview_and_the_status_line_count_the_open_incidents(desk: httpx.Client) -> None:
    open_ids = api_ids(desk, status="open")
    overview = desk.get("/")
    assert shown_incidents(overview.text) == open_ids and open_ids
    status = desk.get("/fragments/status")
    assert f'data-open-count="{len(open_ids)}"' in status.text
