"""Nothing is lost while the consumer groups change: a worker joining mid-stream, another
one killed mid-stream (SIGKILL, no goodbye), and mentions arriving all the while.

Two worker kinds: ingest + dedup (the dedup agent keeps a Faust table, so a rebalance goes
through table recovery) and sentiment (no table: Faust's other hand-back path)."""

import os
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from kafka import KafkaProducer

from pipeline.config import Settings
from pipeline.connectors.generator import FirehoseGenerator
from pipeline.stages.ingest import build_ingestor
from pipeline.transport.connection import kafka_client_options
from pipeline.transport.topics import (
    decode_batch,
    encode_batch,
    uncommitted_by_partition,
)
from tests.integration.conftest import RunningWorker, consume_until

pytestmark = pytest.mark.integration

CHUNK_EVERY_S = 0.1
START = datetime(2026, 11, 2, 12, tzinfo=UTC)


class Feed(threading.Thread):
    """Sends ``chunk`` records every 0.1 s to ``topic`` until stopped (or out of records), so
    batches are in flight at every membership change; ``sent`` counts them."""

    def __init__(self, settings: Settings, values: list[bytes], topic: str, chunk: int) -> None:
        super().__init__(daemon=True)
        self.settings, self.values, self.topic, self.chunk = settings, values, topic, chunk
        self.sent = 0
        self.stop = threading.Event()

    def run(self) -> None:
        producer = KafkaProducer(**kafka_client_options(self.settings))
        try:
            while not self.stop.is_set() and self.sent < len(self.values):
                for value in self.values[self.sent:self.sent + self.chunk]:
                    producer.send(self.topic, value=value)
                self.sent = min(len(self.values), self.sent + self.chunk)
                time.sleep(CHUNK_EVERY_S)
            producer.flush()
        finally:
            producer.close()


def join_then_kill(
    start_worker: Callable[..., RunningWorker], settings: Settings, stages: str, feed: Feed,
) -> None:
    """While ``feed`` runs: a second worker joins the first, then the first is SIGKILLed."""
    first = start_worker(settings, stages)
    feed.start()
    time.sleep(2)
    # joins while the first one is busy: the group takes partitions away from it
    second = start_worker(settings, stages)
    time.sleep(2)
    # a rebalance is routine: a worker that fell over in it (and let the survivor take over)
    # would pass the checks on the output below, so both must still run and none of their
    # services may have crashed
    assert_running(first)
    # dies mid-stream, maybe with batches sent and not committed: replayed from the last commit
    os.kill(first.process.pid, signal.SIGKILL)
    first.process.wait(timeout=10)
    time.sleep(3)
    feed.stop.set()
    feed.join(timeout=30)
    assert not feed.is_alive() and feed.sent < len(feed.values), "the feed ended too soon"
    assert_running(second)


def assert_running(worker: RunningWorker) -> None:
    """The worker process is alive and none of its services crashed."""
    log = worker.log()
    assert worker.process.poll() is None, f"worker exited:\n{log[-3000:]}"
    crashed = [line for line in log.splitlines() if "Crashed reason" in line]
    assert not crashed, "a service crashed:\n" + "\n".join(crashed)


def committed_offsets(settings: Settings, group: str) -> dict[tuple[str, int], int]:
    """The offsets ``group`` has committed, by (topic, partition)."""
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(**kafka_client_options(settings))
    try:
        offsets = admin.list_group_offsets(group).get(group, {})
    finally:
        admin.close()
    return {(tp.topic, tp.partition): meta.offset for tp, meta in offsets.items()}


def uncommitted(settings: Settings, topic: str) -> dict[int, int]:
    """Records of ``topic`` past the worker group's committed offsets, by partition."""
    from kafka import KafkaConsumer
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(**kafka_client_options(settings))
    consumer = KafkaConsumer(**kafka_client_options(settings))
    try:
        return uncommitted_by_partition(admin, consumer, settings.app_id, topic)
    finally:
        consumer.close()
        admin.close()


def assert_all_committed(settings: Settings, topic: str) -> None:
    """The worker group commits past every record of ``topic`` (within 30 s): a record
    skipped but not lost (processed by the killed worker) would hold its partition's commit
    back for good."""
    deadline = time.monotonic() + 30
    behind = uncommitted(settings, topic)
    while any(behind.values()) and time.monotonic() < deadline:
        time.sleep(1)
        behind = uncommitted(settings, topic)
    assert not any(behind.values()), f"records of {topic} never committed: {behind}"


def quick_failover(settings: Settings) -> Settings:
    """``settings`` with a 6 s group session, so a killed worker's partitions move soon."""
    return settings.model_copy(update={"group_session_timeout_s": 6.0})


def firehose(*, seed: int, count: int) -> list[bytes]:
    """``count`` synthetic raw mention records."""
    return [orjson.dumps(m) for m in FirehoseGenerator(seed=seed, start=START).mentions(count)]


def raw_feed(
    settings: Settings, *, seed: int, count: int, chunk: int,
) -> tuple[list[bytes], Feed]:
    """``count`` firehose mentions and a (not yet started) feed of them to the raw topic."""
    raws = firehose(seed=seed, count=count)
    return raws, Feed(settings, raws, settings.topic("raw"), chunk=chunk)


def ids_in(records: list[Any]) -> set[str]:
    return {m["id"] for record in records for m in decode_batch(record.value)}


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
    settings = quick_failover(pipeline_settings)
    raws, feed = raw_feed(settings, seed=7, count=40_000, chunk=50)  # ~500 mentions/s
    join_then_kill(start_worker, settings, "ingest,dedup", feed)
    # the oracle: what the ingest core forwards, run offline on the records sent
    expected = {m["id"] for m in build_ingestor(settings).process(raws[:feed.sent]).mentions}
    assert len(expected) > feed.sent // 2

    records = consume_until(
        settings, settings.topic("unique"), lambda rs: expected <= ids_in(rs), timeout_s=120,
    )
    missing = expected - ids_in(records)
    assert not missing, (
        f"{len(missing)} of {len(expected)} lost, e.g. {sorted(missing)[:5]}\n"
        + where_they_are(settings, missing)
    )
    assert_all_committed(settings, settings.topic("routed"))
    dead = consume_until(settings, settings.topic("deadletter"), lambda rs: False, timeout_s=2)
    assert dead == []


def test_a_worker_joining_under_load_neither_crashes_the_other_nor_loses_mentions(
    pipeline_settings: Settings, start_worker: Callable[..., RunningWorker],
) -> None:
    settings = quick_failover(pipeline_settings)
    # ~3,000 mentions/s in batches of 10 keep the first worker busy all the time, so the group
    # moves a partition away from it between some batch's fetch and its commit
    raws, feed = raw_feed(settings, seed=11, count=60_000, chunk=300)
    small = {"PIPELINE_INGEST_BATCH_SIZE": "10"}
    first = start_worker(settings, "ingest,dedup", **small)
    feed.start()
    time.sleep(1)
    second = start_worker(settings, "ingest,dedup", **small)
    assert feed.is_alive(), "the feed ended before the second worker joined"
    time.sleep(2)
    feed.stop.set()
    feed.join(timeout=30)
    assert_running(first)

    expected = {m["id"] for m in build_ingestor(settings).process(raws[:feed.sent]).mentions}
    records = consume_until(
        settings, settings.topic("routed"), lambda rs: expected <= ids_in(rs), timeout_s=120,
    )
    assert not expected - ids_in(records)
    assert_running(first)
    # each partition's lag comes from its owner alone: the first worker no longer reports
    # the partitions it lost (a stale gauge there would add to every lag alert), neither for
    # the raw topic (the ingest service's group) nor for the routed one (Faust's)
    for topic in (settings.topic("raw"), settings.topic("routed")):
        first_reports = lag_partitions(first, topic)
        second_reports = lag_partitions(second, topic)
        assert first_reports and second_reports, topic
        assert first_reports.isdisjoint(second_reports), (topic, first_reports, second_reports)


def lag_partitions(worker: RunningWorker, topic: str) -> set[str]:
    """Partitions of ``topic`` whose consumer lag the worker's /metrics reports."""
    from prometheus_client.parser import text_string_to_metric_families

    return {
        sample.labels["partition"]
        for family in text_string_to_metric_families(worker.metrics_text())
        if family.name == "mentions_consumer_lag_messages"
        for sample in family.samples if sample.labels["topic"] == topic
    }


def test_no_mention_is_lost_when_a_sentiment_worker_joins_and_another_is_killed(
    pipeline_settings: Settings, start_worker: Callable[..., RunningWorker],
) -> None:
    settings = quick_failover(pipeline_settings)
    raws = firehose(seed=9, count=8_000)
    mentions = build_ingestor(settings).process(raws).mentions
    # ~160 mentions/s in micro-batches of 16, about what one CPU worker scores
    batches = [encode_batch(mentions[i:i + 16]) for i in range(0, len(mentions), 16)]
    feed = Feed(settings, batches, settings.topic("unique"), chunk=1)
    join_then_kill(start_worker, settings, "sentiment", feed)
    expected = ids_in([SimpleNamespace(value=batch) for batch in batches[:feed.sent]])

    records = consume_until(
        settings, settings.topic("scored"), lambda rs: expected <= ids_in(rs), timeout_s=180,
    )
    missing = expected - ids_in(records)
    assert not missing, f"{len(missing)} of {len(expected)} lost, e.g. {sorted(missing)[:5]}"
    assert_all_committed(settings, settings.topic("unique"))
    dead = consume_until(settings, settings.topic("deadletter"), lambda rs: False, timeout_s=2)
    assert dead == []
