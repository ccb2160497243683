"""The Faust transport: fetches wait as long as our settings say; no record is passed over."""

import asyncio
import inspect
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from faust.transport import consumer as faust_consumer
from faust.types import TP

from pipeline.agents.app import build_app
from pipeline.config import load_settings
from pipeline.transport.faust_kafka import (
    DELIVER,
    DROP,
    GIVE_UP,
    REWIND,
    REWINDS_BEFORE_GIVING_UP,
    OffsetGuard,
)


def test_worker_consumers_get_the_configured_fetch_wait() -> None:
    settings = load_settings(broker="127.0.0.1:1", consumer_fetch_max_wait_ms=80,
                             stages="ingest")

    async def build_consumer() -> AIOKafkaConsumer:
        # aiokafka wants a running loop; nothing connects before start()
        app, _context = build_app(settings)
        consumer = app.consumer._thread._create_worker_consumer(app.transport)
        assert isinstance(consumer, AIOKafkaConsumer)
        return consumer

    assert asyncio.run(build_consumer())._fetch_max_wait_ms == 80


def test_aiokafka_still_builds_its_fetcher_from_that_attribute() -> None:
    # the transport sets a private attribute of a not yet started consumer; if aiokafka
    # stops reading it in start(), this fails instead of the setting silently doing nothing
    assert "fetch_max_wait_ms=self._fetch_max_wait_ms" in inspect.getsource(
        AIOKafkaConsumer.start
    )


ROUTED_0, ROUTED_1 = TP("t.routed", 0), TP("t.routed", 1)


def hand_out(guard: OffsetGuard, fetch: list[tuple[TP, int]]) -> list[str]:
    """The guard's verdicts on one fetch result, as the consumer asks for them."""
    verdicts = [guard.deliver(partition, offset) for partition, offset in fetch]
    guard.fetch_done()
    return verdicts


def test_contiguous_records_are_delivered_and_re_read_ones_left_to_faust() -> None:
    guard = OffsetGuard()
    guard.start_at(ROUTED_0, 10)
    assert hand_out(guard, [(ROUTED_0, 10), (ROUTED_0, 11)]) == [DELIVER, DELIVER]
    # read again after a seek back: Faust's read offset decides, the guard lets it through
    assert hand_out(guard, [(ROUTED_0, 10)]) == [DELIVER]
    assert guard.next_offset(ROUTED_0) == 12


def test_records_passed_over_are_read_again_instead_of_skipped() -> None:
    guard = OffsetGuard()
    guard.start_at(ROUTED_0, 25)
    guard.start_at(ROUTED_1, 7)
    # the fetch Faust handed out in the scale-out test: 25-41 passed over, 42-49 delivered
    fetch = [(ROUTED_0, 42), (ROUTED_1, 7), (ROUTED_0, 43), (ROUTED_1, 8)]
    assert hand_out(guard, fetch) == [REWIND, DELIVER, DROP, DELIVER]
    assert guard.next_offset(ROUTED_0) == 25
    assert hand_out(guard, [(ROUTED_0, 25), (ROUTED_0, 26)]) == [DELIVER, DELIVER]


def test_a_partition_with_no_known_position_takes_what_comes() -> None:
    guard = OffsetGuard()
    guard.start_at(ROUTED_0, None)
    assert hand_out(guard, [(ROUTED_0, 500), (ROUTED_0, 501)]) == [DELIVER, DELIVER]
    guard.forget()
    assert hand_out(guard, [(ROUTED_0, 900)]) == [DELIVER]


def test_records_gone_from_the_broker_are_given_up_loudly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    guard = OffsetGuard()
    guard.start_at(ROUTED_0, 100)
    for _ in range(REWINDS_BEFORE_GIVING_UP):
        assert hand_out(guard, [(ROUTED_0, 180)]) == [REWIND]
    assert hand_out(guard, [(ROUTED_0, 180), (ROUTED_0, 181)]) == [GIVE_UP, DELIVER]
    assert "records 100-179 are no longer on the broker" in caplog.text


def test_the_worker_consumer_seeks_back_instead_of_handing_out_a_hole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = load_settings(broker="127.0.0.1:1", stages="dedup", partitions=2)
    routed = TP(settings.topic("routed"), 0)
    # what Faust's own fetch loop hands out: offsets 25-41 were passed over
    fetched = [(routed, SimpleNamespace(offset=offset)) for offset in (42, 43)]

    async def faust_getmany(self: Any, timeout: float) -> AsyncIterator[tuple[TP, Any]]:
        for record in fetched:
            yield record

    monkeypatch.setattr(faust_consumer.Consumer, "getmany", faust_getmany)
    seeks: list[tuple[TP, int]] = []
    registry: list[Any] = []

    async def run() -> list[int]:
        app, context = build_app(settings)
        registry.append(context.registry)

        async def seek_in_aiokafka(partition: TP, offset: int) -> None:
            seeks.append((partition, offset))

        app.consumer._seek = seek_in_aiokafka
        app.consumer.offset_guard.start_at(routed, 25)
        return [message.offset async for _tp, message in app.consumer.getmany(timeout=1.0)]

    assert asyncio.run(run()) == []
    assert seeks == [(routed, 25)]
    assert registry[0].get_sample_value(
        "mentions_consumer_rewinds_total", {"topic": routed.topic, "outcome": "reread"},
    ) == 1
