"""The generic runner without a broker: decoding, guarding, delivery order, counting.

The topics are stand-ins whose acks the test completes by hand, so the order of sends, acks,
alerts and saves is observed, not timed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from pipeline.agents.context import Readiness, WorkerContext
from pipeline.agents.runner import Batch, Delivery, Stage, deliver, run_batch
from pipeline.config import Settings
from pipeline.metrics import PipelineMetrics
from pipeline.records import SCORED, MentionCodec, wire_dict
from pipeline.schema import InvalidMention
from pipeline.stages.alerts.record import OPENED, Alert
from pipeline.stages.stage_result import (
    BadRecord,
    Insert,
    MetricDelta,
    OutRecord,
    StageResult,
)
from pipeline.transport.topics import encode_batch
from tests.incident_alerts import incident

SOURCE = "mentions.scored"


class HeldTopic:
    """A Faust topic's send: remembers each record and returns an ack the test completes."""

    def __init__(self, journal: list[str], name: str) -> None:
        self.journal, self.name = journal, name
        self.sent: list[dict[str, object]] = []
        self.acks: list[asyncio.Future[None]] = []

    async def send(self, **record: object) -> asyncio.Future[None]:
        self.sent.append(record)
        self.journal.append(f"send {self.name}")
        ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        ack.add_done_callback(lambda _: self.journal.append(f"ack {self.name}"))
        self.acks.append(ack)
        return ack

    def ack_all(self) -> None:
        for ack in self.acks:
            if not ack.done():
                ack.set_result(None)


def worker(journal: list[str]) -> WorkerContext:
    registry = CollectorRegistry()
    context = WorkerContext(settings=Settings(), app=None, metrics=PipelineMetrics(registry),
                            registry=registry, readiness=Readiness())
    context.topics = {name: HeldTopic(journal, name) for name in ("alerts", "deadletter")}
    context.alert_listeners.append(lambda alert: journal.append("listener"))
    return context


def result(journal: list[str], alerts: list[Alert]) -> StageResult:
    refused = ({"id": "x", "created_at": "yesterday"},
               InvalidMention("bad_timestamp", "created_at 'yesterday'"))
    return StageResult(
        records=[OutRecord("alerts", b"{}", b"acme", {"idempotency-key": b"k1"})],
        refused=[refused], rejects=[BadRecord(b"\xff", "bad_value", "not JSON")],
        alerts=alerts, save=lambda: journal.append("save"))


def opened_alert() -> Alert:
    return Alert.from_dict(incident("acme", datetime(2026, 11, 22, 10, tzinfo=UTC),
                                    [OPENED])[0])


def stage(delivery: Delivery, answer: Callable[[Batch], StageResult] | None = None,
          *, codec: MentionCodec[Any] | None = SCORED,
          on_alert: Callable[[Alert], object] | None = None) -> Stage:
    return Stage("crisis", "scored", answer or (lambda batch: StageResult()), delivery,
                 codec=codec, on_alert=on_alert)


def test_acked_delivery_saves_and_tells_listeners_only_after_every_ack() -> None:
    journal: list[str] = []
    context = worker(journal)
    notified: list[Alert] = []

    async def scenario() -> None:
        delivering = asyncio.create_task(deliver(
            context, stage(Delivery.ACKED, on_alert=notified.append),
            result(journal, [opened_alert()]), SOURCE))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert not delivering.done() and "save" not in journal and not notified
        context.topics["deadletter"].ack_all()
        await asyncio.sleep(0)
        assert not delivering.done() and "save" not in journal
        context.topics["alerts"].ack_all()
        await delivering

    asyncio.run(scenario())
    assert journal == ["send deadletter", "send deadletter", "send alerts",
                       "ack deadletter", "ack deadletter", "ack alerts", "listener", "save"]
    assert len(notified) == 1
    [refused, rejected] = context.topics["deadletter"].sent
    assert orjson.loads(refused["value"])["reason"] == "bad_timestamp"
    assert orjson.loads(rejected["value"])["reason"] == "bad_value"
    assert context.topics["alerts"].sent == [{"key": b"acme", "value": b"{}", "partition": None,
                                              "headers": {"idempotency-key": b"k1"}}]


def test_flushed_delivery_saves_first_and_leaves_the_acks_to_faust() -> None:
    journal: list[str] = []
    context = worker(journal)
    # the acks are never completed: delivery must return without them
    asyncio.run(deliver(context, stage(Delivery.FLUSHED), result(journal, []), SOURCE))
    assert journal == ["save", "send deadletter", "send deadletter", "send alerts"]


def test_the_runner_decodes_dead_letters_a_broken_record_and_counts_what_it_did() -> None:
    journal: list[str] = []
    context = worker(journal)
    seen: list[Batch] = []

    def answer(batch: Batch) -> StageResult:
        seen.append(batch)
        return StageResult(metrics=[MetricDelta("crisis_dropped", (("reason", "late"),), 2)])

    mention = {"id": "1", "text": "Acme", "ingested_at": 1.0,
               "created_at": "2026-11-02T12:00:00+00:00"}
    batch = Batch(SOURCE, [encode_batch([mention]), b"not a batch"], partition=3, offset=9)
    asyncio.run(run_batch(context, stage(Delivery.ACKED, answer), batch))
    assert [[wire_dict(m) for m in one.mentions or []] for one in seen] == [[mention]]
    [letter] = context.topics["deadletter"].sent
    assert orjson.loads(letter["value"])["reason"] == "bad_value"
    registry = context.registry
    assert registry.get_sample_value("mentions_crisis_dropped_total", {"reason": "late"}) == 2
    assert registry.get_sample_value("mentions_stage_in_total", {"stage": "crisis"}) == 1
    assert registry.get_sample_value("mentions_stage_out_total", {"stage": "crisis"}) == 1


def test_a_stage_reading_its_own_input_counts_what_it_says_it_took() -> None:
    journal: list[str] = []
    context = worker(journal)
    answer = stage(Delivery.ACKED, lambda batch: StageResult(taken=len(batch.values)),
                   codec=None)
    asyncio.run(run_batch(context, answer, Batch("mentions.raw", [b"a", b"b", b"c"])))
    assert context.registry.get_sample_value("mentions_stage_in_total",
                                             {"stage": "crisis"}) == 3
    assert context.topics["deadletter"].sent == []


def test_a_failing_stage_is_dead_lettered_whole_and_the_worker_goes_on() -> None:
    journal: list[str] = []
    context = worker(journal)

    def answer(batch: Batch) -> StageResult:
        raise KeyError("surprise")

    batch = Batch(SOURCE, [b"[]"], partition=0, offset=0)

    async def guarded() -> None:
        task = asyncio.create_task(context.guarded(
            "crisis", batch.values, SOURCE,
            lambda: run_batch(context, stage(Delivery.ACKED, answer), batch)))
        while not context.topics["deadletter"].acks:
            await asyncio.sleep(0)
        context.topics["deadletter"].ack_all()
        await task

    asyncio.run(guarded())
    [letter] = context.topics["deadletter"].sent
    assert orjson.loads(letter["value"])["reason"] == "internal_error"
    assert context.registry.get_sample_value(
        "mentions_stage_failures_total", {"stage": "crisis", "reason": "KeyError"}) == 1


def test_only_a_one_record_batch_has_a_record() -> None:
    assert Batch(SOURCE, [b"x"], partition=1, offset=4).record() == (1, 4, b"x")
    with pytest.raises(ValueError, match="not one record"):
        Batch(SOURCE, [b"x", b"y"]).record()


def test_the_write_step_finishes_before_anything_is_sent_and_its_refused_rows_are_letters(
) -> None:
    journal: list[str] = []
    context = worker(journal)
    written: list[Insert] = []
    store_back = asyncio.Event()

    async def write(inserts: Sequence[Insert]) -> list[BadRecord]:
        journal.append("write")
        await store_back.wait()  # the store is down until the test says otherwise
        written.extend(inserts)
        journal.append("written")
        return [BadRecord(b'{"id":"bad"}', "store_rejected", "Cannot parse input")]

    sink = Stage("store", "scored", lambda batch: StageResult(), Delivery.ACKED, write=write)
    answered = StageResult(inserts=[Insert("brand_mentions", [b'{"id":"1"}', b'{"id":"bad"}'])],
                           rejects=[BadRecord(b"\xff", "not_json", "unexpected byte")],
                           save=lambda: journal.append("save"))

    async def scenario() -> None:
        delivering = asyncio.create_task(deliver(context, sink, answered, SOURCE))
        for _ in range(5):
            await asyncio.sleep(0)
        assert journal == ["write"] and not delivering.done()
        store_back.set()
        while len(context.topics["deadletter"].acks) < 2:
            await asyncio.sleep(0)
        assert "save" not in journal
        context.topics["deadletter"].ack_all()
        await delivering

    asyncio.run(scenario())
    assert journal == ["write", "written", "send deadletter", "send deadletter",
                       "ack deadletter", "ack deadletter", "save"]
    assert [insert.rows for insert in written] == [[b'{"id":"1"}', b'{"id":"bad"}']]
    letters = [orjson.loads(letter["value"]) for letter in context.topics["deadletter"].sent]
    assert [letter["reason"] for letter in letters] == ["not_json", "store_rejected"]


def test_inserts_without_a_write_step_are_an_error_not_a_silent_drop() -> None:
    journal: list[str] = []
    context = worker(journal)
    answered = StageResult(inserts=[Insert("brand_mentions", [b"{}"])])
    with pytest.raises(ValueError, match="no write step"):
        asyncio.run(deliver(context, stage(Delivery.ACKED), answered, SOURCE))
    assert journal == []


def test_each_source_topic_is_decoded_with_its_own_codec() -> None:
    journal: list[str] = []
    context = worker(journal)
    seen: dict[str, Batch] = {}

    def answer(batch: Batch) -> StageResult:
        seen[batch.topic] = batch
        return StageResult()

    sink = Stage("store", "scored", answer, Delivery.ACKED, codec=SCORED,
                 more_sources={"alerts": None})
    mention = {"id": "1", "text": "Acme", "ingested_at": 1.0,
               "created_at": "2026-11-02T12:00:00+00:00"}
    settings = context.settings
    scored, alerts = settings.topic("scored"), settings.alerts_topic
    asyncio.run(run_batch(context, sink, Batch(scored, [encode_batch([mention])])))
    asyncio.run(run_batch(context, sink, Batch(alerts, [b'{"incident_id": "x"}'])))
    assert [wire_dict(m) for m in seen[scored].mentions or []] == [mention]
    assert seen[alerts].mentions is None
    assert seen[alerts].values == [b'{"incident_id": "x"}']
    assert context.topics["deadletter"].sent == []
