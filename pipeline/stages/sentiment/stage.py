"""One ``mentions.unique`` record through the sentiment stage, as a :class:`StageResult`.

The model call sits between :meth:`MentionScoring.begin` and this module: the worker awaits
the async batcher, the in-process harness calls the engine; either hands the outcome (the
results, or the exception the call raised) to :func:`scored_result`. A batch the model could
not score goes on with ``sentiment`` null and a ``sentiment_error``: crisis counting still
sees its volume. ``mentions.scored`` is partitioned by brand
(:func:`~pipeline.stages.routing.scored_partitions`); the copy memory lives in memory only,
so there is nothing to save.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from pipeline.records import SCORED, ScoredMention
from pipeline.stages.routing import scored_partitions
from pipeline.stages.sentiment.labels import SentimentResult
from pipeline.stages.sentiment.scoring import MentionScoring, ScoringRound
from pipeline.stages.stage_result import MetricDelta, OutRecord, StageResult

STAGE = "sentiment"
log = logging.getLogger(__name__)


def scored_result(scoring: MentionScoring, scoring_round: ScoringRound,
                  outcome: Sequence[SentimentResult] | Exception,
                  partitions: int) -> StageResult:
    """Write the model's ``outcome`` onto the round's mentions and send them to each brand.

    Each ``scored`` partition gets its mentions as micro-batch records
    (:meth:`~pipeline.records.MentionCodec.encode_batches`). The metrics count the mentions that
    inherited a copy's result, or the failure.
    """
    mentions = scoring_round.mentions
    if isinstance(outcome, Exception):  # never lose the batch: it goes on unscored
        log.warning("sentiment: %d mentions go on unscored: %s", len(mentions), outcome)
        scoring.fail(scoring_round, outcome)
        metrics = [MetricDelta("stage_failures", (("stage", STAGE),
                                                  ("reason", type(outcome).__name__)), 1)]
    else:
        metrics = [MetricDelta("model_skipped", (), scoring.finish(scoring_round, outcome))]
    return StageResult(records=scored_records(mentions, partitions), metrics=metrics)


def scored_records(mentions: Sequence[ScoredMention], partitions: int) -> list[OutRecord]:
    """Scored mentions as ``mentions.scored`` micro-batch records, to each brand's partition."""
    by_partition: dict[int, list[ScoredMention]] = {}
    for mention in mentions:
        for target in scored_partitions(mention, partitions):
            by_partition.setdefault(target, []).append(mention)
    return [OutRecord("scored", value, partition=partition)
            for partition, group in by_partition.items()
            for value in SCORED.encode_batches(group)]
