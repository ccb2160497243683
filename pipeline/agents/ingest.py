"""Ingest agent: raw topic -> validate, tag brands -> routed micro-batches.

The raw topic carries one mention per record, as upstream sends it, so a Faust stream over
it pays Faust's per-event cost on every mention (measured here: ~5.6k mentions/s for this
hop, ~7k events/s for an agent that does nothing). Ingest is stateless, so it does not need
Faust's per-event machinery at all: this service reads the raw topic with its own batched
aiokafka consumer (``getmany``, thousands of records per call), hands each batch to
:class:`pipeline.stages.ingest.Ingestor` in one call, sends rejects to the dead-letter topic
and valid mentions to ``mentions.routed`` as one micro-batch per target partition, waits
until the broker acknowledged every send (dead letters too), and only then commits the raw
offsets (at-least-once: a crash replays the batch, and downstream state is idempotent by
mention id). The stateful stages downstream stay Faust agents: on micro-batch topics Faust's
per-record cost is paid once per batch.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence, Set
from typing import Any

import numpy as np
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from mode import Service

from pipeline.agents.app import WorkerContext, send_records
from pipeline.caching import BoundedCache
from pipeline.config import Settings
from pipeline.metrics import PipelineMetrics
from pipeline.schema import epoch_seconds
from pipeline.stages.dedup import routing_key
from pipeline.stages.ingest import EncodedMention, Ingestor, build_ingestor
from pipeline.transport.topics import join_batches, partition_for

STAGE = "ingest"
log = logging.getLogger(__name__)


class Router:
    """Groups tagged mentions into micro-batch records of ``mentions.routed``, by partition.

    Keyed so that copies of one text meet on one partition: by brand (copies name the same
    brands), a hot brand split into sub-keys by a content bucket (see
    :func:`pipeline.stages.dedup.routing_key`). A brand that is not hot sends every mention
    to one partition, so its partition is remembered instead of keyed and hashed again per
    mention (100k firehose mentions: ~1.1 us a mention as keyed, ~0.45 remembered); keys
    that depend on the text (a hot brand's sub-key, or the content bucket of a mention
    without brands) are remembered per text for the newest ``text_cache_size`` texts.
    """

    def __init__(self, settings: Settings, *, text_cache_size: int = 50_000) -> None:
        self.hot_brands = settings.dedup_hot_brands
        self.partitions = settings.partitions
        self._by_brand: dict[str, int] = {}
        self._by_text = BoundedCache[tuple[str | None, str], int](text_cache_size)

    def partition(self, text: str, brands: Sequence[str]) -> int:
        """The routed partition of a mention with this text and these brands."""
        brand = min(brands) if brands else None
        if brand is not None and brand not in self.hot_brands:
            partition = self._by_brand.get(brand)
            if partition is None:
                partition = self._by_brand[brand] = self._keyed(text, brands)
            return partition
        partition = self._by_text.get((brand, text))
        if partition is None:
            partition = self._by_text.remember((brand, text), self._keyed(text, brands))
        return partition

    def records(self, mentions: Sequence[EncodedMention]) -> dict[int, list[bytes]]:
        """The micro-batch records of ``mentions``, by partition, in their order."""
        by_brand = self._by_brand
        by_partition: dict[int, list[bytes]] = {}
        for mention in mentions:
            brands = mention.brands
            # the usual mention, one brand that is not hot, without a call (a frame per
            # mention was a third of the routing's cost)
            partition = by_brand.get(brands[0]) if len(brands) == 1 else None
            if partition is None:
                partition = self.partition(mention.text, brands)
            by_partition.setdefault(partition, []).append(mention.encoded)
        return {partition: join_batches(encoded) for partition, encoded in by_partition.items()}

    def _keyed(self, text: str, brands: Sequence[str]) -> int:
        return partition_for(
            routing_key(text, brands, hot_brands=self.hot_brands), self.partitions,
        )


def owned_next_offsets(
    batches: Mapping[Any, Sequence[Any]], owned: Set[Any],
) -> dict[Any, int]:
    """Offsets to commit after a fetched batch: the next one, for the partitions still owned.

    >>> from collections import namedtuple
    >>> Record = namedtuple("Record", "offset")
    >>> owned_next_offsets({"p0": [Record(7), Record(8)], "p1": [Record(3)]}, {"p0"})
    {'p0': 9}
    """
    return {tp: records[-1].offset + 1 for tp, records in batches.items()
            if tp in owned and records}


def aiokafka_options(context: WorkerContext) -> dict[str, Any]:
    """Connection options for aiokafka clients, from the same settings Faust uses."""
    from pipeline.agents.app import broker_credentials

    settings = context.settings
    options: dict[str, Any] = {
        "bootstrap_servers": settings.broker.split(","),
        "security_protocol": settings.security_protocol,
    }
    credentials = broker_credentials(settings)
    if settings.security_protocol.startswith("SASL"):
        options.update(
            sasl_mechanism=settings.sasl_mechanism,
            sasl_plain_username=settings.sasl_username,
            sasl_plain_password=settings.sasl_password.get_secret_value(),
        )
    if credentials is not None and getattr(credentials, "context", None) is not None:
        options["ssl_context"] = credentials.context
    elif credentials is not None and getattr(credentials, "ssl_context", None) is not None:
        options["ssl_context"] = credentials.ssl_context
    return options


def raw_consumer_options(settings: Settings) -> dict[str, Any]:
    """The ingest service's consumer group on the raw topic: manual commits, batch-sized polls."""
    return {
        "group_id": f"{settings.app_id}-ingest",
        "client_id": f"{settings.app_id}-ingest",
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "max_poll_records": settings.ingest_batch_size,
        # aiokafka's 500 ms fetch wait stays: at 100 ms (the agents' setting) ingest's own p99
        # at 2,000 mentions/s fell from 0.29 s to 0.09 s, but dedup behind it fell behind
        # (p50 1.7-2.4 s against 0.18-0.22 s; benchmarks/README.md)
        "session_timeout_ms": int(settings.group_session_timeout_s * 1000),
        "rebalance_timeout_ms": int(settings.group_rebalance_timeout_s * 1000),
        "heartbeat_interval_ms": int(min(3.0, settings.group_session_timeout_s / 3) * 1000),
    }


class _ForgetMovedPartitions(ConsumerRebalanceListener):
    """After each rebalance, drops the lag series of raw partitions this worker lost."""

    def __init__(self, metrics: PipelineMetrics, of_topic: Callable[[str], bool]) -> None:
        self.metrics, self.of_topic = metrics, of_topic

    def on_partitions_revoked(self, revoked: Any) -> None:
        """Nothing: the partitions kept are known only once the new assignment arrives."""

    def on_partitions_assigned(self, assigned: Any) -> None:
        """Keep the lag series of ``assigned`` only."""
        self.metrics.keep_lag_only_for(assigned, self.of_topic)


class IngestService(Service):
    """Batched consumer of the raw topic feeding the ingest core (see the module docstring)."""

    def __init__(self, context: WorkerContext, ingestor: Ingestor, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.context = context
        self.ingestor = ingestor
        self.router = Router(context.settings)
        self.consumer: AIOKafkaConsumer | None = None

    @property
    def assignment(self) -> set[Any]:
        """Raw-topic partitions this worker currently owns."""
        return set(self.consumer.assignment()) if self.consumer is not None else set()

    async def on_start(self) -> None:
        """Join the ingest consumer group on the raw topic."""
        settings = self.context.settings
        self.consumer = AIOKafkaConsumer(
            **raw_consumer_options(settings), **aiokafka_options(self.context),
        )
        await self.consumer.start()
        raw_topic = settings.topic("raw")
        self.consumer.subscribe([raw_topic], listener=_ForgetMovedPartitions(
            self.context.metrics, lambda topic: topic == raw_topic,
        ))

    async def on_stop(self) -> None:
        """Leave the consumer group (its partitions move to the other workers at once)."""
        if self.consumer is not None:
            await self.consumer.stop()

    @Service.task
    async def _consume(self) -> None:
        settings = self.context.settings
        assert self.consumer is not None
        wait_ms = int(settings.ingest_batch_wait_s * 1000)
        while not self.should_stop:
            try:
                batches = await self.consumer.getmany(
                    timeout_ms=wait_ms, max_records=settings.ingest_batch_size,
                )
            except KafkaError:
                log.exception("ingest: fetching from the raw topic failed; retrying")
                await asyncio.sleep(1.0)
                continue
            if not batches:
                continue
            raws = [record.value for records in batches.values() for record in records]
            await self.context.guarded(
                STAGE, raws, settings.topic("raw"), functools.partial(self._handle, raws),
            )
            # a rebalance during the batch's sends may have moved some of its partitions to
            # another worker: aiokafka refuses (raises on) offsets or lag of a partition this
            # consumer no longer owns, and the new owner replays those records anyway
            offsets = owned_next_offsets(batches, self.assignment)
            if len(offsets) < len(batches):
                log.warning("ingest: %d partition(s) of the batch moved away in a rebalance; "
                            "their new owner replays them", len(batches) - len(offsets))
            try:
                if offsets:
                    await self.consumer.commit(offsets)
            except KafkaError as error:
                # a rebalance took the partitions away (CommitFailedError): their new owner
                # replays them from the last commit; otherwise the next batch's commit covers
                # these records too (offsets are positions)
                log.warning("ingest: offsets not committed (%r)", error)
            self._sample_lag(offsets)

    async def _handle(self, raws: list[bytes]) -> None:
        context, settings, metrics = self.context, self.context.settings, self.context.metrics
        context.count_in(STAGE, len(raws))
        ingested_at = time.time()
        outcome = self.ingestor.process_encoded(raws, ingested_at=ingested_at)
        acks = [
            await context.dead_letter(
                reject.raw, reject.reason, reject.detail, stage=STAGE,
                source_topic=settings.topic("raw"),
            )
            for reject in outcome.rejects
        ]
        metrics.unmatched.inc(len(outcome.unmatched))
        # one increment per brand per batch: a labelled inc costs ~3 us, per mention it showed
        brand_counts = Counter(brand for mention in outcome.mentions for brand in mention.brands)
        for brand, count in brand_counts.items():
            metrics.brand_volume.labels(brand=metrics.brand_labels.label(brand)).inc(count)
        forwarded = outcome.mentions + (outcome.unmatched if settings.forward_unmatched else [])
        acks += await send_records(context.topics["routed"], self.router.records(forwarded))
        # the offsets are committed only after the broker has every micro-batch and every
        # dead letter: a reject whose dead letter was lost would otherwise vanish
        await asyncio.gather(*acks)
        context.observe_latencies(
            STAGE, np.full(len(forwarded), ingested_at),
            epoch_seconds([mention.created_at for mention in forwarded]),
        )

    def _sample_lag(self, next_offsets: Mapping[Any, int]) -> None:
        """Lag of each partition at its next offset, for those this consumer still owns.

        The commit before this awaits, so a rebalance may have taken partitions away since,
        and aiokafka asserts on the highwater of a partition it does not own.
        """
        assert self.consumer is not None
        owned = self.assignment
        for tp, next_offset in next_offsets.items():
            highwater = self.consumer.highwater(tp) if tp in owned else None
            if highwater is not None:
                self.context.metrics.consumer_lag.labels(
                    topic=tp.topic, partition=str(tp.partition),
                ).set(max(0, highwater - next_offset))


def register(context: WorkerContext) -> None:
    """Attach the ingest service to the app."""
    service = IngestService(context, build_ingestor(context.settings), loop=None)
    context.app.service(service)
    context.readiness.checks["ingest_partitions_assigned"] = lambda: bool(service.assignment)
