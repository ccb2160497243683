"""Sentiment onto mention records: the ``sentiment`` field, and copies that inherit it.

A copy of a post (a mention whose ``duplicate_of`` names its conversation's first copy)
takes its first copy's result instead of a model call while :class:`CopyMemory` remembers
it (:func:`score_mentions`).

With :class:`~pipeline.stages.sentiment.targets.BrandTargets`, a mention naming several
brands also gets ``sentiment_by_brand`` (brand -> ``{label, scores}``): its segments are
scored in the same model call as the mentions (:func:`model_inputs`), and its copies inherit
it too. A mention naming one brand costs one ``len`` more.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import msgspec
from msgspec import UNSET

from pipeline.caching import BoundedCache
from pipeline.records import ScoredMention, Sentiment, brands_of
from pipeline.stages.sentiment.labels import LABELS, SentimentResult
from pipeline.stages.sentiment.targets import BrandTargets, TargetPlan, names_several_brands

BY_BRAND: Final = "sentiment_by_brand"


class CopyMemory:
    """Sentiment of recent conversations, so that their copies skip the model.

    A conversation is keyed by its first copy's id (a mention's ``duplicate_of``, or its own
    id when it is the first). Bounded: the oldest conversations are forgotten first, and a
    copy whose conversation was forgotten (or was scored on another worker) is scored again.
    """

    def __init__(self, capacity: int = 200_000) -> None:
        self.capacity = capacity
        self._results = BoundedCache[str, SentimentResult](capacity)
        # the per-brand results of conversations naming several brands
        self._by_brand = BoundedCache[str, dict[str, Sentiment]](capacity)

    def __len__(self) -> int:
        return len(self._results)

    def plan(self, mentions: Sequence[ScoredMention]
             ) -> tuple[list[int], dict[int, SentimentResult], dict[int, int]]:
        """Split a batch into what the model must score and what inherits a result.

        Returns the positions to score, the positions that inherit a remembered result, and
        the positions that inherit from a first copy scored in this same batch (position ->
        that copy's position).
        """
        to_score: list[int] = []
        remembered: dict[int, SentimentResult] = {}
        in_batch: dict[int, int] = {}
        scored_here: dict[str, int] = {}
        for position, mention in enumerate(mentions):
            conversation = conversation_of(mention)
            known = self._results.get(conversation)
            if known is not None and mention.duplicate_of:
                remembered[position] = known
            elif conversation in scored_here and mention.duplicate_of:
                in_batch[position] = scored_here[conversation]
            else:
                to_score.append(position)
                scored_here.setdefault(conversation, position)
        return to_score, remembered, in_batch

    def remember(self, mention: ScoredMention, result: SentimentResult) -> None:
        """Keep a scored mention's result for its conversation's later copies."""
        conversation = conversation_of(mention)
        # forgotten and remembered again: the newest use is the last to be evicted
        self._results.pop(conversation, None)
        self._results.remember(conversation, result)
        by_brand = mention.sentiment_by_brand
        if by_brand is not UNSET:
            self._by_brand.pop(conversation, None)
            self._by_brand.remember(conversation, by_brand)

    def by_brand(self, mention: ScoredMention) -> dict[str, Sentiment] | None:
        """The remembered ``sentiment_by_brand`` of a mention's conversation, if any."""
        return self._by_brand.get(conversation_of(mention))


def conversation_of(mention: ScoredMention) -> str:
    """The id of the first copy of a mention's conversation."""
    return mention.duplicate_of or mention.id


def model_inputs(mentions: Sequence[ScoredMention], positions: Sequence[int],
                 targets: BrandTargets | None = None) -> tuple[list[str], list[object]]:
    """The texts at ``positions``, and the token ids the ingest stage carried for each.

    With ``targets``, the segments of those mentions that name several brands follow, in
    order (no carried ids: they are tokenised where they are scored).
    """
    texts = [mentions[i].text for i in positions]
    carried: list[object] = [mentions[i].sentiment_tokens or None for i in positions]
    if targets is not None:
        segments = [segment for i in positions if names_several_brands(mentions[i])
                    for segment in _plan(targets, mentions[i]).segments]
        texts += segments
        carried += [None] * len(segments)
    return texts, carried


def _plan(targets: BrandTargets, mention: ScoredMention) -> TargetPlan:
    lang = mention.lang
    return targets.plan(mention.text, brands_of(mention), lang if isinstance(lang, str) else None)


def drop_carried_tokens(mentions: Sequence[ScoredMention]) -> None:
    """Take the carried token ids off scored mentions: nothing downstream reads them."""
    for mention in mentions:
        mention.sentiment_tokens = UNSET


def sentiment_record(result: SentimentResult, *, inherited: bool = False) -> Sentiment:
    """The ``sentiment`` field of a mention record.

    >>> sentiment_record(SentimentResult("neutral", {"negative": 0.1, "neutral": 0.8,
    ...                                              "positive": 0.1})).label
    'neutral'
    """
    return Sentiment(result.label, {label: round(result.scores[label], 4) for label in LABELS},
                     inherited)


def score_mentions(mentions: Sequence[ScoredMention], scored: Sequence[SentimentResult],
                   plan: tuple[list[int], dict[int, SentimentResult], dict[int, int]],
                   memory: CopyMemory, targets: BrandTargets | None = None) -> int:
    """Write ``sentiment`` into each mention from a plan and the model's results.

    ``scored`` holds the results of :func:`model_inputs`' texts for ``plan``'s positions to
    score (with the same ``targets``), in that order. Returns how many mentions inherited a
    result instead of a model call.
    """
    to_score, remembered, in_batch = plan
    segments = list(scored[len(to_score):])
    for position, result in zip(to_score, scored[:len(to_score)], strict=True):
        mention = mentions[position]
        mention.sentiment = sentiment_record(result)
        if targets is not None and names_several_brands(mention):
            target_plan = _plan(targets, mention)
            mine, segments = (segments[:len(target_plan.segments)],
                              segments[len(target_plan.segments):])
            mention.sentiment_by_brand = {
                brand: sentiment_record(by_brand)
                for brand, by_brand in targets.combine(target_plan, result, mine).items()}
        memory.remember(mention, result)
    if segments:
        raise ValueError(f"{len(segments)} results left over: model_inputs had other targets")
    for position, result in remembered.items():
        mentions[position].sentiment = sentiment_record(result, inherited=True)
        by_brand = memory.by_brand(mentions[position])
        if by_brand is not None:
            mentions[position].sentiment_by_brand = by_brand
    for position, source in in_batch.items():
        first = mentions[source].sentiment
        if isinstance(first, Sentiment):
            mentions[position].sentiment = msgspec.structs.replace(first, inherited=True)
        if mentions[source].sentiment_by_brand is not UNSET:
            mentions[position].sentiment_by_brand = mentions[source].sentiment_by_brand
    return len(remembered) + len(in_batch)


__all__ = [
    "BY_BRAND",
    "CopyMemory",
    "conversation_of",
    "drop_carried_tokens",
    "model_inputs",
    "score_mentions",
    "sentiment_record",
]
