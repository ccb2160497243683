"""What one worker's agents share: settings, metrics, topics, readiness, and the record moves.

:class:`WorkerContext` is built by :func:`pipeline.agents.app.build_app` and handed to each
stage agent's ``register``; the agents import this module, never the app, so the app is the
only module that imports them.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from msgspec import UNSET
from prometheus_client import CollectorRegistry

from pipeline.config import Settings
from pipeline.event_time import epoch_seconds
from pipeline.metrics import PipelineMetrics
from pipeline.records import (
    M,
    MentionCodec,
    Refused,
    RoutedMention,
    dead_letter_record,
    encode_mention,
)
from pipeline.schema import InvalidMention
from pipeline.stages.stage_result import MetricDelta, StageResult

log = logging.getLogger(__name__)


@dataclass
class Readiness:
    """What /readyz reports: every check must be true for the worker to take traffic."""

    checks: dict[str, Callable[[], bool]] = field(default_factory=dict)

    def report(self) -> dict[str, bool]:
        """Run every check; a check that raises counts as not ready."""
        results = {}
        for name, check in self.checks.items():
            try:
                results[name] = bool(check())
            except Exception:
                results[name] = False
        return results


@dataclass
class WorkerContext:
    """What the agents of one worker share: settings, metrics, topics and readiness."""

    settings: Settings
    app: Any
    metrics: PipelineMetrics
    registry: CollectorRegistry
    readiness: Readiness
    topics: dict[str, Any] = field(default_factory=dict)
    # the worker's aiokafka consumers by name, watched by pipeline.agents.watchdog
    consumers: dict[str, Callable[[], Any]] = field(default_factory=dict)
    # called with each alert event dict (the demo prints them)
    alert_listeners: list[Callable[[dict[str, Any]], None]] = field(default_factory=list)

    async def dead_letter(
        self, raw: bytes, reason: str, detail: str, *, stage: str, source_topic: str,
    ) -> Awaitable[Any]:
        """Send one record to the dead-letter topic and count it; the broker's ack to await."""
        ack = await self.topics["deadletter"].send(
            value=dead_letter_record(raw, reason, detail, stage=stage, source_topic=source_topic)
        )
        self.metrics.deadlettered.labels(stage=stage, reason=reason).inc()
        return ack

    async def dead_letter_mentions(
        self, refused: Iterable[tuple[RoutedMention | Mapping[str, Any], InvalidMention]],
        *, stage: str,
        source_topic: str,
    ) -> list[Awaitable[Any]]:
        """Dead-letter mentions a stage core refused, each as its JSON with the error's reason.

        The broker's acks to await.
        """
        return [
            await self.dead_letter(encode_mention(mention), error.reason, error.detail,
                                   stage=stage, source_topic=source_topic)
            for mention, error in refused
        ]

    async def guarded(
        self, stage: str, raw_values: list[bytes], source_topic: str,
        work: Callable[[], Awaitable[None]],
    ) -> None:
        """Run a batch's work; if it fails unexpectedly, dead-letter the batch, never crash.

        The stage cores turn bad input into rejects themselves; this is the last line for
        bugs and unforeseen input, so that one poison batch cannot stop a partition.
        """
        started = time.perf_counter()
        try:
            await work()
        except Exception as error:
            log.exception("stage %s failed on a batch of %d records", stage, len(raw_values))
            self.metrics.stage_failures.labels(stage=stage, reason=type(error).__name__).inc()
            acks = [
                await self.dead_letter(
                    raw, "internal_error", f"{type(error).__name__}: {error}",
                    stage=stage, source_topic=source_topic,
                )
                for raw in raw_values
            ]
            # the caller commits the batch's offsets next: only once its dead letters are in
            # (if the broker refuses them, this raises and the batch is replayed instead)
            await asyncio.gather(*acks)
        finally:
            self.metrics.stage_batch_seconds.labels(stage=stage).observe(
                time.perf_counter() - started
            )

    async def decode_in(
        self, stage: str, raws: Sequence[bytes], source_topic: str,
        codec: MentionCodec[M],
    ) -> list[M]:
        """The mentions of micro-batch records as ``codec``'s records, counted into ``stage``.

        A record that is not a batch is dead-lettered (``bad_value``) and yields nothing; so
        is a mention that is not a record of the codec's type (with the reason).
        """
        mentions, refused, broken = decode_batches(list(raws), codec)
        for value, reason in broken:
            await self.dead_letter(value, "bad_value", reason, stage=stage,
                                   source_topic=source_topic)
        await self.dead_letter_mentions(refused, stage=stage, source_topic=source_topic)
        self.count_in(stage, len(mentions))
        return mentions

    async def send_result(self, stage: str, result: StageResult, source_topic: str) -> None:
        """Dead-letter what a stage refused and send its records; return once the broker has all.

        The caller saves the result's state after this, so a crash in between sends again and
        never loses a record.
        """
        pending = await self.dead_letter_mentions(result.refused, stage=stage,
                                                  source_topic=source_topic)
        for record in result.records:
            pending.append(await self.topics[record.topic].send(
                key=record.key, value=record.value, headers=dict(record.headers),
                partition=record.partition))
        for future in pending:
            await future

    def count(self, deltas: Iterable[MetricDelta]) -> None:
        """Apply a stage's metric changes to the bundle (brand labels bounded as it says)."""
        for delta in deltas:
            labels = dict(delta.labels)
            if "brand" in labels:
                labels["brand"] = self.metrics.brand_labels.label(labels["brand"])
            metric = getattr(self.metrics, delta.metric)
            series = metric.labels(**labels) if labels else metric
            if delta.gauge:
                series.set(delta.amount)
            else:
                series.inc(delta.amount)

    def count_in(self, stage: str, mentions: int) -> None:
        """Count one batch of ``mentions`` into ``stage``."""
        self.metrics.stage_in.labels(stage=stage).inc(mentions)
        self.metrics.stage_batch_size.labels(stage=stage).observe(mentions)

    def observe_out(self, stage: str,
                    mentions: Sequence[RoutedMention] | Sequence[Mapping[str, Any]]) -> None:
        """Count mentions leaving a stage and record their latencies."""
        times = [_times(mention) for mention in mentions]
        self.observe_latencies(
            stage, np.asarray([ingested for ingested, _ in times], dtype=np.float64),
            epoch_seconds([created for _, created in times]))

    def observe_latencies(
        self, stage: str, ingested_at: npt.NDArray[np.float64],
        event_times: npt.NDArray[np.float64],
    ) -> None:
        """Count a batch leaving ``stage``: its mentions' ingest and event times (Unix s).

        One entry per mention in each, NaN where a mention has no such time (it is counted,
        and left out of that histogram).
        """
        if not ingested_at.size:
            return
        self.metrics.stage_out.labels(stage=stage).inc(ingested_at.size)
        now = time.time()
        # clocks of other hosts may run ahead: a negative age counts as 0
        for histogram, since in ((self.metrics.end_to_end_seconds, ingested_at),
                                 (self.metrics.event_age_seconds, event_times)):
            ages = np.maximum(now - since, 0.0)
            histogram.labels(stage=stage).observe_many(ages[~np.isnan(ages)])


def _times(mention: RoutedMention | Mapping[str, Any]) -> tuple[float, str]:
    """A mention's ingest time (NaN when it has none) and event time text."""
    if isinstance(mention, RoutedMention):
        ingested = mention.ingested_at
        return (math.nan if ingested is UNSET or ingested is None else ingested,
                mention.created_at)
    ingested_at, created = mention.get("ingested_at"), mention.get("created_at")
    return (ingested_at if isinstance(ingested_at, int | float) else math.nan,
            created if isinstance(created, str) else "")


def decode_batches(
    values: list[bytes], codec: MentionCodec[M],
) -> tuple[list[M], Refused, list[tuple[bytes, str]]]:
    """Flatten micro-batch records: the mentions, the refused ones, the undecodable records.

    Refused mentions and undecodable records come with the reason.
    """
    mentions: list[M] = []
    refused: Refused = []
    broken: list[tuple[bytes, str]] = []
    for value in values:
        try:
            decoded, not_mentions = codec.decode(value)
        except ValueError as error:
            broken.append((value, str(error)))
            continue
        mentions += decoded
        refused += not_mentions
    return mentions, refused, broken

