from __future__ import annotations

import orjson

from pipeline.stages.alerts.record import Alert
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
