"""Reply stage core: which mentions need an answer from the brand, and why.

Each scored mention gets ``needs_reply``: ``"complaint"``, ``"request"``, ``"question"``,
``"praise"`` (worth a thank-you) or ``None``. It reads what the pipeline already knows of the
mention: its text's cues in its language (question marks, interrogatives opening a clause,
complaint, request and thanks words, asking the audience, rhetorical openers:
:mod:`~pipeline.stages.reply.cues`), its sentiment
scores, and whether it addresses one of its brands' handles; a small logistic head
(:mod:`~pipeline.stages.reply.head`) weighs them. Retweets and copies (a ``duplicate_of``
from the dedup stage) never need a reply: their first copy is the one to answer.

It runs where sentiment is written (the sentiment agent and ``mentions process``), so the
scored topic, the offline output and the store all carry the same verdict; the cost is a few
regex passes and a dot product per mention (measured: see benchmarks/README.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np

from pipeline.records import ScoredMention, Sentiment, brands_of
from pipeline.stages.brand_query import positive_terms
from pipeline.stages.brands import load_brand_rules
from pipeline.stages.reply.cues import cue_features, is_retweet
from pipeline.stages.reply.head import CLASSES, ReplyHead, load_head
from pipeline.text import tokenize

REASONS: Final = CLASSES[1:]
# what a mention without sentiment (the stage not run, or it failed) is read as
_NO_SENTIMENT: Final = {"negative": 0.0, "neutral": 1.0, "positive": 0.0}


def build_reply_classifier(brands_file: Path) -> ReplyClassifier:
    """The classifier with the committed head and the handles of the listening queries."""
    return ReplyClassifier(handles=brand_handles(load_brand_rules(brands_file)))


def brand_handles(rules: Iterable[Any]) -> dict[str, frozenset[str]]:
    """Each listening query's ``@handle`` terms (folded), by query id.

    A mention that names one of its brands' handles addresses the brand.
    """
    handles: dict[str, frozenset[str]] = {}
    for rule in rules:
        found = {term.words[0] for term in positive_terms(rule.parsed)
                 if len(term.words) == 1 and term.words[0].startswith("@")}
        if found:
            handles[rule.id] = frozenset(found)
    return handles


def is_copy(mention: ScoredMention) -> bool:
    """Whether the mention repeats another (a dedup copy or a retweet): never answered."""
    return bool(mention.duplicate_of) or is_retweet(mention.text)


def sentiment_scores(mention: ScoredMention) -> Mapping[str, float]:
    """The mention's sentiment scores, or a neutral reading when it has none."""
    sentiment = mention.sentiment
    if isinstance(sentiment, Sentiment) and all(name in sentiment.scores
                                                for name in _NO_SENTIMENT):
        return sentiment.scores
    return _NO_SENTIMENT


class ReplyClassifier:
    """Marks mention records with ``needs_reply`` (see the module docstring).

    >>> classifier = ReplyClassifier()
    >>> def mention(text: str) -> ScoredMention:
    ...     return ScoredMention(id="1", text=text, created_at="", lang="es")
    >>> classifier.reason(mention("@acme ¿A qué hora abre la tienda de Sol?"))
    'question'
    >>> classifier.reason(mention("RT @fan: @acme ¿A qué hora abre la tienda?"))
    """

    def __init__(self, head: ReplyHead | None = None,
                 handles: Mapping[str, frozenset[str]] | None = None) -> None:
        self.head = head if head is not None else load_head()
        self.handles = dict(handles or {})

    def addresses_brand(self, mention: ScoredMention) -> bool:
        """Whether the text names a handle of one of the brands the mention matched."""
        brands = brands_of(mention)
        if not self.handles or not brands:
            return False
        wanted = set().union(*(self.handles.get(brand, frozenset()) for brand in brands))
        return bool(wanted) and not wanted.isdisjoint(tokenize(mention.text))

    def features(self, mention: ScoredMention) -> np.ndarray:
        """The head's feature vector of one mention."""
        lang = mention.lang
        return cue_features(mention.text, lang if isinstance(lang, str) else "und",
                            sentiment_scores(mention), addressed=self.addresses_brand(mention))

    def reasons(self, mentions: Sequence[ScoredMention]) -> list[str | None]:
        """The ``needs_reply`` of each mention, in order."""
        answerable = [i for i, mention in enumerate(mentions) if not is_copy(mention)]
        verdicts: list[str | None] = [None] * len(mentions)
        if answerable:
            matrix = np.stack([self.features(mentions[i]) for i in answerable])
            for position, reason in zip(answerable, self.head.reasons(matrix), strict=True):
                verdicts[position] = reason
        return verdicts

    def reason(self, mention: ScoredMention) -> str | None:
        """The ``needs_reply`` of one mention."""
        return self.reasons([mention])[0]

    def mark(self, mentions: Sequence[ScoredMention]) -> int:
        """Write ``needs_reply`` on every mention record; returns how many need a reply."""
        verdicts = self.reasons(mentions)
        for mention, verdict in zip(mentions, verdicts, strict=True):
            mention.needs_reply = verdict
        return sum(verdict is not None for verdict in verdicts)


__all__ = [
    "REASONS",
    "ReplyClassifier",
    "brand_handles",
    "build_reply_classifier",
    "is_copy",
    "sentiment_scores",
]
