"""A crisis alert as a store row: its columns, one row per idempotency key, and the rejects."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from pipeline.stages.alerts.record import OPENED, RESOLVED, UPDATED, VOLUME_SPIKE
from pipeline.store.incident_rows import (
    alert_row,
    alert_rows,
    alert_rows_from_values,
    is_alert_record,
)
from tests.incident_alerts import incident

STARTED = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
ALERTS = incident("telvia", STARTED, (OPENED, UPDATED, RESOLVED))


def test_an_alert_becomes_a_row_with_its_key_columns_and_itself() -> None:
    row = alert_row(ALERTS[1])
    assert {name: row[name] for name in ("brand", "incident_id", "sequence", "idempotency_key",
                                         "kind", "status", "severity")} == {
        "brand": "telvia", "incident_id": "telvia-20261201T0900Z", "sequence": 1,
        "idempotency_key": "telvia/telvia-20261201T0900Z/1", "kind": "crisis",
        "status": "update", "severity": "critical"}
    assert row["started_at"] == STARTED.timestamp()
    assert row["window_start"] == datetime(2026, 12, 1, 9, 5, tzinfo=UTC).timestamp()
    assert row["window_end"] == datetime(2026, 12, 1, 9, 10, tzinfo=UTC).timestamp()
    # the alert as emitted, unknown keys included
    extended = {**ALERTS[1], "upstream_note": {"kept": True}}
    assert orjson.loads(alert_row(extended)["alert"]) == extended


def test_alerts_and_mentions_are_told_apart_by_shape() -> None:
    assert all(is_alert_record(alert) for alert in ALERTS)
    assert not is_alert_record({"id": "tw:1", "text": "hola", "brands": ["telvia"]})
    assert not is_alert_record({"incident_id": "telvia-20261201T0900Z"})


def test_an_alert_delivered_twice_in_a_batch_is_one_row() -> None:
    batch = alert_rows([*ALERTS, ALERTS[0], ALERTS[2]])
    assert batch.rejects == []
    assert [orjson.loads(row)["sequence"] for row in batch.rows] == [0, 1, 2]
    assert batch.payload.count(b"\n") == 3


def broken(**fields: Any) -> dict[str, Any]:
    alert = {**ALERTS[0], **fields}
    return {name: value for name, value in alert.items() if value is not None}


@pytest.mark.parametrize(("alert", "reason", "detail"), [
    (broken(incident_id=None), "missing_field", "incident_id"),
    (broken(window_end=None), "missing_field", "window_end"),
    (broken(incident_id=""), "missing_field", "incident_id"),
    (broken(brand=7), "wrong_type", "Expected `str`, got `int` - at `$.brand`"),
    (broken(kind="outage"), "wrong_type", "kind 'outage'"),
    (broken(status="closed"), "wrong_type", "status 'closed'"),
    (broken(severity="apocalyptic"), "wrong_type", "unknown severity"),
    (broken(sequence="first"), "wrong_type", "Expected `int`, got `str` - at `$.sequence`"),
    (broken(sequence=-1, idempotency_key="telvia/telvia-20261201T0900Z/-1"),
     "wrong_type", "sequence -1"),
    (broken(started_at="yesterday"), "wrong_type", "Invalid isoformat"),
    (broken(window_end="2026-12-01T09:05:00"), "bad_timestamp", "window_end"),
    (broken(started_at="1900-01-01T00:00:00+00:00"), "bad_timestamp", "out of range"),
    (broken(idempotency_key="telvia/other/0"), "inconsistent_key", "telvia/other/0"),
    (broken(kind=VOLUME_SPIKE, top_voices=[{"handle": "ana"}]), "missing_field", "author_id"),
])
def test_an_alert_that_cannot_be_stored_is_rejected_with_a_reason(
    alert: dict[str, Any], reason: str, detail: str,
) -> None:
    batch = alert_rows([ALERTS[1], alert])
    assert len(batch.rows) == 1
    [reject] = batch.rejects
    assert (reject.index, reject.reason) == (1, reason)
    assert detail in reject.detail
    assert orjson.loads(reject.raw) == alert


def test_topic_records_that_are_not_alerts_are_rejected_with_their_bytes() -> None:
    values = [orjson.dumps(ALERTS[0]), b"{not json", b"[1, 2]",
              orjson.dumps(broken(status="closed")), orjson.dumps(ALERTS[2])]
    batch = alert_rows_from_values(values)
    assert [orjson.loads(row)["sequence"] for row in batch.rows] == [0, 2]
    assert [(reject.index, reject.reason) for reject in batch.rejects] == [
        (1, "not_json"), (2, "wrong_type"), (3, "wrong_type")]
    assert [reject.raw for reject in batch.rejects] == values[1:4]
