"""SIGKILL the crisis worker inside an open incident: its alerts are neither lost nor doubled.

The five-stage crash test (``test_crash.py``) runs a firehose too short in event time for the
detector to leave its warm-up, so it raises no alert there. This test feeds the crisis stage
the scored series of the crisis scenario (30 calm hours, then a crisis) and kills its worker
once the incident is open, before it updates and resolves; a new worker (another data folder:
its state comes back from the changelog) takes the rest. Invariant: the alerts on the topic
carry exactly the idempotency keys, in the same order of statuses, that an uninterrupted
worker emits for the same series; a record written again after the kill carries the key it
had, so a destination that keys on it sees each alert once.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

import orjson
import pytest

from pipeline.config import Settings
from tests.crisis_scenario import windows
from tests.integration.conftest import RunningWorker, consume_until
from tests.integration.polling import wait_until
from tests.integration.test_crisis_roundtrip import OPENS_AT, produce_scored
from tests.reliability.test_slow_sinks import crisis_out, fresh

pytestmark = pytest.mark.integration


def alerts(settings: Settings) -> list[dict]:
    return [orjson.loads(record.value) for record in consume_until(
        settings, settings.alerts_topic, lambda _: False, timeout_s=2)]


def keyed(found: list[dict]) -> dict[str, str]:
    """Each idempotency key's status; a key written twice must say the same both times."""
    statuses: dict[str, str] = {}
    for alert in found:
        key, status = alert["idempotency_key"], alert["status"]
        assert statuses.setdefault(key, status) == status, (key, status)
    return statuses


def test_sigkill_inside_an_incident_loses_and_doubles_no_alert(
    pipeline_settings: Settings, start_worker: Callable[..., RunningWorker],
) -> None:
    batches = list(windows())
    total = sum(len(batch) for batch in batches)

    baseline = fresh(pipeline_settings, "kill")
    worker = start_worker(baseline, "crisis")
    produce_scored(baseline, batches)
    wait_until(lambda: crisis_out(worker) >= total, "the uninterrupted run to finish", 180)
    wait_until(lambda: [a["status"] for a in alerts(baseline)][-1:] == ["resolved"],
               "the uninterrupted run's incident to resolve", 60)
    expected = keyed(alerts(baseline))
    assert list(expected.values()) == ["open", "update", "resolved"]

    crashed = fresh(pipeline_settings, "kill")
    worker = start_worker(crashed, "crisis")
    # up to the window that opens the incident and the next one, whose events close it
    opened_by = OPENS_AT + 2
    produce_scored(crashed, batches[:opened_by])
    wait_until(lambda: "open" in [a["status"] for a in alerts(crashed)],
               "the incident to open", 120)
    assert "resolved" not in [a["status"] for a in alerts(crashed)]
    os.kill(worker.process.pid, signal.SIGKILL)
    worker.process.wait(timeout=10)
    worker = start_worker(crashed, "crisis")
    produce_scored(crashed, batches[opened_by:])
    rest = sum(len(batch) for batch in batches[opened_by:])
    wait_until(lambda: crisis_out(worker) >= rest, "the new worker to take the rest", 180,
               explain=lambda: f"{crisis_out(worker)} of {rest}; its log:\n{worker.log()[-4000:]}")
    wait_until(lambda: set(keyed(alerts(crashed))) >= set(expected),
               "every alert of the uninterrupted run", 60)
    found = alerts(crashed)
    print(f"\n{len(found)} alert records after the kill, {len(expected)} distinct expected")
    assert keyed(found) == expected
