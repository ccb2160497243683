"""Ingest agent: raw topic -> validate, tag brands -> routed micro-batches.

The raw topic carries one mention per record, as upstream sends it, so a Faust stream over
it pays Faust's per-event cost on every mention (measured: see benchmarks/README.md,
Pipeline). Ingest is stateless, so it does not need Faust's per-event machinery at all: this
service reads the raw topic with its own batched aiokafka consumer (``getmany``, thousands of
records per call), hands each batch to :class:`pipeline.stages.ingest.Ingestor` in one call,
sends rejects to the dead-letter topic and valid mentions to ``mentions.routed`` as one
micro-batch per target partition, waits until the broker acknowledged every send (dead
letters too), and only then commits the raw offsets (at-least-once: a crash replays the
batch, and downstream state is idempotent by mention id). The stateful stages downstream stay
Faust agents: on micro-batch topics Faust's per-record cost is paid once per batch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import Any

import numpy as np

from pipeline.agents.batch_consumer import BatchedConsumerService
from pipeline.agents.context import WorkerContext, send_records
from pipeline.event_time import epoch_seconds
from pipeline.stages.ingest import Ingestor, build_ingestor
from pipeline.stages.routing import Router

STAGE = "ingest"
log = logging.getLogger(__name__)


class IngestService(BatchedConsumerService):
    """Batched consumer of the raw topic feeding the ingest core (see the module docstring)."""

    def __init__(self, context: WorkerContext, ingestor: Ingestor, **kwargs: Any) -> None:
        settings = context.settings
        super().__init__(
            context, stage=STAGE, topics=(settings.topic("raw"),),
            batch_size=settings.ingest_batch_size, batch_wait_s=settings.ingest_batch_wait_s,
            **kwargs,
        )
        self.ingestor = ingestor
        self.router = Router(settings)

    async def handle(self, topic: str, raws: list[bytes]) -> None:
        """Validate and tag a batch of raw mentions, send them on; dead-letter the rejects."""
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
        # one increment per brand per batch: a labelled inc per mention showed in profiles
        brand_counts = Counter(brand for mention in outcome.mentions for brand in mention.brands)
        for brand, count in brand_counts.items():
            metrics.brand_volume.labels(brand=metrics.brand_labels.label(brand)).inc(count)
        forwarded = outcome.forwarded(settings.forward_unmatched)
        acks += await send_records(context.topics["routed"], self.router.records(forwarded))
        # the offsets are committed only after the broker has every micro-batch and every
        # dead letter: a reject whose dead letter was lost would otherwise vanish
        await asyncio.gather(*acks)
        context.observe_latencies(
            STAGE, np.full(len(forwarded), ingested_at),
            epoch_seconds([mention.created_at for mention in forwarded]),
        )


def register(context: WorkerContext) -> None:
    """Attach the ingest service to the app."""
    service = IngestService(context, build_ingestor(context.settings), loop=None)
    context.app.service(service)
    context.readiness.checks["ingest_partitions_assigned"] = lambda: bool(service.assignment)
