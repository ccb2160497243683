"""Nothing is lost while the consumer groups change: a worker joining mid-stream, another
one killed mid-stream (SIGKILL, no goodbye), and mentions arriving all the while."""

import os
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import orjson
import pytest
from kafka import KafkaProducer

from pipeline.config import Settings
from pipeline.connectors.generator import FirehoseGenerator
from pipeline.stages.ingest import build_ingestor
from pipeline.transport.topics import decode_batch, kafka_client_options
from tests.integration.conftest import RunningWorker, consume_until

pytestmark = pytest.mark.integration

# a steady feed of ~500 mentions/s, so batches are in flight at every membership change
CHUNK, CHUNK_EVERY_S = 50, 0.1


class Feed(threading.Thread):
    """Sends the records in chunks until stopped (or out of records); ``sent`` counts them."""

    def __init__(self, settings: Settings, raws: list[bytes]) -> None:
        super().__init__(daemon=True)
        self.settings, self.raws = settings, raws
        self.sent = 0
        self.stop = threading.Event()

    def run(self) -> None:
        producer = KafkaProducer(**kafka_client_options(self.settings))
        try:
            while not self.stop.is_set() and self.sent < len(self.raws):
                for raw in self.raws[self.sent:self.sent + CHUNK]:
                    producer.send(self.settings.topic("raw"), value=raw)
                self.sent = min(len(self.raws), self.sent + CHUNK)
                time.sleep(CHUNK_EVERY_S)
            producer.flush()
        finally:
            producer.close()


def committed_offsets(settings: Settings, group: str) -> dict[tuple[str, int], int]:
    """The offsets ``group`` has committed, by (topic, partition)."""
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(**kafka_client_options(settings))
    try:
        offsets = admin.list_group_offsets(group).get(group, {})
    finally:
        admin.close()
    return {(tp.topic, tp.partition): meta.offset for tp, meta in offsets.items()}


def uncommitted_routed(settings: Settings) -> dict[int, int]:
    """Records of ``mentions.routed`` past the dedup group's committed offsets, by partition."""
    from kafka import KafkaConsumer, TopicPartition

    topic = settings.topic("routed")
    consumer = KafkaConsumer(**kafka_client_options(settings))
    try:
        ends = consumer.end_offsets(
            [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        )
    finally:
        consumer.close()
    committed = committed_offsets(settings, settings.app_id)
    return {tp.partition: end - max(0, committed.get((topic, tp.partition), 0))
            for tp, end in ends.items()}


def where_they_are(settings: Settings, missing: set[str]) -> str:
    """For a failure message: the routed records holding the missing mentions, and how far
    both consumer groups have committed."""
    routed = consume_until(settings, settings.topic("routed"), lambda rs: False, timeout_s=10)
    holding: dict[tuple[int, int], int] = {}
    for record in routed:
        hits = sum(m["id"] in missing for m in decode_batch(record.value))
        if hits:
            holding[(record.partition, record.offset)] = hits
    groups = {group: committed_offsets(settings, group)
              for group in (settings.app_id, f"{settings.app_id}-ingest")}
    return (f"missing mentions per routed record (partition, offset): {holding}, "
            f"of {len(routed)} records; committed offsets: {groups}")


def test_no_mention_is_lost_when_a_worker_joins_and_another_is_killed(
    pipeline_settings: Settings, start_worker: Callable[..., RunningWorker],
) -> None:
    settings = pipeline_settings.model_copy(update={"group_session_timeout_s": 6.0})
    start = datetime(2026, 11, 2, 12, tzinfo=UTC)
    raws = [orjson.dumps(m) for m in FirehoseGenerator(seed=7, start=start).mentions(40_000)]

    first = start_worker(settings, "ingest,dedup")
    feed = Feed(settings, raws)
    feed.start()
    time.sleep(2)
    # joins while the first one is busy: the group takes partitions away from it
    start_worker(settings, "ingest,dedup")
    time.sleep(2)
    # dies mid-stream, maybe with batches sent and not committed: replayed from the last commit
    os.kill(first.process.pid, signal.SIGKILL)
    first.process.wait(timeout=10)
    time.sleep(3)
    feed.stop.set()
    feed.join(timeout=30)
    assert not feed.is_alive() and feed.sent < len(raws), "the feed ended before the changes"
    # the oracle: what the ingest core forwards, run offline on the records sent
    expected = {m["id"] for m in build_ingestor(settings).process(raws[:feed.sent]).mentions}
    assert len(expected) > feed.sent // 2

    def unique_ids(records: list) -> set[str]:
        return {m["id"] for record in records for m in decode_batch(record.value)}

    records = consume_until(
        settings, settings.topic("unique"), lambda rs: expected <= unique_ids(rs),
        timeout_s=120,
    )
    missing = expected - unique_ids(records)
    assert not missing, (
        f"{len(missing)} of {len(expected)} lost, e.g. {sorted(missing)[:5]}\n"
        + where_they_are(settings, missing)
    )
    # and the dedup group commits past every routed record: a record skipped but not lost
    # (processed by the killed worker) would still hold its partition's commit back for good
    deadline = time.monotonic() + 30
    behind = uncommitted_routed(settings)
    while any(behind.values()) and time.monotonic() < deadline:
        time.sleep(1)
        behind = uncommitted_routed(settings)
    assert not any(behind.values()), f"routed records never committed, by partition: {behind}"
    dead = consume_until(settings, settings.topic("deadletter"), lambda rs: False, timeout_s=2)
    assert dead == []
