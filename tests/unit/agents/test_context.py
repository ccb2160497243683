"""A stage's output counts and latency histograms (WorkerContext, no broker, no Faust app).

The worker's clock is frozen: the ages are then exact, whatever the machine's speed.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import numpy as np
import orjson
import pytest
from prometheus_client import CollectorRegistry

from pipeline.agents import context as context_module
from pipeline.agents.context import Readiness, WorkerContext
from pipeline.config import Settings
from pipeline.metrics import PipelineMetrics
from pipeline.records import SCORED
from pipeline.schema import InvalidMention
from pipeline.stages.stage_result import MetricDelta, OutRecord, StageResult

NOW = 1_795_000_000.0


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(context_module, "time", SimpleNamespace(time=lambda: NOW))


def context() -> WorkerContext:
    registry = CollectorRegistry()
    return WorkerContext(settings=Settings(), app=None, metrics=PipelineMetrics(registry),
                         registry=registry, readiness=Readiness())


def sample(worker: WorkerContext, name: str, stage: str = "dedup", **labels: str) -> float | None:
    return worker.registry.get_sample_value(name, {"stage": stage, **labels})


def test_every_mention_counts_out_and_only_readable_times_count_in_the_histograms() -> None:
    worker = context()
    worker.observe_out("dedup", [
        {"ingested_at": NOW - 0.2, "created_at": "2026-11-02T12:00:00+00:00"},
        {"ingested_at": None, "created_at": "yesterday"},
        {"ingested_at": "soon", "created_at": 17},
        {"created_at": "2026-11-02T13:00:00+01:00"},
    ])
    assert sample(worker, "mentions_stage_out_total") == 4
    assert sample(worker, "mentions_end_to_end_latency_seconds_count") == 1
    assert sample(worker, "mentions_end_to_end_latency_seconds_sum") == pytest.approx(0.2)
    # both readable times are the same instant, long past
    assert sample(worker, "mentions_event_age_seconds_count") == 2
    assert sample(worker, "mentions_event_age_seconds_bucket", le="+Inf") == 2


def test_a_clock_ahead_counts_as_no_age() -> None:
    worker = context()
    ahead = NOW + 60
    worker.observe_latencies("ingest", np.array([ahead, ahead]), np.array([ahead, np.nan]))
    assert sample(worker, "mentions_end_to_end_latency_seconds_sum", "ingest") == 0
    assert sample(worker, "mentions_event_age_seconds_count", "ingest") == 1
    assert sample(worker, "mentions_event_age_seconds_bucket", "ingest", le="0.05") == 1


def test_an_empty_batch_counts_nothing() -> None:
    worker = context()
    worker.observe_latencies("ingest", np.array([]), np.array([]))
    assert sample(worker, "mentions_stage_out_total", "ingest") in (None, 0)


class RecordingTopic:
    """A Faust topic's send: remembers the records; the ack is already done."""

    def __init__(self) -> None:
        self.sent: list[dict[str, object]] = []

    async def send(self, **record: object) -> object:
        self.sent.append(record)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


def test_a_stage_result_is_sent_then_counted() -> None:
    worker = context()
    worker.topics = {"alerts": RecordingTopic(), "deadletter": RecordingTopic()}
    refused = ({"id": "x", "created_at": "yesterday"},
               InvalidMention("bad_timestamp", "created_at 'yesterday'"))
    result = StageResult(
        records=[OutRecord("alerts", b"{}", b"acme", {"idempotency-key": b"k1"})],
        refused=[refused],
        metrics=[MetricDelta("brand_mentions", (("brand", "acme"), ("sentiment", "negative")), 3),
                 MetricDelta("open_incidents", (("kind", "crisis"),), 1, gauge=True),
                 MetricDelta("open_incidents", (("kind", "crisis"),), 2, gauge=True)])
    asyncio.run(worker.send_result("crisis", result, "mentions.scored"))
    assert worker.topics["alerts"].sent == [{"key": b"acme", "value": b"{}", "partition": None,
                                              "headers": {"idempotency-key": b"k1"}}]
    [letter] = worker.topics["deadletter"].sent
    assert orjson.loads(letter["value"])["reason"] == "bad_timestamp"
    worker.count(result.metrics)
    registry = worker.registry
    assert registry.get_sample_value("mentions_brand_mentions_total", {
        "brand": "acme", "sentiment": "negative"}) == 3
    assert registry.get_sample_value("mentions_open_incidents", {"kind": "crisis"}) == 2


def test_decode_in_dead_letters_what_is_not_a_mention_and_counts_the_rest() -> None:
    worker = context()
    worker.topics = {"deadletter": RecordingTopic()}
    mention = {"id": "1", "text": "hola", "created_at": "2026-11-02T12:00:00+00:00"}
    records = [orjson.dumps([mention, {"id": 2}]), b"{}"]
    decoded = asyncio.run(worker.decode_in("crisis", records, "mentions.scored", SCORED))
    assert [m.id for m in decoded] == ["1"]
    letters = [orjson.loads(sent["value"]) for sent in worker.topics["deadletter"].sent]
    assert sorted(letter["reason"] for letter in letters) == ["bad_value", "missing_field"]
    assert sample(worker, "mentions_stage_in_total", "crisis") == 1
