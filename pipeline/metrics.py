"""Prometheus metrics as an injectable bundle.

Every metric is created on the registry passed in, so tests build a fresh
``CollectorRegistry()`` and read samples with ``registry.get_sample_value``. Names follow the
Prometheus conventions (``_total`` counters, base units: seconds, bytes); label values are
bounded: ``reason`` comes from :data:`pipeline.schema.REJECT_REASONS` (plus a few internal
ones), and per-brand series are capped with an ``other`` bucket.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

# Seconds: from sub-millisecond batch steps to multi-second model calls.
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)
# End-to-end: the SLO lives around a few seconds, crises are judged in minutes.
END_TO_END_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
# Batch sizes are powers of two (STYLE.md §10).
BATCH_SIZE_BUCKETS = tuple(float(2**power) for power in range(0, 14))

OTHER_BRAND = "other"


class BatchHistogram(Collector):
    """A labelled histogram fed a whole batch of observations at once.

    Exposed exactly like :class:`prometheus_client.Histogram` (``_bucket`` with ``le``,
    ``_count``, ``_sum``), but ``labels(...).observe_many(values)`` bins a batch with one
    numpy call. Per-mention latencies are what this is for: ``Histogram.observe`` takes a
    lock per value, and two of them per mention per stage showed in profiles (measured: see
    benchmarks/README.md).
    """

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str], *,
                 buckets: Sequence[float], registry: CollectorRegistry) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.upper_bounds = np.asarray([*sorted(buckets), math.inf], dtype=np.float64)
        self._children: dict[tuple[str, ...], BatchHistogramChild] = {}
        self._lock = threading.Lock()
        registry.register(self)

    def labels(self, **labels: str) -> BatchHistogramChild:
        """The series of one label set (created on first use)."""
        key = tuple(str(labels[name]) for name in self.labelnames)
        child = self._children.get(key)
        if child is None:
            with self._lock:
                child = self._children.setdefault(key, BatchHistogramChild(self.upper_bounds))
        return child

    def describe(self) -> Iterator[HistogramMetricFamily]:  # noqa: D102
        yield HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def collect(self) -> Iterator[HistogramMetricFamily]:  # noqa: D102
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for key, child in list(self._children.items()):
            counts, total = child.snapshot()
            cumulative = np.cumsum(counts)
            family.add_metric(
                list(key),
                [(floatToGoString(bound), float(count))
                 for bound, count in zip(self.upper_bounds, cumulative, strict=True)],
                total,
            )
        yield family


class BatchHistogramChild:
    """One label set of a :class:`BatchHistogram`."""

    def __init__(self, upper_bounds: np.ndarray) -> None:
        self._upper_bounds = upper_bounds
        self._counts = np.zeros(len(upper_bounds), dtype=np.int64)
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe_many(self, values: Sequence[float] | np.ndarray) -> None:
        """Count every value into its bucket (a value equal to a bound counts in it)."""
        array = np.asarray(values, dtype=np.float64)
        if array.size == 0:
            return
        counts = np.bincount(np.searchsorted(self._upper_bounds, array, side="left"),
                             minlength=len(self._upper_bounds))
        total = float(array.sum())
        with self._lock:
            self._counts += counts[: len(self._upper_bounds)]
            self._sum += total

    def observe(self, value: float) -> None:
        """One value."""
        self.observe_many([value])

    def snapshot(self) -> tuple[np.ndarray, float]:
        """Per-bucket (not cumulative) counts and the sum, read together."""
        with self._lock:
            return self._counts.copy(), self._sum


@dataclass
class BrandLabelCap:
    """Bounded label values: the first ``limit`` brands seen get their own, the rest ``other``."""

    limit: int
    _seen: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def label(self, brand: str) -> str:
        """The label value to use for ``brand``."""
        if brand in self._seen:
            return brand
        with self._lock:
            if len(self._seen) < self.limit:
                self._seen.add(brand)
                return brand
        return OTHER_BRAND


class PipelineMetrics:
    """All the pipeline's metrics, registered on one registry.

    Attributes are flat (``metrics.stage_in``, ``metrics.duplicates``) so agents name what
    they count; they are defined in groups, one per stage, below.
    """

    def __init__(self, registry: CollectorRegistry, *, brand_label_limit: int = 50) -> None:
        self.registry = registry
        self.brand_labels = BrandLabelCap(brand_label_limit)
        self._define_stage_flow(registry)
        self._define_consumers(registry)
        self._define_ingest(registry)
        self._define_dedup(registry)
        self._define_sentiment(registry)
        self._define_crisis(registry)
        self._define_store(registry)

    def _define_stage_flow(self, registry: CollectorRegistry) -> None:
        """What every stage counts: mentions in and out, failures, batches, latency."""
        self.stage_in = Counter(
            "mentions_stage_in", "Mentions that entered a stage.", ["stage"], registry=registry,
        )
        self.stage_out = Counter(
            "mentions_stage_out", "Mentions a stage emitted downstream.", ["stage"],
            registry=registry,
        )
        self.deadlettered = Counter(
            "mentions_deadlettered", "Records sent to the dead-letter topic, by reason.",
            ["stage", "reason"], registry=registry,
        )
        self.stage_failures = Counter(
            "mentions_stage_failures", "Batches a stage failed on (records dead-lettered).",
            ["stage", "reason"], registry=registry,
        )
        self.stage_batch_seconds = Histogram(
            "mentions_stage_batch_duration_seconds",
            "Time a stage spends on one batch, broker sends included.", ["stage"],
            buckets=LATENCY_BUCKETS, registry=registry,
        )
        self.stage_batch_size = Histogram(
            "mentions_stage_batch_size", "Mentions per batch a stage handles.", ["stage"],
            buckets=BATCH_SIZE_BUCKETS, registry=registry,
        )
        self.end_to_end_seconds = BatchHistogram(
            "mentions_end_to_end_latency_seconds",
            "From ingest (arrival in the pipeline) to leaving a stage.", ["stage"],
            buckets=END_TO_END_BUCKETS, registry=registry,
        )
        self.event_age_seconds = BatchHistogram(
            "mentions_event_age_seconds",
            "From the mention's created_at to leaving a stage (includes upstream delay).",
            ["stage"], buckets=END_TO_END_BUCKETS, registry=registry,
        )

    def _define_consumers(self, registry: CollectorRegistry) -> None:
        """Each worker's Kafka consumers: lag, assignment, records read again."""
        self.consumer_lag = Gauge(
            "mentions_consumer_lag_messages",
            "Records behind the log end, per topic and partition.",
            ["topic", "partition"], registry=registry,
        )
        self.assigned_partitions = Gauge(
            "mentions_assigned_partitions", "Partitions assigned to this worker.",
            registry=registry,
        )
        self.consumer_rewinds = Counter(
            "mentions_consumer_rewinds", "Records of a stream topic that a worker's consumer "
            "found passed over by Faust: read again (outcome=reread) or, after three tries, "
            "given up as deleted from the broker (outcome=given_up).",
            ["topic", "outcome"], registry=registry,
        )
        self.coordination_failures = Counter(
            "mentions_consumer_coordination_failures", "Consumers of a worker whose group "
            "membership ended with an error (the worker then exits to be started again), by "
            "consumer: faust (the agents') or the stage of a batch consumer.",
            ["consumer"], registry=registry,
        )

    def _define_ingest(self, registry: CollectorRegistry) -> None:
        """Ingest: brand matching."""
        self.unmatched = Counter(
            "mentions_unmatched", "Valid mentions that matched no listening query.",
            registry=registry,
        )
        self.brand_volume = Counter(
            "mentions_brand_volume", "Mentions tagged with each brand at ingest (brands beyond "
            "the cap count as 'other').", ["brand"], registry=registry,
        )

    def _define_dedup(self, registry: CollectorRegistry) -> None:
        """Dedup: copies found."""
        self.duplicates = Counter(
            "mentions_duplicates", "Mentions recognised as copies of an earlier one.",
            ["kind"], registry=registry,
        )

    def _define_sentiment(self, registry: CollectorRegistry) -> None:
        """Sentiment: model batches, inherited results, the accelerator."""
        self.model_seconds = Histogram(
            "mentions_sentiment_model_duration_seconds",
            "Model forward time per sentiment batch.", buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.model_batch_size = Histogram(
            "mentions_sentiment_batch_size", "Texts per model forward.",
            buckets=BATCH_SIZE_BUCKETS, registry=registry,
        )
        self.model_inputs = Counter(
            "mentions_sentiment_inputs", "Texts sent to the sentiment model, by where their "
            "token ids came from: carried from ingest, or tokenised by the sentiment worker "
            "(a rising tokenised share means ingest and this worker disagree on the model).",
            ["ids"], registry=registry,
        )
        self.model_skipped = Counter(
            "mentions_sentiment_skipped", "Mentions that inherited a first copy's sentiment.",
            registry=registry,
        )
        self.device_memory_bytes = Gauge(
            "mentions_device_memory_bytes", "Accelerator memory, by kind (allocated, reserved, "
            "total).", ["device", "kind"], registry=registry,
        )
        self.device_utilization = Gauge(
            "mentions_device_utilization_ratio", "Accelerator busy ratio (0..1) over the last "
            "sampling period.", ["device"], registry=registry,
        )

    def _define_crisis(self, registry: CollectorRegistry) -> None:
        """Crisis: scored mentions per brand, incidents, alerts and their delivery."""
        self.brand_mentions = Counter(
            "mentions_brand_mentions", "Scored mentions per brand and sentiment (brands beyond "
            "the cap count as 'other').", ["brand", "sentiment"], registry=registry,
        )
        self.crisis_dropped = Counter(
            "mentions_crisis_dropped", "Mentions the crisis stage could not count, by reason "
            "(late: after their window closed; bad_time: no usable created_at, or too far "
            "ahead of the watermark).", ["reason"], registry=registry,
        )
        self.alerts = Counter(
            "mentions_alerts", "Alert events emitted, by kind, severity and status.",
            ["kind", "severity", "status"], registry=registry,
        )
        self.open_incidents = Gauge(
            "mentions_open_incidents", "Incidents currently open on this worker.", ["kind"],
            registry=registry,
        )
        self.webhook_deliveries = Counter(
            "mentions_webhook_deliveries", "Webhook delivery outcomes.", ["outcome"],
            registry=registry,
        )

    def _define_store(self, registry: CollectorRegistry) -> None:
        """The store sink: rows inserted, insert time, failures."""
        self.store_rows = Counter(
            "mentions_store_rows", "Rows the store sink inserted, by table (brand_mentions, "
            "incident_alerts; a redelivered record is inserted again and kept once).",
            ["table"], registry=registry,
        )
        self.store_insert_seconds = Histogram(
            "mentions_store_insert_duration_seconds", "Time of one acknowledged insert into "
            "the listening store.", buckets=LATENCY_BUCKETS, registry=registry,
        )
        self.store_errors = Counter(
            "mentions_store_errors", "Failed store inserts, by reason (unavailable: retried "
            "until the store is back; rejected: the rows are isolated and dead-lettered).",
            ["reason"], registry=registry,
        )

    def keep_lag_only_for(self, owned: Iterable[Any], of_topic: Callable[[str], bool]) -> None:
        """Drop the lag series of partitions (of topics ``of_topic`` accepts) not in ``owned``.

        A gauge keeps its last value until removed: a partition that a rebalance moved to
        another worker would go on reporting its old lag from here, summed with the new
        owner's, and a stale non-zero lag on a quiet night fires MentionsPipelineStalled.
        """
        keep = {(tp.topic, str(tp.partition)) for tp in owned}
        stale = {
            (sample.labels["topic"], sample.labels["partition"])
            for family in self.consumer_lag.collect() for sample in family.samples
            if of_topic(sample.labels["topic"])
        } - keep
        for topic, partition in stale:
            with contextlib.suppress(KeyError):
                self.consumer_lag.remove(topic, partition)
