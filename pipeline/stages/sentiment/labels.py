"""The three sentiment labels, a checkpoint's classes mapped onto them, and one result.

>>> label_mapping({0: "Bad", 1: "Meh", 2: "Good"}, {"Meh": "neutral"})
['negative', 'neutral', 'positive']
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
from msgspec import UNSET

from pipeline.records import ScoredMention, Sentiment

LABELS: tuple[str, ...] = ("negative", "neutral", "positive")

# Spellings of the three classes found in public sentiment checkpoints' id2label.
_ALIASES = {
    "negative": "negative", "neg": "negative", "bad": "negative",
    "neutral": "neutral", "neu": "neutral", "none": "neutral", "mixed": "neutral",
    "positive": "positive", "pos": "positive", "good": "positive",
    # nlptown-style star ratings
    "1 star": "negative", "2 stars": "negative", "3 stars": "neutral",
    "4 stars": "positive", "5 stars": "positive",
}


class SentimentResult(NamedTuple):
    """The label of one mention and the probability of each of the three classes.

    A named tuple: a GPU worker makes one per text while holding the GIL, and reading a
    batch back costs less per row with it than with a frozen dataclass (measured: see
    benchmarks/README.md).
    """

    label: str
    scores: dict[str, float]


def label_mapping(id2label: Mapping[int, str],
                  overrides: Mapping[str, str] | None = None) -> list[str]:
    """Map each of a checkpoint's class indices onto negative / neutral / positive.

    ``overrides`` maps the checkpoint's own names (case-insensitive) to ours and wins.
    Names like ``LABEL_0`` carry no meaning: a 3-class checkpoint using them is read in
    the common negative, neutral, positive order; a 2-class one as negative, positive.
    Several classes may map onto one label (their probabilities are added).

    >>> label_mapping({0: "NEG", 1: "NEU", 2: "POS"})
    ['negative', 'neutral', 'positive']
    >>> label_mapping({0: "LABEL_0", 1: "LABEL_1"})
    ['negative', 'positive']
    """
    lowered = {k.lower(): v for k, v in (overrides or {}).items()}
    names = [id2label[i] for i in range(len(id2label))]
    mapped: list[str] = []
    for name in names:
        key = name.strip().lower()
        target = lowered.get(key) or _ALIASES.get(key)
        if target is None and not re.fullmatch(r"label_\d+", key):
            target = next((v for k, v in _ALIASES.items() if len(k) > 3 and k in key), None)
        if target is None:
            break
        if target not in LABELS:
            raise ValueError(f"label override {name!r} -> {target!r} is not one of {LABELS}")
        mapped.append(target)
    if len(mapped) == len(names):
        return mapped
    positional = {3: list(LABELS), 2: ["negative", "positive"]}
    if all(re.fullmatch(r"label_\d+", n.strip().lower()) for n in names) and (
        len(names) in positional
    ):
        return positional[len(names)]
    raise ValueError(
        f"cannot map the checkpoint's labels {names} onto {LABELS}; pass label_overrides"
    )


def sentiment_toward(mention: ScoredMention, brand: str) -> Sentiment | None:
    """A mention's sentiment toward ``brand`` (None when unscored).

    Its ``sentiment_by_brand`` entry for ``brand`` if it has one, else ``sentiment``.

    >>> mention = ScoredMention(id="1", text="", created_at="",
    ...     sentiment=Sentiment("positive", {}),
    ...     sentiment_by_brand={"telvia": Sentiment("negative", {})})
    >>> sentiment_toward(mention, "telvia").label, sentiment_toward(mention, "acme").label
    ('negative', 'positive')
    """
    by_brand = mention.sentiment_by_brand
    if by_brand is not UNSET:
        toward = by_brand.get(brand)
        if toward is not None:
            return toward
    sentiment = mention.sentiment
    return None if sentiment is UNSET else sentiment


# what a text with nothing left to score after cleaning gets
_EMPTY_RESULT = SentimentResult("neutral", {"negative": 0.0, "neutral": 1.0, "positive": 0.0})


def label_results(scores: np.ndarray) -> list[SentimentResult]:
    """One result per row of a (texts, 3) array of negative/neutral/positive scores.

    >>> label_results(np.array([[0.7, 0.2, 0.1]]))[0].label
    'negative'
    """
    winners = scores.argmax(axis=1).tolist()
    return [SentimentResult(LABELS[winner], {
                "negative": negative, "neutral": neutral, "positive": positive})
            for (negative, neutral, positive), winner in zip(scores.tolist(), winners,
                                                             strict=True)]


__all__ = [
    "LABELS",
    "SentimentResult",
    "label_mapping",
    "label_results",
    "sentiment_toward",
]
