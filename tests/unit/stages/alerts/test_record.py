from __future__ import annotations

import orjson

from pipeline.stages.alerts.record import ALERT_EVENTS, Alert
from pipeline.stages.alerts.render import render_text
from tests.unit.stages.alerts.conftest import BRAND, alert_sequence


def test_alert_dict_round_trip_and_render_from_dict() -> None:
    opened, _ = alert_sequence()
    record = orjson.loads(orjson.dumps(opened.to_dict()))
    assert record["idempotency_key"] == f"{BRAND}/acme-mobile-20250303T1000Z/0"
    assert record["severity"] == "critical" and record["status"] == "open"
    assert record["samples"][0]["url"].startswith("https://")
    back = Alert.from_dict(record)
    assert back == opened
    assert render_text(record) == render_text(opened)


def test_an_alert_event_on_the_topic_is_the_json_of_its_dict_and_reads_back() -> None:
    for alert in alert_sequence():
        encoded = ALERT_EVENTS.encode(alert.to_event())
        assert encoded == orjson.dumps(alert.to_dict())
        assert list(orjson.loads(encoded))[:4] == [
            "idempotency_key", "kind", "status", "severity"]
        assert Alert.from_event(ALERT_EVENTS.decode(encoded)) == alert
