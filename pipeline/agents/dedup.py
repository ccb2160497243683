"""Dedup agent: routed micro-batches -> duplicates marked -> unique micro-batches.

Each record on ``mentions.routed`` is a micro-batch of one partition (the ingest stage keyed
it by :func:`pipeline.stages.routing.routing_key`), so the agent handles a whole batch per
Faust event. Every mention goes on (duplicates are marked, never dropped), and the counters
say how many were exact and near copies.

State: one :class:`~pipeline.stages.dedup_journal.PartitionJournal` per assigned partition
holds the :class:`~pipeline.stages.dedup.Deduplicator`'s stores in memory; after each
micro-batch the agent saves the batch's *delta* (every entry it wrote) as ONE entry of a
Faust table, ``<app>-dedup-journal``, keyed ``"<partition>:<sequence>"``. The table's
changelog is what makes the memory fault tolerant: after a restart or a rebalance Faust
recovers the table, and the first batch of a partition replays that partition's deltas. After
each expiry sweep the deltas whose entries have all expired are deleted from the table.

Why a journal and not one table entry per store key (the previous design): each mention
wrote 2-3 changelog records, which Faust's producer sends one at a time, and draining a
backlog it stopped making progress ("producer buffer full"); one record per micro-batch does
not (``benchmarks/README.md``, "The dedup agent under a backlog"). Why a Faust table of deltas
rather than a compacted topic of our own: Faust already does the recovery (it pauses the
partition's streams until the changelog is read, so the old owner's last delta is in),
standby replicas and the RocksDB store; a topic of our own would need its own recovery
consumer and rebalance handling.

Faust writes a table change to the changelog partition of the event being processed; a
delta's key starts with that partition, so recovery brings every partition's deltas back to
whoever owns the partition.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from pipeline.agents.context import WorkerContext, send_records
from pipeline.metrics import PipelineMetrics
from pipeline.stages.dedup import DedupVerdict
from pipeline.stages.dedup_encoded import EncodedVerdicts, mark_routed
from pipeline.stages.dedup_journal import PartitionJournal, parse_delta_key
from pipeline.stages.routing import mention_partition
from pipeline.transport.topics import join_batches

STAGE = "dedup"
# expire once per this many batches of a partition (a full scan of the partition's state)
EXPIRE_EVERY = 200
log = logging.getLogger(__name__)


def unique_records(marked: EncodedVerdicts, partitions: int) -> dict[int, list[bytes]]:
    """The micro-batch records of a marked batch on ``mentions.unique``, by partition.

    Keyed by mention id (:func:`~pipeline.stages.routing.mention_partition`).
    """
    by_partition: dict[int, list[bytearray]] = {}
    for mention_id, encoded in zip(marked.mention_ids, marked.encoded, strict=True):
        by_partition.setdefault(mention_partition(mention_id, partitions), []).append(encoded)
    return {partition: join_batches(encoded) for partition, encoded in by_partition.items()}


class JournalledPartitions:
    """The partitions' journals of one worker, rebuilt from the journal table on first use."""

    def __init__(self, table: Any, window: timedelta) -> None:
        self.table = table
        self.window = window
        self.journals: dict[int, PartitionJournal] = {}
        self.batches_seen: dict[int, int] = {}
        # deltas found expired when a partition was replayed, deleted with its next batch
        self.garbage: dict[int, list[str]] = {}

    def forget(self) -> None:
        """Drop every partition's memory (after a rebalance the table is the truth)."""
        self.journals.clear()
        self.garbage.clear()

    def journal(self, partition: int) -> PartitionJournal:
        """The journal of ``partition``, replayed from the table the first time."""
        journal = self.journals.get(partition)
        if journal is None:
            started = time.perf_counter()
            journal = PartitionJournal(partition, window=self.window)
            prefix = f"{partition}:"
            replayed = journal.replay(
                (key, delta) for key, delta in self.table.items()
                if delta is not None and key.startswith(prefix)
            )
            log.info("dedup: partition %d rebuilt from %d deltas (%d conversations) in %.2fs",
                     partition, replayed, len(journal.clusters), time.perf_counter() - started)
            self.journals[partition] = journal
            self.garbage[partition] = journal.collectable()
        return journal

    def save(self, journal: PartitionJournal, newest: datetime | None) -> None:
        """Write the batch's deltas; every ``EXPIRE_EVERY`` batches, expire and collect."""
        partition = journal.partition
        self.batches_seen[partition] = seen = self.batches_seen.get(partition, 0) + 1
        gone = self.garbage.pop(partition, [])
        if newest is not None and seen % EXPIRE_EVERY == 0:
            gone += journal.expire(newest)
        for key, delta in journal.take_deltas():
            self.table[key] = delta
        for key in gone:
            if parse_delta_key(key)[0] == partition and key in self.table:
                del self.table[key]


def register(context: WorkerContext) -> None:
    """Attach the dedup agent and its journal table to the app."""
    app, settings, metrics = context.app, context.settings, context.metrics
    table = app.Table(
        f"{settings.app_id}-dedup-journal", default=None, partitions=settings.partitions,
    )
    partitions = JournalledPartitions(table, timedelta(hours=settings.dedup_window_hours))

    @app.on_partitions_assigned.connect
    async def forget_partitions(sender: Any, assigned: Any, **kwargs: Any) -> None:
        partitions.forget()

    unique_topic = context.topics["unique"]
    source_topic = settings.topic("routed")
    context.readiness.checks["dedup_partitions_assigned"] = lambda: bool(
        app.consumer.assignment()
    )

    @app.agent(context.topics["routed"], name=f"{settings.app_id}.dedup")
    async def dedup(stream: Any) -> None:
        async for event in stream.events():
            raw = bytes(event.value)
            partition = event.message.partition

            async def work(raw: bytes = raw, partition: int = partition) -> None:
                journal = partitions.journal(partition)
                outcome = mark_routed(journal.deduplicator, raw)
                await context.dead_letter_mentions(outcome.unreadable, stage=STAGE,
                                                   source_topic=source_topic)
                marked = outcome.marked
                if marked is None:
                    await context.dead_letter(raw, "bad_value", str(outcome.broken),
                                              stage=STAGE, source_topic=source_topic)
                    return
                context.count_in(STAGE, len(marked.encoded))
                _count_copies(metrics, marked.verdicts)
                partitions.save(journal, marked.newest)
                # not waiting for the broker's acks here: Faust flushes its producer before it
                # commits the routed offsets (at-least-once), and one round trip per event
                # would cap the agent at (mentions per event) / (round-trip time)
                await send_records(unique_topic, unique_records(marked, settings.partitions))
                context.observe_latencies(
                    STAGE, np.array(marked.ingested_at, dtype=np.float64), marked.event_times,
                )

            await context.guarded(STAGE, [raw], source_topic, work)


def _count_copies(metrics: PipelineMetrics, verdicts: list[DedupVerdict]) -> None:
    copies = Counter(verdict.kind for verdict in verdicts if verdict.kind != "unique")
    for kind, count in copies.items():
        metrics.duplicates.labels(kind=kind).inc(count)
