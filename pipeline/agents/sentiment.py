"""Sentiment agent: unique micro-batches -> sentiment on every mention -> scored, by brand.

The model never runs on Faust's event loop: a
:class:`~pipeline.stages.sentiment.batcher.SentimentBatcher` tokenises on one thread and runs
forwards on another, merging the micro-batches of ``sentiment_concurrency`` in-flight records
into model batches bounded by size and by wait. While batch k runs on the device, batch k+1 is
tokenised and collected.

Mentions carry their token ids from the ingest stage (``sentiment_tokens``, see
:mod:`~pipeline.stages.sentiment.carried`), so this worker reads ids instead of tokenising;
a mention without usable ids is tokenised here. The ids are dropped before ``scored``.

Copies marked by the dedup stage skip the model and inherit their conversation's result
(:class:`~pipeline.stages.sentiment.mentions.CopyMemory`); a copy whose first copy this worker has
not seen is scored like any mention. A batch the model cannot score in time goes on with
``sentiment`` null and a ``sentiment_error`` (counted in ``mentions_stage_failures``): crisis
counting still sees its volume.

``mentions.scored`` is partitioned by brand: a mention naming several brands is sent to the
partition of each, once per distinct partition
(:func:`~pipeline.stages.routing.scored_partitions`), which is the crisis agent's contract.
"""

from __future__ import annotations

import logging
from typing import Any

from pipeline.agents.context import WorkerContext, send_micro_batches
from pipeline.records import SCORED, ScoredMention
from pipeline.stages.routing import scored_partitions
from pipeline.stages.sentiment.batcher import SentimentBatcher
from pipeline.stages.sentiment.engine import build_engine
from pipeline.stages.sentiment.scoring import MentionScoring

log = logging.getLogger(__name__)

STAGE = "sentiment"


def register(context: WorkerContext) -> None:
    """Load the model and attach the sentiment agent to the app."""
    app, settings, metrics = context.app, context.settings, context.metrics
    engine = build_engine(settings)
    # on a GPU, every batch shape's kernels and CUDA graph before the first mention rather
    # than during the first minute of traffic (nothing to do on CPU)
    engine.warm_up()
    log.warning("sentiment model %s on %s, batches of up to %d", engine.model_dir,
                engine.device, engine.max_batch_size)

    def observe_batch(size: int, seconds: float) -> None:
        metrics.model_batch_size.observe(size)
        metrics.model_seconds.observe(seconds)

    def count_inputs(carried: int, tokenised: int) -> None:
        metrics.model_inputs.labels(ids="carried").inc(carried)
        metrics.model_inputs.labels(ids="tokenised").inc(tokenised)

    engine.on_inputs = count_inputs

    batcher = SentimentBatcher(
        engine, max_batch_size=engine.max_batch_size, max_batch_tokens=engine.max_batch_tokens,
        max_wait=settings.sentiment_max_wait_ms / 1000, max_age=settings.sentiment_timeout_s,
        on_batch=observe_batch,
    )
    scoring = MentionScoring.for_brands(settings.brands_file)
    scored_topic = context.topics["scored"]
    source_topic = settings.topic("unique")
    context.readiness.checks["sentiment_model_loaded"] = lambda: engine.model is not None

    @app.agent(context.topics["unique"], name=f"{settings.app_id}.sentiment",
               concurrency=settings.sentiment_concurrency)
    async def sentiment(stream: Any) -> None:
        await batcher.start()
        async for event in stream.events():
            raw = bytes(event.value)

            async def work(raw: bytes = raw) -> None:
                # a unique mention is read as a scored one not yet scored
                mentions = await context.decode_in(STAGE, [raw], source_topic, SCORED)
                if not mentions:
                    return
                scoring_round = scoring.begin(mentions)
                try:
                    results = (await batcher.submit(scoring_round.texts,
                                                    carried=scoring_round.carried)
                               if scoring_round.texts else [])
                except Exception as error:  # never lose the batch: it goes on unscored
                    log.warning("sentiment: %d mentions go on unscored: %s", len(mentions), error)
                    metrics.stage_failures.labels(stage=STAGE, reason=type(error).__name__).inc()
                    scoring.fail(scoring_round, error)
                else:
                    metrics.model_skipped.inc(scoring.finish(scoring_round, results))
                by_partition: dict[int, list[ScoredMention]] = {}
                for mention in mentions:
                    for target in scored_partitions(mention, settings.partitions):
                        by_partition.setdefault(target, []).append(mention)
                await send_micro_batches(scored_topic, by_partition, SCORED)
                context.observe_out(STAGE, mentions)

            await context.guarded(STAGE, [raw], source_topic, work)
