"""The generic runner: every stage's records moved the same way, from a short declaration.

A stage declares a :class:`Stage`: its name, the topics it reads, whether the runner decodes
each topic's micro-batches for it, how it answers a batch (a
:class:`~pipeline.stages.stage_result.StageResult`) and its :class:`Delivery` rule. The
runner does the rest, as a Faust agent (:func:`run_as_agent`, one event a batch) or as a
batched consumer (:class:`BatchedStage`, thousands of records a batch, committed once the
batch is handled), inside :meth:`WorkerContext.guarded` (a batch that fails unexpectedly is
dead-lettered whole, never crashes the worker):

1. decode (a record that is not a micro-batch is dead-lettered ``bad_value``),
2. ask the stage for its result,
3. write its inserts with the stage's write step, if any (a sink's: it waits out store
   outages, so nothing below happens, nor the commit, before the rows are in),
4. deliver it: dead letters and records out, alerts to the listeners, state saved, in the
   order the delivery rule says,
5. count the metrics and observe the latencies; the offsets commit after this returns (the
   batched consumer) or when Faust next commits (agents: Faust flushes its producer first).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from pipeline.agents.batch_consumer import BatchedConsumerService
from pipeline.agents.context import WorkerContext
from pipeline.config import Settings
from pipeline.records import MentionCodec
from pipeline.stages.alerts.record import Alert
from pipeline.stages.stage_result import BadRecord, Insert, StageResult


class Delivery(Enum):
    """When a stage's state is saved relative to its sends, and whether acks are awaited."""

    # send everything, wait until the broker acked every record and dead letter, hand the
    # alerts on, then save: a crash in between sends again, never loses (ingest, crisis)
    ACKED = "acked"
    # save, then send without waiting: Faust flushes its producer before it commits the
    # offsets, and one round trip per event would cap the agent at mentions / RTT (dedup,
    # sentiment)
    FLUSHED = "flushed"


@dataclass(frozen=True, slots=True)
class Batch:
    """The records a stage answers at once: one Faust event, or a batched consumer's poll."""

    topic: str
    values: list[bytes]
    # set for one Faust event (one record of one partition), None for a batched poll
    partition: int | None = None
    offset: int | None = None
    # the micro-batches' mentions, when the stage has the runner decode them
    mentions: list[Any] | None = None
    # when the runner took the batch (Unix seconds)
    received_at: float = 0.0

    def record(self) -> tuple[int, int, bytes]:
        """Partition, offset and value of a one-record batch (a Faust event)."""
        if self.partition is None or self.offset is None or len(self.values) != 1:
            raise ValueError(f"not one record of one partition: {len(self.values)} values")
        return self.partition, self.offset, self.values[0]


Answer = Callable[[Batch], StageResult | Awaitable[StageResult]]
# writes a result's inserts; the rows refused, each with its reason, for the dead letters
Write = Callable[[Sequence[Insert]], Awaitable[list[BadRecord]]]


@dataclass(frozen=True, slots=True)
class Stage:
    """A stage as the runner sees it: what it reads, how it answers, how it delivers."""

    name: str
    # the topic it reads, by the worker's short name (``routed``, ``scored``...)
    source: str
    answer: Answer
    delivery: Delivery
    # the codec that decodes the micro-batch records into ``Batch.mentions`` before the
    # answer; None for a stage that reads its records itself (ingest, dedup)
    codec: MentionCodec[Any] | None = None
    # batched stages only: further topics read in the same consumer, by short name, each
    # with its own codec (None: the answer reads those values itself)
    more_sources: Mapping[str, MentionCodec[Any] | None] = field(default_factory=dict)
    # performs a result's inserts before anything is sent or acked (the store sink)
    write: Write | None = None
    # called with each alert once it is on the broker (the webhook notifier)
    on_alert: Callable[[Alert], object] | None = None
    # Faust agents only: how many events in flight
    concurrency: int = 1
    # what to start first (in each agent instance) and, batched stages only, to stop last
    on_start: Callable[[], Awaitable[None]] | None = None
    on_stop: Callable[[], Awaitable[None]] | None = None


def topic_name(settings: Settings, source: str) -> str:
    """Full name of a topic a stage reads, by its short name (``alerts`` is configured whole)."""
    return settings.alerts_topic if source == "alerts" else settings.topic(source)


def codec_of(settings: Settings, stage: Stage, topic: str) -> MentionCodec[Any] | None:
    """The codec of ``stage`` for the records of ``topic`` (full name)."""
    for source, codec in stage.more_sources.items():
        if topic_name(settings, source) == topic:
            return codec
    return stage.codec


async def run_batch(context: WorkerContext, stage: Stage, batch: Batch) -> None:
    """Steps 1-5 of the module docstring for one batch (the caller guards it)."""
    mentions = None
    codec = codec_of(context.settings, stage, batch.topic)
    if codec is not None:
        mentions = await context.decode_in(stage.name, batch.values, batch.topic, codec)
        batch = replace(batch, mentions=mentions)
    answer = stage.answer(batch)
    result = answer if isinstance(answer, StageResult) else await answer
    await deliver(context, stage, result, batch.topic)
    context.count(result.metrics)
    if result.taken is not None:
        context.count_in(stage.name, result.taken)
    if result.latencies is not None:
        context.observe_latencies(stage.name, result.latencies.ingested_at,
                                  result.latencies.event_times)
    elif mentions is not None:
        context.observe_out(stage.name, mentions)


async def deliver(context: WorkerContext, stage: Stage, result: StageResult,
                  source_topic: str) -> None:
    """Inserts written, dead letters and records out, alerts on, state saved.

    The inserts first, whatever the delivery rule; the rest as ``stage.delivery`` says.
    """
    refused_rows = await write_inserts(stage, result.inserts)
    if stage.delivery is Delivery.FLUSHED:
        result.save()
    acks = await context.dead_letter_mentions(result.refused, stage=stage.name,
                                              source_topic=source_topic)
    for reject in [*result.rejects, *refused_rows]:
        acks.append(await context.dead_letter(reject.raw, reject.reason, reject.detail,
                                              stage=stage.name, source_topic=source_topic))
    for record in result.records:
        acks.append(await context.topics[record.topic].send(
            key=record.key, value=record.value, partition=record.partition,
            headers=dict(record.headers) if record.headers else None))
    if stage.delivery is Delivery.FLUSHED:
        tell_listeners(context, stage, result.alerts)
        return
    await asyncio.gather(*acks)
    tell_listeners(context, stage, result.alerts)
    # the state after its records: a crash in between sends them again, never loses them
    result.save()


async def write_inserts(stage: Stage, inserts: Sequence[Insert]) -> list[BadRecord]:
    """Step 3: the stage's write step over ``inserts``; the rows it refused."""
    if not inserts:
        return []
    if stage.write is None:
        raise ValueError(f"stage {stage.name} answered inserts but has no write step")
    return await stage.write(inserts)


def tell_listeners(context: WorkerContext, stage: Stage, alerts: list[Alert]) -> None:
    """Hand each alert to the stage's notifier and the worker's listeners."""
    for alert in alerts:
        if stage.on_alert is not None:
            stage.on_alert(alert)
        for listener in context.alert_listeners:
            listener(alert.to_dict())


def run_as_agent(context: WorkerContext, stage: Stage) -> Any:
    """Attach ``stage`` to the app as a Faust agent over its source topic, one event a batch."""
    if stage.more_sources or stage.on_stop is not None:
        raise ValueError(f"stage {stage.name}: more sources and on_stop are for batched stages")
    settings = context.settings
    source_topic = topic_name(settings, stage.source)

    @context.app.agent(context.topics[stage.source], name=f"{settings.app_id}.{stage.name}",
                       concurrency=stage.concurrency)
    async def agent(stream: Any) -> None:
        if stage.on_start is not None:
            await stage.on_start()
        async for event in stream.events():
            batch = Batch(source_topic, [bytes(event.value)], event.message.partition,
                          event.message.offset, received_at=time.time())
            await context.guarded(stage.name, batch.values, source_topic,
                                  functools.partial(run_batch, context, stage, batch))

    return agent


class BatchedStage(BatchedConsumerService):
    """``stage`` over its source topics read in batches (see the batched consumer's docstring)."""

    def __init__(self, context: WorkerContext, stage: Stage, *, batch_size: int,
                 batch_wait_s: float, **kwargs: Any) -> None:
        settings = context.settings
        topics = [topic_name(settings, source) for source in (stage.source, *stage.more_sources)]
        super().__init__(context, stage=stage.name, topics=topics, batch_size=batch_size,
                         batch_wait_s=batch_wait_s, **kwargs)
        self.spec = stage

    async def on_start(self) -> None:
        """Start what the stage needs first, then join the consumer group."""
        if self.spec.on_start is not None:
            await self.spec.on_start()
        await super().on_start()

    async def on_stop(self) -> None:
        """Leave the consumer group, then stop what the stage started."""
        await super().on_stop()
        if self.spec.on_stop is not None:
            await self.spec.on_stop()

    async def handle(self, topic: str, values: list[bytes]) -> None:
        """Run one batch of the topic's records through the stage."""
        await run_batch(self.context, self.spec,
                        Batch(topic, values, received_at=time.time()))
