"""One record's mentions through the sentiment stage, around the caller's model call.

The worker's agent awaits the async batcher and the in-process harness calls the engine
directly; everything before and after that call is here, so both run the same steps: plan
which mentions the model must read (copies inherit, brands get their segments), write the
results or the failure, drop the carried token ids, mark which mentions need a reply.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.records import ScoredMention
from pipeline.stages.reply import ReplyClassifier, build_reply_classifier
from pipeline.stages.sentiment.labels import SentimentResult
from pipeline.stages.sentiment.mentions import (
    CopyMemory,
    drop_carried_tokens,
    model_inputs,
    score_mentions,
)
from pipeline.stages.sentiment.targets import BrandTargets, build_brand_targets


@dataclass(frozen=True, slots=True)
class ScoringRound:
    """What one record's mentions ask of the model: ``texts`` and their carried ids."""

    mentions: list[ScoredMention]
    plan: tuple[list[int], dict[int, SentimentResult], dict[int, int]]
    texts: list[str]
    carried: list[object]


@dataclass(slots=True)
class MentionScoring:
    """The sentiment stage's state around the model: copy memory, brand targets, replies."""

    copies: CopyMemory
    targets: BrandTargets
    replies: ReplyClassifier

    @classmethod
    def for_brands(cls, brands_file: Path) -> MentionScoring:
        """Fresh state for the listening queries in ``brands_file``."""
        return cls(CopyMemory(), build_brand_targets(brands_file),
                   build_reply_classifier(brands_file))

    def begin(self, mentions: list[ScoredMention]) -> ScoringRound:
        """Plan ``mentions``: the texts the model must score (possibly none)."""
        plan = self.copies.plan(mentions)
        texts, carried = model_inputs(mentions, plan[0], self.targets)
        return ScoringRound(mentions, plan, texts, carried)

    def finish(self, scoring: ScoringRound, results: Sequence[SentimentResult]) -> int:
        """Write the model's results; the number of mentions that inherited a copy's."""
        inherited = score_mentions(scoring.mentions, results, scoring.plan, self.copies,
                                   self.targets)
        self.settle(scoring.mentions)
        return inherited

    def fail(self, scoring: ScoringRound, error: Exception) -> None:
        """The model call failed: the mentions go on unscored, the error named on each."""
        for mention in scoring.mentions:
            mention.sentiment = None
            mention.sentiment_error = f"{type(error).__name__}: {error}"
        self.settle(scoring.mentions)

    def settle(self, mentions: list[ScoredMention]) -> None:
        """The steps after the model, alone where no model runs (``mentions process``)."""
        drop_carried_tokens(mentions)
        # which need an answer: cues, language, handles and the scores just written
        self.replies.mark(mentions)
