"""BatchHistogram: the same exposition as prometheus_client's Histogram, fed in batches."""

from __future__ import annotations

import random
import threading

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from pipeline.metrics import END_TO_END_BUCKETS, BatchHistogram, PipelineMetrics


def exposition(registry: CollectorRegistry) -> list[str]:
    # prometheus_client's own histogram adds a _created sample; the rest must match
    return [line for line in generate_latest(registry).decode().splitlines()
            if "_created" not in line]


def test_batches_expose_exactly_what_one_observe_per_value_does() -> None:
    generator = random.Random(7)
    values = [generator.choice([0.0, 0.05, 1.0, 300.0, 301.0]) if i % 5 == 0
              else generator.expovariate(0.5) for i in range(2_000)]
    reference_registry, batch_registry = CollectorRegistry(), CollectorRegistry()
    reference = Histogram("latency_seconds", "Latency.", ["stage"],
                          buckets=END_TO_END_BUCKETS, registry=reference_registry)
    batched = BatchHistogram("latency_seconds", "Latency.", ["stage"],
                             buckets=END_TO_END_BUCKETS, registry=batch_registry)
    for stage in ("ingest", "dedup"):
        for value in values:
            reference.labels(stage=stage).observe(value)
        for start in range(0, len(values), 300):
            batched.labels(stage=stage).observe_many(values[start:start + 300])
    batched.labels(stage="dedup").observe_many([])
    batch_lines, reference_lines = exposition(batch_registry), exposition(reference_registry)
    # sums may differ in the last bits (numpy adds pairwise, the reference one by one)
    assert [line for line in batch_lines if "_sum" not in line] == [
        line for line in reference_lines if "_sum" not in line]
    for stage in ("ingest", "dedup"):
        assert batch_registry.get_sample_value(
            "latency_seconds_sum", {"stage": stage},
        ) == pytest.approx(sum(values), rel=1e-12)
    # bounds are inclusive, as in Prometheus: 0.05 counts in le="0.05"
    assert batch_registry.get_sample_value(
        "latency_seconds_bucket", {"stage": "ingest", "le": "0.05"},
    ) == sum(1 for v in values if v <= 0.05)


def test_concurrent_batches_lose_nothing() -> None:
    registry = CollectorRegistry()
    histogram = BatchHistogram("x_seconds", "X.", ["stage"], buckets=(1.0,), registry=registry)

    def feed() -> None:
        for _ in range(200):
            histogram.labels(stage="s").observe_many([0.5, 2.0])

    threads = [threading.Thread(target=feed) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert registry.get_sample_value("x_seconds_count", {"stage": "s"}) == 1_600
    assert registry.get_sample_value("x_seconds_bucket", {"stage": "s", "le": "1.0"}) == 800


def test_pipeline_latencies_are_batch_histograms() -> None:
    registry = CollectorRegistry()
    metrics = PipelineMetrics(registry)
    metrics.end_to_end_seconds.labels(stage="ingest").observe(0.2)
    assert registry.get_sample_value(
        "mentions_end_to_end_latency_seconds_bucket", {"stage": "ingest", "le": "0.25"},
    ) == 1
    assert registry.get_sample_value(
        "mentions_end_to_end_latency_seconds_sum", {"stage": "ingest"},
    ) == 0.2


def test_a_partition_that_moved_away_stops_reporting_lag_here() -> None:
    from aiokafka import TopicPartition

    registry = CollectorRegistry()
    metrics = PipelineMetrics(registry)
    for topic, partition, lag in (("raw", 0, 40), ("raw", 1, 7), ("routed", 0, 3)):
        metrics.consumer_lag.labels(topic=topic, partition=str(partition)).set(lag)

    # a rebalance left this consumer of "raw" with partition 1 only
    metrics.keep_lag_only_for({TopicPartition("raw", 1)}, lambda topic: topic == "raw")

    def lag(topic: str, partition: int) -> float | None:
        return registry.get_sample_value(
            "mentions_consumer_lag_messages", {"topic": topic, "partition": str(partition)},
        )

    assert lag("raw", 0) is None
    assert lag("raw", 1) == 7
    # another consumer's topic is not this one's to forget
    assert lag("routed", 0) == 3
