from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from pipeline.connectors.sources.bluesky import decode_event, map_jetstream_event
from pipeline.connectors.sources.config import RuntimeOptions
from pipeline.connectors.sources.cursors import MemoryCursorStore
from pipeline.connectors.sources.filtering import QueryPrefilter, UnmappableEvent
from pipeline.connectors.sources.runtime import SourceMetrics, SourceRuntime
from pipeline.stages.brands import brand_rules_from_dicts
from tests.source_payloads import encode, jetstream_like, jetstream_post


class HeldProducer:
    """Acknowledges a send only when the test releases it (the broker's side of the pump)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes]] = []
        self.acks: list[asyncio.Future[None]] = []

    async def send(self, topic: str, *, key: bytes | None, value: bytes) -> asyncio.Future[None]:
        self.sent.append((topic, key, value))
        ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.acks.append(ack)
        return ack

    def release(self) -> None:
        for ack in self.acks:
            if not ack.done():
                ack.set_result(None)


def _runtime(producer: Any, cursors: MemoryCursorStore, registry: CollectorRegistry,
             **options: Any) -> SourceRuntime:
    rules = brand_rules_from_dicts([{"id": "telvia", "query": "telvia"}])
    return SourceRuntime(
        "bluesky", producer=producer, cursors=cursors, prefilter=QueryPrefilter(rules),
        metrics=SourceMetrics(registry), options=RuntimeOptions(**options), raw_topic="raw",
        deadletter_topic="dead", max_text_chars=50)


def _mapper(raw: bytes) -> Any:
    return lambda: map_jetstream_event(decode_event(raw))


async def test_the_cursor_moves_only_after_the_broker_acknowledged() -> None:
    producer, cursors, registry = HeldProducer(), MemoryCursorStore(), CollectorRegistry()
    runtime = _runtime(producer, cursors, registry, cursor_interval_s=0.05)
    pump = asyncio.create_task(runtime.pump())
    raw = encode(jetstream_post("3k1", "Telvia caída"))
    await runtime.offer(raw, _mapper(raw), ("jetstream", {"time_us": 10}))
    await asyncio.sleep(0.2)
    assert len(producer.sent) == 1 and cursors.saved == {}  # sent, not acknowledged
    producer.release()
    await asyncio.sleep(0.1)
    assert cursors.saved == {"bluesky": {"jetstream": {"time_us": 10}}}
    await runtime.stop()
    await pump
    assert registry.get_sample_value("mentions_source_delivered_total",
                                     {"source": "bluesky"}) == 1


async def test_skips_and_dead_letters_are_counted_and_still_move_the_cursor() -> None:
    producer, cursors, registry = HeldProducer(), MemoryCursorStore(), CollectorRegistry()
    runtime = _runtime(producer, cursors, registry)
    pump = asyncio.create_task(runtime.pump())
    like = encode(jetstream_like(11))
    unmatched = encode(jetstream_post("3k2", "hoy llueve"))
    too_long = encode(jetstream_post("3k3", "Telvia " + "x" * 60))
    broken = b'{"kind": "commit", "time_us": 14'

    def unmappable() -> Any:
        raise UnmappableEvent("not_json", "truncated")

    def unforeseen() -> Any:
        return {}["text"]

    await runtime.offer(like, _mapper(like), ("jetstream", {"time_us": 11}))
    await runtime.offer(unmatched, _mapper(unmatched), ("jetstream", {"time_us": 12}))
    await runtime.offer(too_long, _mapper(too_long), ("jetstream", {"time_us": 13}))
    await runtime.offer(broken, unmappable)
    await runtime.offer(b"{}", unforeseen)
    producer.release()
    stopping = asyncio.create_task(runtime.stop())
    while not pump.done():
        producer.release()
        await asyncio.sleep(0.01)
    await stopping
    assert [topic for topic, _, _ in producer.sent] == ["dead", "dead", "dead"]
    reasons = [orjson.loads(value)["reason"] for _, _, value in producer.sent]
    assert reasons == ["text_too_long", "not_json", "bad_value"]
    assert orjson.loads(producer.sent[1][2])["original"] == broken.decode()
    value = registry.get_sample_value
    assert value("mentions_source_skipped_total", {"source": "bluesky",
                                                   "reason": "not_a_post"}) == 1
    assert value("mentions_source_skipped_total", {"source": "bluesky",
                                                   "reason": "no_query_match"}) == 1
    assert value("mentions_source_deadletter_total", {"source": "bluesky",
                                                      "reason": "not_json"}) == 1
    assert value("mentions_source_events_total", {"source": "bluesky"}) == 5
    assert cursors.saved["bluesky"]["jetstream"] == {"time_us": 13}


async def test_a_full_queue_holds_the_reader_back() -> None:
    producer, cursors = HeldProducer(), MemoryCursorStore()
    runtime = _runtime(producer, cursors, CollectorRegistry(), queue_size=2, max_in_flight=1)
    pump = asyncio.create_task(runtime.pump())
    raw = encode(jetstream_post("3k9", "Telvia"))
    offered = 0

    async def reader() -> None:
        nonlocal offered
        for _ in range(10):
            await runtime.offer(raw, _mapper(raw))
            offered += 1

    reading = asyncio.create_task(reader())
    await asyncio.sleep(0.2)
    # one sent and waiting for its ack, two queued, one offer waiting: the rest never read
    assert offered <= 4 and len(producer.sent) <= 2
    while not reading.done():
        producer.release()
        await asyncio.sleep(0.01)
    stopping = asyncio.create_task(runtime.stop())
    while not pump.done():
        producer.release()
        await asyncio.sleep(0.01)
    await stopping
    assert len(producer.sent) == 10


@pytest.mark.parametrize("size", [0, 1])
def test_runtime_options_bound_the_queue(size: int) -> None:
    if size == 0:
        with pytest.raises(ValueError):
            RuntimeOptions(queue_size=size)
    else:
        assert RuntimeOptions(queue_size=size).queue_size == 1
