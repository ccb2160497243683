"""Ingest agent: raw topic -> validate, tag brands and language -> routed micro-batches.

The agent only moves records: it takes up to ``ingest_batch_size`` raw records (or what
arrived within ``ingest_batch_wait_s``), hands them to :class:`pipeline.stages.ingest.Ingestor`
in one call, sends rejects to the dead-letter topic and the valid mentions to
``mentions.routed`` as one micro-batch per target partition.
"""

from __future__ import annotations

import time
from typing import Any

from pipeline.agents.app import WorkerContext
from pipeline.stages.brands import BrandMatcher, load_brand_rules
from pipeline.stages.ingest import Ingestor
from pipeline.transport.topics import encode_batch, group_by_partition

STAGE = "ingest"


def build_ingestor(context: WorkerContext) -> Ingestor:
    """The ingest core for this worker's settings (brand rules are validated here)."""
    settings = context.settings
    return Ingestor(
        BrandMatcher(load_brand_rules(settings.brands_file)),
        max_text_chars=settings.max_text_chars,
        max_record_bytes=settings.max_record_bytes,
        language_detector=None,
    )


def routing_key(mention: dict[str, Any]) -> bytes:
    """Key of a mention on ``mentions.routed``."""
    return str(mention["id"]).encode()


def register(context: WorkerContext) -> None:
    """Attach the ingest agent to the app."""
    settings = context.settings
    ingestor = build_ingestor(context)
    raw_topic = context.topics["raw"]
    routed_topic = context.topics["routed"]
    metrics = context.metrics
    source_topic = settings.topic("raw")

    @context.app.agent(raw_topic, name=f"{settings.app_id}.ingest")
    async def ingest(stream: Any) -> None:
        async for values in stream.take(settings.ingest_batch_size, settings.ingest_batch_wait_s):
            raws = [bytes(value) for value in values]

            async def work(raws: list[bytes] = raws) -> None:
                metrics.stage_in.labels(stage=STAGE).inc(len(raws))
                metrics.stage_batch_size.labels(stage=STAGE).observe(len(raws))
                outcome = ingestor.process(raws)
                for reject in outcome.rejects:
                    await context.dead_letter(
                        reject.raw, reject.reason, reject.detail, stage=STAGE,
                        source_topic=source_topic,
                    )
                metrics.unmatched.inc(len(outcome.unmatched))
                forwarded = outcome.mentions + (
                    outcome.unmatched if settings.forward_unmatched else []
                )
                ingested_at = time.time()
                for mention in forwarded:
                    mention["ingested_at"] = ingested_at
                groups = group_by_partition(forwarded, routing_key, settings.partitions)
                for partition, batch in groups.items():
                    await routed_topic.send(value=encode_batch(batch), partition=partition)
                context.observe_out(STAGE, forwarded)

            await context.guarded(STAGE, raws, source_topic, work)
