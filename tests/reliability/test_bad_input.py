"""Hostile raw records through a real ingest worker on the real broker.

Invariant: every record sent comes out exactly once, either forwarded on ``mentions.routed``
or on ``mentions.deadletter`` with its original bytes and the reason; the counts match
exactly, and the worker neither dies nor logs a crashed service.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.config import Settings
from pipeline.schema import REJECT_REASONS
from pipeline.stages.ingest import build_ingestor
from tests.integration.conftest import RunningWorker, produce
from tests.reliability.accounting import fingerprint, read_ledger
from tests.reliability.nasty import base, corpus

pytestmark = pytest.mark.integration

FORWARD_ALL = {"PIPELINE_FORWARD_UNMATCHED": "true"}


def assert_alive(worker: RunningWorker) -> None:
    """The worker runs and none of its services crashed."""
    log = worker.log()
    assert worker.process.poll() is None, f"worker exited:\n{log[-3000:]}"
    crashed = [line for line in log.splitlines() if "Crashed reason" in line]
    assert not crashed, "a service crashed:\n" + "\n".join(crashed)


def metric(worker: RunningWorker, name: str) -> float:
    """One sample of the worker's /metrics (0 when absent)."""
    for line in worker.metrics_text().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def test_every_nasty_record_is_forwarded_or_dead_lettered_with_its_reason(
    pipeline_settings: Settings, start_worker: Callable[..., RunningWorker],
) -> None:
    worker = start_worker(pipeline_settings, "ingest", **FORWARD_ALL)
    entries = corpus()
    produce(pipeline_settings, [entry.raw for entry in entries])

    ledger = read_ledger(pipeline_settings, len(entries))
    expected_forwarded = Counter(
        str(orjson.loads(entry.raw)["id"]) for entry in entries if entry.reason is None)
    expected_dead = Counter(
        (fingerprint(entry.raw), entry.reason) for entry in entries if entry.reason)
    wrong = {entry.name: reason for entry in entries if entry.reason
             for (name, reason) in ledger.dead
             if name == fingerprint(entry.raw) and reason != entry.reason}
    assert not wrong, f"dead-lettered with another reason than expected: {wrong}"
    assert ledger.forwarded == expected_forwarded
    missing = [entry.name for entry in entries
               if entry.reason and (fingerprint(entry.raw), entry.reason) not in ledger.dead]
    assert not missing, f"not dead-lettered: {missing}\n{worker.log()[-3000:]}"
    assert ledger.dead == expected_dead
    assert ledger.total == len(entries)
    assert all(letter["detail"] and letter["stage"] == "ingest" for letter in ledger.letters)
    assert metric(worker, 'mentions_stage_in_total{stage="ingest"}') == len(entries)
    assert_alive(worker)


# ---- property: whatever arrives, the counts add up ------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.floats(allow_nan=False)
    | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                               max_size=4),
    max_leaves=12,
)
FIELDS = ("id", "text", "created_at", "source", "author")


@st.composite
def mutated_mentions(draw: st.DrawFn) -> bytes:
    """A valid mention with some fields dropped or replaced by any JSON value."""
    record: dict[str, Any] = base(draw(st.text(min_size=1, max_size=12)))
    for field in draw(st.lists(st.sampled_from(FIELDS), max_size=3, unique=True)):
        record[field] = draw(st.just(...) | json_values)
    return orjson.dumps({key: value for key, value in record.items() if value is not ...})


raw_records = st.one_of(
    st.binary(max_size=200),
    json_values.map(orjson.dumps),
    mutated_mentions(),
    st.builds(lambda mention_id: orjson.dumps(base(mention_id)), st.text(min_size=1,
                                                                          max_size=20)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(raw_records, max_size=20))
def test_the_ingest_core_accounts_for_every_record(raws: list[bytes]) -> None:
    """The pure core: every record is a mention, an unmatched mention or a reject."""
    outcome = _core().process_encoded(raws)
    assert len(outcome.mentions) + len(outcome.unmatched) + len(outcome.rejects) == len(raws)
    assert all(reject.reason in REJECT_REASONS and reject.detail for reject in outcome.rejects)


_cores: list[Any] = []


def _core() -> Any:
    # one core for all examples: it loads the brand rules and the language models
    if not _cores:
        from pipeline.config import load_settings

        _cores.append(build_ingestor(load_settings()))
    return _cores[0]


def test_generated_records_through_the_worker_add_up(
    pipeline_settings: Settings, start_worker: Callable[..., RunningWorker],
) -> None:
    """Hypothesis draws batches of records; the live worker must account for all of them."""
    worker = start_worker(pipeline_settings, "ingest", **FORWARD_ALL)
    sent: list[bytes] = []

    @settings(max_examples=6, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(raw_records, min_size=1, max_size=40))
    def through_the_worker(raws: list[bytes]) -> None:
        produce(pipeline_settings, raws)
        sent.extend(raws)
        ledger = read_ledger(pipeline_settings, len(sent), timeout_s=60)
        outcome = _core().process(sent)
        assert ledger.total == len(sent), worker.log()[-3000:]
        assert ledger.forwarded == Counter(
            str(m["id"]) for m in outcome.mentions + outcome.unmatched)
        assert ledger.dead == Counter((fingerprint(r.raw), r.reason) for r in outcome.rejects)
        assert_alive(worker)

    through_the_worker()
