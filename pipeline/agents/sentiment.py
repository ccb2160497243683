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
(:class:`~pipeline.stages.sentiment.mentions.CopyMemory`); what goes on, and where, is
:func:`~pipeline.stages.sentiment.stage.scored_result`'s. Delivery is ``FLUSHED``: nothing
to save, the scored records are not awaited, Faust flushes its producer before it commits.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from pipeline.agents.context import WorkerContext
from pipeline.agents.runner import Batch, Delivery, Stage, run_as_agent
from pipeline.records import SCORED
from pipeline.stages.sentiment.batcher import SentimentBatcher
from pipeline.stages.sentiment.engines import EngineProcesses, build_scorer
from pipeline.stages.sentiment.labels import SentimentResult
from pipeline.stages.sentiment.scoring import MentionScoring
from pipeline.stages.sentiment.stage import STAGE, scored_result
from pipeline.stages.stage_result import StageResult

log = logging.getLogger(__name__)


def register(context: WorkerContext) -> None:
    """Load the model and attach the sentiment agent to the app."""
    settings, metrics = context.settings, context.metrics
    # one engine here, or sentiment_engines processes that this one feeds
    engine = build_scorer(settings)
    # on a GPU, every batch shape's kernels and CUDA graph before the first mention rather
    # than during the first minute of traffic (nothing to do on CPU)
    engine.warm_up()
    log.warning("sentiment model %s on %s, batches of up to %d, %d engine(s)",
                engine.model_dir, engine.device, engine.max_batch_size,
                settings.sentiment_engines)

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
    context.readiness.checks["sentiment_model_loaded"] = (
        (lambda: engine.alive) if isinstance(engine, EngineProcesses)
        else (lambda: engine.model is not None))

    async def answer(batch: Batch) -> StageResult:
        if not batch.mentions:
            return StageResult()
        scoring_round = scoring.begin(batch.mentions)
        outcome: Sequence[SentimentResult] | Exception
        try:
            outcome = (await batcher.submit(scoring_round.texts, carried=scoring_round.carried)
                       if scoring_round.texts else [])
        except Exception as error:  # scored_result sends the batch on unscored
            outcome = error
        return scored_result(scoring, scoring_round, outcome, settings.partitions)

    # a unique mention is read as a scored one not yet scored
    run_as_agent(context, Stage(STAGE, "unique", answer, Delivery.FLUSHED, codec=SCORED,
                                concurrency=settings.sentiment_concurrency,
                                on_start=batcher.start))
