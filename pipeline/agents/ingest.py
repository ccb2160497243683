"""Ingest: raw topic -> validate, tag brands -> routed micro-batches (a batched consumer).

The raw topic carries one mention per record, as upstream sends it, so a Faust stream over
it would pay Faust's per-event cost on every mention (measured: see benchmarks/README.md,
Pipeline). Ingest is stateless and needs none of Faust's per-event machinery: the runner reads
the raw topic with a batched aiokafka consumer (``getmany``, thousands of records per call)
and hands each batch to :func:`~pipeline.stages.ingest_result.ingest_result` in one call.
Delivery is ``ACKED``: the raw offsets are committed only after the broker acknowledged every
micro-batch and every dead letter (a reject whose dead letter was lost would otherwise
vanish); a crash replays the batch, and downstream state is idempotent by mention id.
"""

from __future__ import annotations

from pipeline.agents.context import WorkerContext
from pipeline.agents.runner import Batch, BatchedStage, Delivery, Stage
from pipeline.stages.ingest import build_ingestor
from pipeline.stages.ingest_result import ingest_result
from pipeline.stages.routing import Router
from pipeline.stages.stage_result import StageResult

STAGE = "ingest"


def register(context: WorkerContext) -> None:
    """Attach the ingest service to the app."""
    settings = context.settings
    ingestor, router = build_ingestor(settings), Router(settings)

    def answer(batch: Batch) -> StageResult:
        return ingest_result(ingestor, router, batch.values, ingested_at=batch.received_at,
                             forward_unmatched=settings.forward_unmatched)

    service = BatchedStage(
        context, Stage(STAGE, "raw", answer, Delivery.ACKED),
        batch_size=settings.ingest_batch_size, batch_wait_s=settings.ingest_batch_wait_s,
        loop=None,
    )
    context.app.service(service)
    context.readiness.checks["ingest_partitions_assigned"] = lambda: bool(service.assignment)
