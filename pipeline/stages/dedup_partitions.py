"""The dedup stage over a worker's partitions: journals kept in a state table, one step a record.

Each record on ``mentions.routed`` is a micro-batch of one partition (ingest keyed it by
:func:`~pipeline.stages.routing.routing_key`). One
:class:`~pipeline.stages.dedup_journal.PartitionJournal` per assigned partition holds the
:class:`~pipeline.stages.dedup.Deduplicator`'s stores in memory; after each micro-batch the
batch's *delta* (every entry it wrote) is saved as ONE entry of the injected table (the
agent passes a Faust table with a changelog, tests a dict), keyed ``"<partition>:<sequence>"``.
After a restart or a rebalance the first batch of a partition replays that partition's
deltas; after each expiry sweep the deltas whose entries have all expired are deleted.

Why one entry per batch and not per store key: each mention wrote 2-3 changelog records,
which Faust's producer sends one at a time, and draining a backlog it stopped making progress
("producer buffer full"); one record per micro-batch does not (``benchmarks/README.md``, "The
dedup agent under a backlog"). Faust writes a table change to the changelog partition of the
event being processed; a delta's key starts with that partition, so recovery brings every
partition's deltas back to whoever owns it.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from pipeline.stages.dedup_encoded import EncodedVerdicts, mark_routed
from pipeline.stages.dedup_journal import PartitionJournal, parse_delta_key
from pipeline.stages.routing import mention_partition
from pipeline.stages.stage_result import (
    BadRecord,
    Latencies,
    MetricDelta,
    OutRecord,
    StageResult,
)
from pipeline.transport.topics import join_batches

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


def dedup_result(partitions: JournalledPartitions, partition: int, record: bytes,
                 unique_partitions: int) -> StageResult:
    """One ``mentions.routed`` record of ``partition`` through the dedup stage.

    Every mention goes on to ``unique`` (duplicates are marked, never dropped), keyed by id
    (:func:`unique_records`); the metrics count the exact and near copies; saving writes the
    batch's delta to the journal table. A record that is not a micro-batch is refused whole.
    """
    journal = partitions.journal(partition)
    outcome = mark_routed(journal.deduplicator, record)
    marked = outcome.marked
    if marked is None:
        return StageResult(refused=list(outcome.unreadable),
                           rejects=[BadRecord(record, "bad_value", str(outcome.broken))])
    copies = Counter(verdict.kind for verdict in marked.verdicts if verdict.kind != "unique")
    return StageResult(
        records=[OutRecord("unique", value, partition=target)
                 for target, values in unique_records(marked, unique_partitions).items()
                 for value in values],
        refused=list(outcome.unreadable),
        metrics=[MetricDelta("duplicates", (("kind", kind),), count)
                 for kind, count in copies.items()],
        taken=len(marked.encoded),
        latencies=Latencies(np.array(marked.ingested_at, dtype=np.float64),
                            marked.event_times),
        save=lambda: partitions.save(journal, marked.newest),
    )
