"""Dedup agent: routed micro-batches -> duplicates marked -> unique micro-batches.

Each record on ``mentions.routed`` is a micro-batch of one partition (the ingest stage keyed
it by :func:`pipeline.stages.dedup.routing_key`), so the agent handles a whole batch per
Faust event. The :class:`~pipeline.stages.dedup.Deduplicator`'s four stores are Faust tables
backed by changelog topics: a restarted or rebalanced worker rebuilds its memory from them.
Every mention goes on (duplicates are marked, never dropped), and the counters say how many
were exact and near copies.

The LSH band index is not a table: it is rebuilt from the clusters table per partition after
each rebalance, which keeps the changelog at 2-3 records per mention.

Faust writes a table change to the changelog partition of the event being processed, so each
stored value is tagged with its partition and the core only ever sees (and expires) the
entries of the partition at hand: a tombstone always lands where its key was written.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.agents.app import WorkerContext, decode_batches
from pipeline.stages.dedup import DedupInput, Deduplicator, apply_verdict
from pipeline.transport.topics import encode_batch, group_by_partition

STAGE = "dedup"
# expire once per this many batches of a partition (a full scan of the partition's state)
EXPIRE_EVERY = 200


class PartitionView(MutableMapping[str, Any]):
    """The entries of one partition in a shared table; values are stored as [partition, v]."""

    def __init__(self, table: Any, partition: int) -> None:
        self.table = table
        self.partition = partition

    def __getitem__(self, key: str) -> Any:
        stored = self.table[key]
        if stored is None:
            raise KeyError(key)
        return stored[1]

    def __setitem__(self, key: str, value: Any) -> None:
        self.table[key] = [self.partition, value]

    def __delitem__(self, key: str) -> None:
        del self.table[key]

    def __iter__(self) -> Iterator[str]:
        for key, stored in list(self.table.items()):
            if stored is not None and stored[0] == self.partition:
                yield key

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _mention_time(mention: dict[str, Any]) -> datetime:
    try:
        return datetime.fromisoformat(str(mention["created_at"]))
    except (KeyError, ValueError):
        return datetime.now(UTC)


def register(context: WorkerContext) -> None:
    """Attach the dedup agent and its tables to the app."""
    app, settings, metrics = context.app, context.settings, context.metrics
    tables = {
        name: app.Table(
            f"{settings.app_id}-dedup-{name}", default=None, partitions=settings.partitions,
        )
        for name in ("mentions", "exact", "clusters")
    }
    # the LSH band index is derived from the clusters table: kept in memory per partition and
    # rebuilt after every rebalance, it costs no changelog traffic
    band_indexes: dict[int, dict[str, Any]] = {}

    @app.on_partitions_assigned.connect
    async def forget_band_indexes(sender: Any, assigned: Any, **kwargs: Any) -> None:
        band_indexes.clear()
    window = timedelta(hours=settings.dedup_window_hours)
    batches_seen: dict[int, int] = {}
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
                mentions, broken = decode_batches([raw])
                for value, reason in broken:
                    await context.dead_letter(
                        value, "bad_value", reason, stage=STAGE, source_topic=source_topic,
                    )
                metrics.stage_in.labels(stage=STAGE).inc(len(mentions))
                metrics.stage_batch_size.labels(stage=STAGE).observe(len(mentions))
                views = {name: PartitionView(table, partition) for name, table in tables.items()}
                fresh = partition not in band_indexes
                deduplicator = Deduplicator(
                    window=window, mentions=views["mentions"], exact=views["exact"],
                    clusters=views["clusters"],
                    bands=band_indexes.setdefault(partition, {}),
                )
                if fresh:
                    deduplicator.rebuild_bands()
                verdicts = deduplicator.check([
                    DedupInput(str(m["id"]), str(m["text"]), _mention_time(m)) for m in mentions
                ])
                for mention, verdict in zip(mentions, verdicts, strict=True):
                    apply_verdict(mention, verdict)
                    if verdict.kind != "unique":
                        metrics.duplicates.labels(kind=verdict.kind).inc()
                batches_seen[partition] = batches_seen.get(partition, 0) + 1
                if mentions and batches_seen[partition] % EXPIRE_EVERY == 0:
                    deduplicator.expire(max(_mention_time(m) for m in mentions))
                pending = []
                for target, batch in group_by_partition(
                    mentions, lambda m: str(m["id"]).encode(), settings.partitions,
                ).items():
                    pending.append(await unique_topic.send(value=encode_batch(batch),
                                                           partition=target))
                for future in pending:
                    await future
                context.observe_out(STAGE, mentions)

            await context.guarded(STAGE, [raw], source_topic, work)
