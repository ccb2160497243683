"""A crisis alert as a row of the store's ``incident_alerts`` table (pure, validated).

One row per alert event (:meth:`~pipeline.stages.alerts.record.Alert.to_dict`, as the crisis
stage sends it to the alerts topic): the columns the incident queries filter and sort on, and
the alert itself as emitted (``alert``), so the desk answers with the pipeline's own record.
The table is keyed by the alert's idempotency key (brand, incident id, sequence), so an alert
delivered twice is one row; an alert whose key does not match those fields is rejected rather
than stored under a key its consumers would not recognise.

:func:`alert_rows` turns alerts into ``JSONEachRow`` lines for one insert and the alerts it
cannot store into rejects with a reason (the sink dead-letters them, ``mentions store load``
reports them); :func:`alert_rows_from_values` does the same for the alerts topic's records.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

import msgspec
import orjson

from pipeline.stages.alerts.record import KINDS, OPENED, RESOLVED, UPDATED, Alert
from pipeline.store.queries import EARLIEST, LATEST
from pipeline.store.rows import RowBatch, RowReject

STATUSES: Final = (OPENED, UPDATED, RESOLVED)
_UINT32_MAX: Final = 2**32 - 1


def is_alert_record(record: Mapping[str, Any]) -> bool:
    """True when a JSON object has an alert's shape (mentions have neither key).

    >>> is_alert_record({"incident_id": "telvia-20261201T0900Z",
    ...                  "idempotency_key": "telvia/telvia-20261201T0900Z/0"})
    True
    >>> is_alert_record({"id": "tw:1", "text": "hola"})
    False
    """
    return "incident_id" in record and "idempotency_key" in record


def alert_row(alert: Mapping[str, Any]) -> dict[str, Any]:
    """One alert's columns; ``ValueError("reason: detail")`` when it cannot be stored.

    Times are Unix seconds (what ``JSONEachRow`` reads into ``DateTime64``).
    """
    try:
        parsed = Alert.from_dict(alert)
    except msgspec.ValidationError as error:
        reason = "missing_field" if "missing required field" in str(error) else "wrong_type"
        raise ValueError(f"{reason}: {error}") from None
    except (ValueError, TypeError, AttributeError) as error:
        raise ValueError(f"wrong_type: {error}") from None
    for name in ("brand", "incident_id"):
        if not getattr(parsed, name):
            raise ValueError(f"missing_field: {name}")
    if parsed.kind not in KINDS:
        raise ValueError(f"wrong_type: kind {parsed.kind!r} is not one of {', '.join(KINDS)}")
    if parsed.status not in STATUSES:
        raise ValueError(f"wrong_type: status {parsed.status!r} is not one of "
                         f"{', '.join(STATUSES)}")
    if not 0 <= parsed.sequence <= _UINT32_MAX:
        raise ValueError(f"wrong_type: sequence {parsed.sequence!r} is not a count")
    if alert.get("idempotency_key") != parsed.idempotency_key:
        raise ValueError(f"inconsistent_key: idempotency_key {alert.get('idempotency_key')!r} "
                         f"is not brand/incident_id/sequence ({parsed.idempotency_key!r})")
    return {
        "brand": parsed.brand,
        "incident_id": parsed.incident_id,
        "sequence": parsed.sequence,
        "idempotency_key": parsed.idempotency_key,
        "kind": parsed.kind,
        "status": parsed.status,
        "severity": parsed.severity.label,
        **{name: _seconds(name, getattr(parsed, name))
           for name in ("started_at", "window_start", "window_end")},
        "alert": orjson.dumps(alert).decode(),
    }


def alert_rows(alerts: Sequence[Mapping[str, Any]]) -> RowBatch:
    """The rows of ``alerts`` (one per idempotency key, the last wins) and the rejects."""
    rows: dict[str, bytes] = {}
    rejects: list[RowReject] = []
    for index, alert in enumerate(alerts):
        try:
            row = alert_row(alert)
        except ValueError as error:
            reason, _, detail = str(error).partition(": ")
            rejects.append(RowReject(index, orjson.dumps(alert), reason, detail))
            continue
        rows[row["idempotency_key"]] = orjson.dumps(row)
    return RowBatch(list(rows.values()), rejects)


def alert_rows_from_values(values: Sequence[bytes]) -> RowBatch:
    """The rows of the alerts topic's records (one alert's JSON each) and the rejects.

    A reject's ``raw`` is the record's own bytes, so a dead letter keeps what arrived.
    """
    alerts: list[dict[str, Any]] = []
    indexes: list[int] = []
    rejects: list[RowReject] = []
    for index, value in enumerate(values):
        try:
            alert = orjson.loads(value)
        except orjson.JSONDecodeError as error:
            rejects.append(RowReject(index, value, "not_json", str(error)))
            continue
        if not isinstance(alert, dict):
            rejects.append(RowReject(index, value, "wrong_type", "not a JSON object"))
            continue
        alerts.append(alert)
        indexes.append(index)
    batch = alert_rows(alerts)
    rejects += [RowReject(indexes[reject.index], values[indexes[reject.index]], reject.reason,
                          reject.detail) for reject in batch.rejects]
    return RowBatch(batch.rows, sorted(rejects, key=lambda reject: reject.index))


def _seconds(name: str, moment: datetime) -> float:
    """Unix seconds of an alert's time; it must be timezone-aware and in the table's range."""
    if moment.tzinfo is None:
        raise ValueError(f"bad_timestamp: {name} {moment.isoformat()!r} has no UTC offset")
    if not EARLIEST <= moment < LATEST:
        raise ValueError(f"bad_timestamp: {name} {moment.isoformat()!r} is out of range")
    return moment.timestamp()
