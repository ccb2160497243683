"""Dedup agent: routed micro-batches -> duplicates marked -> unique micro-batches.

Each record on ``mentions.routed`` is a micro-batch of one partition, so the agent handles a
whole batch per Faust event (:func:`~pipeline.stages.dedup_partitions.dedup_result`). Every
mention goes on (duplicates are marked, never dropped).

State: one journal per assigned partition in memory, saved as one delta per micro-batch to
the Faust table ``<app>-dedup-journal`` (module docstring of
:mod:`pipeline.stages.dedup_partitions`). Why a Faust table of deltas rather than a
compacted topic of our own: Faust already does the recovery (it pauses the partition's
streams until the changelog is read, so the old owner's last delta is in), standby replicas
and the RocksDB store. Delivery is ``FLUSHED``: the delta is saved and the unique records
sent without waiting for acks, and Faust flushes its producer before it commits the routed
offsets (at-least-once).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pipeline.agents.context import WorkerContext
from pipeline.agents.runner import Batch, Delivery, Stage, run_as_agent
from pipeline.stages.dedup_partitions import JournalledPartitions, dedup_result
from pipeline.stages.stage_result import StageResult

STAGE = "dedup"


def register(context: WorkerContext) -> None:
    """Attach the dedup agent and its journal table to the app."""
    app, settings = context.app, context.settings
    table = app.Table(
        f"{settings.app_id}-dedup-journal", default=None, partitions=settings.partitions,
    )
    partitions = JournalledPartitions(table, timedelta(hours=settings.dedup_window_hours))

    @app.on_partitions_assigned.connect
    async def forget_partitions(sender: Any, assigned: Any, **kwargs: Any) -> None:
        partitions.forget()

    context.readiness.checks["dedup_partitions_assigned"] = lambda: bool(
        app.consumer.assignment()
    )

    def answer(batch: Batch) -> StageResult:
        partition, _offset, record = batch.record()
        return dedup_result(partitions, partition, record, settings.partitions)

    run_as_agent(context, Stage(STAGE, "routed", answer, Delivery.FLUSHED))
