"""Incident context: the mentions behind an incident, accumulated in bounded memory.

:class:`IncidentContext` keeps weighted space-saving top-k sketches
(:class:`~pipeline.stages.alerts.topk.TopK`) for terms, hashtags, languages and voices, a few
sample mentions, and a bounded map from mention id to author that credits copies to the
author of the original. Voices are ranked by *reach*: the author's followers (once), plus
``ENGAGEMENT_REACH`` per like, repost or reply, plus the followers of everyone who copied one
of their mentions.

A mention is read for ``id``, ``text``, ``lang``, ``url``, ``author`` (``id``, ``handle``,
``followers``), ``engagement`` (``likes``, ``reposts``, ``replies``) and ``duplicate_of``;
missing or malformed values count as empty.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from msgspec import UNSET

from pipeline.records import ScoredMention
from pipeline.stages.alerts.record import CRISIS, ContextSummary, SampleMention, Voice
from pipeline.stages.alerts.terms import is_negative, mention_terms
from pipeline.stages.alerts.topk import TopK

# One like, repost or reply is counted as this many people reached: engagement pushes a
# mention into other feeds, and sources rarely say how far.
ENGAGEMENT_REACH: Final = 10.0
_SAMPLE_TEXT_CHARS = 280


def _int(value: Any) -> int:
    """A non-negative int from a possibly missing or malformed count."""
    try:
        return max(int(value or 0), 0)
    except (TypeError, ValueError):
        return 0


def _interactions(engagement: Any) -> int:
    """Likes, reposts and replies of a mention; 0 when it carries no engagement."""
    if not isinstance(engagement, Mapping):
        return 0
    return sum(_int(engagement.get(k)) for k in ("likes", "reposts", "replies"))


class IncidentContext:
    """Bounded accumulator of the mentions behind an incident; mergeable and serialisable.

    Memory is fixed by ``capacity`` (per sketch), ``samples`` and ``origins`` (how many
    recent mention ids remember their author, so that copies credit the original author),
    not by the number of mentions.

    >>> context = IncidentContext(capacity=8, samples=1)
    >>> context.add(ScoredMention(id="1", text="Battery fire again #AcmeLeak", created_at="",
    ...     lang="en", author={"id": "a", "handle": "ann", "followers": 900}))
    >>> context.summary().top_hashtags
    (('#acmeleak', 1),)
    """

    def __init__(self, *, capacity: int = 48, samples: int = 3, origins: int = 96) -> None:
        self.capacity = capacity
        self.sample_limit = samples
        self.origin_limit = origins
        self.mentions = 0
        self.terms = TopK(capacity)
        self.hashtags = TopK(capacity)
        self.languages = TopK(capacity)
        self.voices = TopK(capacity)
        # author id -> [handle, followers, mentions, copies, engagement], for sketch keys only
        self.voice_info: dict[str, list[Any]] = {}
        self.samples: list[dict[str, Any]] = []
        # mention id -> author id, insertion-ordered so the oldest is dropped first
        self.origins: dict[str, str] = {}

    def add(self, mention: ScoredMention) -> None:
        """Account one enriched mention (see the module docstring for the keys read)."""
        self.mentions += 1
        self._count_terms_and_language(mention)
        author: Mapping[str, Any] = {} if mention.author is UNSET else mention.author
        author_id = str(author.get("id") or "unknown")
        handle = author.get("handle")
        followers = _int(author.get("followers"))
        interactions = _interactions(mention.engagement)
        # an author's audience is counted once, however often they post
        known = author_id in self.voice_info
        self._credit(author_id, handle, followers,
                     (0.0 if known else followers) + ENGAGEMENT_REACH * interactions,
                     mentions=1, copies=0, engagement=interactions)
        original = mention.duplicate_of
        if original:
            self._credit_copy(original, author_id, followers)
            return
        mention_id = mention.id
        self._remember_origin(mention_id, author_id)
        self._offer_sample({
            "id": mention_id,
            "text": mention.text[:_SAMPLE_TEXT_CHARS],
            "url": None if mention.url is UNSET else mention.url,
            "handle": handle,
            "author_id": author_id,
            "lang": None if mention.lang is UNSET else mention.lang,
            "reach": followers + ENGAGEMENT_REACH * interactions,
            "copies": 0,
        })

    def _count_terms_and_language(self, mention: ScoredMention) -> None:
        terms, hashtags = mention_terms(mention.text)
        for term in terms:
            self.terms.add(term)
        for hashtag in hashtags:
            self.hashtags.add(hashtag)
        self.languages.add(str(mention.lang or "und"))

    def _credit_copy(self, original: Any, copier_id: str, followers: int) -> None:
        """Credit a copy's audience to the original's author and to its sample, if held."""
        origin_author = self.origins.get(str(original))
        if origin_author is not None and origin_author != copier_id:
            # a copy shows the original author's words to the copier's followers
            info = self.voice_info.get(origin_author)
            self._credit(origin_author, info[0] if info else None,
                         info[1] if info else 0, float(followers),
                         mentions=0, copies=1, engagement=0)
        for sample in self.samples:
            if sample["id"] == original:
                sample["reach"] += followers
                sample["copies"] += 1
        self.samples.sort(key=lambda s: (-s["reach"], s["id"]))

    def _remember_origin(self, mention_id: str, author_id: str) -> None:
        """Remember who wrote an original, so that its copies credit them; oldest out first."""
        if mention_id:
            self.origins[mention_id] = author_id
            if len(self.origins) > self.origin_limit:
                del self.origins[next(iter(self.origins))]

    def _credit(self, author_id: str, handle: Any, followers: int, reach: float, *,
                mentions: int, copies: int, engagement: int) -> None:
        evicted = self.voices.add(author_id, reach)
        if evicted is not None:
            self.voice_info.pop(evicted, None)
        info = self.voice_info.setdefault(author_id, [handle, followers, 0, 0, 0])
        info[0] = info[0] or handle
        info[1] = max(info[1], followers)
        info[2] += mentions
        info[3] += copies
        info[4] += engagement

    def _offer_sample(self, sample: dict[str, Any]) -> None:
        # one sample per author: five posts of one account say less than five accounts
        for index, held in enumerate(self.samples):
            if held["author_id"] == sample["author_id"]:
                if sample["reach"] > held["reach"]:
                    self.samples[index] = sample
                break
        else:
            self.samples.append(sample)
        self.samples.sort(key=lambda s: (-s["reach"], s["id"]))
        del self.samples[self.sample_limit:]

    def merge(self, other: IncidentContext) -> None:
        """Fold ``other`` (e.g. one window's context) into this one."""
        self.mentions += other.mentions
        self.terms.merge(other.terms)
        self.hashtags.merge(other.hashtags)
        self.languages.merge(other.languages)
        for author_id, info in other.voice_info.items():
            mine = self.voice_info.get(author_id)
            if mine is None:
                self.voice_info[author_id] = list(info)
            else:
                mine[0] = mine[0] or info[0]
                mine[1] = max(mine[1], info[1])
                for i in (2, 3, 4):
                    mine[i] += info[i]
        self.voices.merge(other.voices)
        for author_id in set(self.voice_info) - set(self.voices.weights):
            del self.voice_info[author_id]
        for mention_id, author_id in other.origins.items():
            self.origins[mention_id] = author_id
        while len(self.origins) > self.origin_limit:
            del self.origins[next(iter(self.origins))]
        for sample in other.samples:
            self._offer_sample(dict(sample))

    def summary(self, n: int = 5, *, ignore_terms: Iterable[str] = ()) -> ContextSummary:
        """Top ``n`` terms, hashtags and voices, language shares and the samples.

        ``ignore_terms`` (folded words such as the brand's own name) are left out of terms.
        """
        ignored = set(ignore_terms)
        terms = [(t, round(w)) for t, w in self.terms.top(n + len(ignored)) if t not in ignored]
        languages_total = self.languages.total() or 1.0
        voices = []
        for author_id, reach in self.voices.top(n):
            info = self.voice_info.get(author_id, [None, 0, 0, 0, 0])
            voices.append(Voice(author_id, info[0], int(info[1]), int(info[2]), int(info[3]),
                                int(info[4]), float(reach)))
        return ContextSummary(
            mentions=self.mentions,
            top_terms=tuple(terms[:n]),
            top_hashtags=tuple((h, round(w)) for h, w in self.hashtags.top(n)),
            top_voices=tuple(voices),
            languages=tuple((lang, w / languages_total) for lang, w in self.languages.top(n)),
            samples=tuple(
                SampleMention(s["id"], s["text"], s["url"], s["handle"], s["lang"],
                              float(s["reach"]), int(s["copies"]))
                for s in self.samples
            ),
        )

    def to_state(self) -> dict[str, Any]:
        """A JSON-able dict of the accumulator."""
        return {
            "capacity": self.capacity, "sample_limit": self.sample_limit,
            "origin_limit": self.origin_limit, "mentions": self.mentions,
            "terms": self.terms.weights, "hashtags": self.hashtags.weights,
            "languages": self.languages.weights, "voices": self.voices.weights,
            "voice_info": self.voice_info, "samples": self.samples, "origins": self.origins,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> IncidentContext:
        """Rebuild an accumulator from :meth:`to_state` output."""
        context = cls(capacity=int(state["capacity"]), samples=int(state["sample_limit"]),
                      origins=int(state["origin_limit"]))
        context.mentions = int(state["mentions"])
        context.terms.weights = {k: float(v) for k, v in state["terms"].items()}
        context.hashtags.weights = {k: float(v) for k, v in state["hashtags"].items()}
        context.languages.weights = {k: float(v) for k, v in state["languages"].items()}
        context.voices.weights = {k: float(v) for k, v in state["voices"].items()}
        context.voice_info = {k: list(v) for k, v in state["voice_info"].items()}
        context.samples = [dict(s) for s in state["samples"]]
        context.origins = dict(state["origins"])
        return context


class _SplitContext:
    """All mentions and negative ones apart: a crisis reads the latter, a volume spike both."""

    __slots__ = ("every", "negative")

    def __init__(self, capacity: int, samples: int) -> None:
        self.every = IncidentContext(capacity=capacity, samples=samples)
        self.negative = IncidentContext(capacity=capacity, samples=samples)

    def add(self, mention: ScoredMention, brand: str | None = None) -> None:
        self.every.add(mention)
        if is_negative(mention, brand):
            self.negative.add(mention)

    def merge(self, other: _SplitContext) -> None:
        self.every.merge(other.every)
        self.negative.merge(other.negative)

    def view(self, kind: str) -> IncidentContext:
        return self.negative if kind == CRISIS else self.every

    def to_state(self) -> dict[str, Any]:
        return {"every": self.every.to_state(), "negative": self.negative.to_state()}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> _SplitContext:
        split = cls.__new__(cls)
        split.every = IncidentContext.from_state(state["every"])
        split.negative = IncidentContext.from_state(state["negative"])
        return split


__all__ = [
    "ENGAGEMENT_REACH",
    "IncidentContext",
]
