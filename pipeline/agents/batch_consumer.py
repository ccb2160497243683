"""A consumer group that takes topics in batches and commits only what a batch's work finished.

Faust pays a fixed cost per event; a stage that wants thousands of records per call (ingest on
the one-mention-per-record raw topic, the store sink batching inserts for ClickHouse) reads its
topic with its own aiokafka consumer instead: ``getmany`` up to a batch size or a wait, the
subclass's :meth:`BatchedConsumerService.handle` once per topic of the batch (each inside the
worker's ``guarded`` net), then one commit of the batch's offsets. At-least-once: a crash
before the commit replays the batch, and the stages' state is idempotent by mention id.

Rebalances: a partition that moved to another worker while its batch was being handled is not
committed here (aiokafka raises on it, and its new owner replays from the last commit), and
after each rebalance the worker drops the lag series of the partitions it lost.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Mapping, Sequence, Set
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from mode import Service

from pipeline.agents.context import WorkerContext
from pipeline.agents.lag import record_lag
from pipeline.config import Settings
from pipeline.metrics import PipelineMetrics
from pipeline.transport.connection import aiokafka_options, heartbeat_interval_s

log = logging.getLogger(__name__)


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


def batch_consumer_options(settings: Settings, stage: str, batch_size: int) -> dict[str, Any]:
    """A stage's consumer group: manual commits, polls of up to ``batch_size`` records."""
    return {
        "group_id": f"{settings.app_id}-{stage}",
        "client_id": f"{settings.app_id}-{stage}",
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "max_poll_records": batch_size,
        # aiokafka's own fetch wait stays: at the agents' shorter wait ingest's latency fell,
        # but dedup behind it fell behind (measured: see benchmarks/README.md)
        "session_timeout_ms": int(settings.group_session_timeout_s * 1000),
        "rebalance_timeout_ms": int(settings.group_rebalance_timeout_s * 1000),
        "heartbeat_interval_ms": int(heartbeat_interval_s(settings) * 1000),
    }


class _ForgetMovedPartitions(ConsumerRebalanceListener):
    """After each rebalance, drops the lag series of the topic's partitions this worker lost."""

    def __init__(self, metrics: PipelineMetrics, of_topic: Callable[[str], bool]) -> None:
        self.metrics, self.of_topic = metrics, of_topic

    def on_partitions_revoked(self, revoked: Any) -> None:
        """Nothing: the partitions kept are known only once the new assignment arrives."""

    def on_partitions_assigned(self, assigned: Any) -> None:
        """Keep the lag series of ``assigned`` only."""
        self.metrics.keep_lag_only_for(assigned, self.of_topic)


class BatchedConsumerService(Service):
    """Reads ``topics`` in batches for ``stage``; subclasses say what a batch does (:meth:`handle`).

    The worker's Faust agents sample lag for Faust's own consumer; this service samples its
    topics' lag itself, after each commit.
    """

    def __init__(
        self, context: WorkerContext, *, stage: str, topics: Sequence[str], batch_size: int,
        batch_wait_s: float, **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.context = context
        self.stage = stage
        self.topics = tuple(topics)
        self.batch_size = batch_size
        self.batch_wait_s = batch_wait_s
        self.consumer: AIOKafkaConsumer | None = None
        context.consumers[stage] = lambda: self.consumer

    @property
    def assignment(self) -> set[Any]:
        """Partitions of the topics this worker currently owns."""
        return set(self.consumer.assignment()) if self.consumer is not None else set()

    async def handle(self, topic: str, values: list[bytes]) -> None:
        """Do the work of a batch's records from ``topic``; committed once every topic's returns."""
        raise NotImplementedError

    async def on_start(self) -> None:
        """Join the stage's consumer group on the topic."""
        self.consumer = AIOKafkaConsumer(
            **batch_consumer_options(self.context.settings, self.stage, self.batch_size),
            **aiokafka_options(self.context.settings),
        )
        await self.consumer.start()
        topics = self.topics
        self.consumer.subscribe(list(topics), listener=_ForgetMovedPartitions(
            self.context.metrics, lambda name: name in topics,
        ))

    async def on_stop(self) -> None:
        """Leave the consumer group (its partitions move to the other workers at once)."""
        if self.consumer is not None:
            await self.consumer.stop()

    @Service.task
    async def _consume(self) -> None:
        assert self.consumer is not None
        wait_ms = int(self.batch_wait_s * 1000)
        while not self.should_stop:
            try:
                batches = await self.consumer.getmany(
                    timeout_ms=wait_ms, max_records=self.batch_size,
                )
            except KafkaError:
                log.exception("%s: fetching from %s failed; retrying", self.stage,
                              ", ".join(self.topics))
                await asyncio.sleep(1.0)
                continue
            if not batches:
                continue
            by_topic: dict[str, list[bytes]] = {}
            for tp, records in batches.items():
                by_topic.setdefault(tp.topic, []).extend(record.value for record in records)
            for topic, values in by_topic.items():
                await self.context.guarded(
                    self.stage, values, topic, functools.partial(self.handle, topic, values),
                )
            # a rebalance during the batch's work may have moved some of its partitions to
            # another worker: aiokafka refuses (raises on) offsets or lag of a partition this
            # consumer no longer owns, and the new owner replays those records anyway
            offsets = owned_next_offsets(batches, self.assignment)
            if len(offsets) < len(batches):
                log.warning("%s: %d partition(s) of the batch moved away in a rebalance; "
                            "their new owner replays them", self.stage,
                            len(batches) - len(offsets))
            try:
                if offsets:
                    await self.consumer.commit(offsets)
            except KafkaError as error:
                # a rebalance took the partitions away (CommitFailedError): their new owner
                # replays them from the last commit; otherwise the next batch's commit covers
                # these records too (offsets are positions)
                log.warning("%s: offsets not committed (%r)", self.stage, error)
            # the commit awaited: record_lag skips partitions a rebalance took meanwhile
            record_lag(self.context.metrics, self.consumer, offsets)
