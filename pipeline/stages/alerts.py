"""Alerting core: incident lifecycle per brand, incident context, alert records and routing.

The spike detector (:mod:`pipeline.stages.spikes`) scores every closed window of a brand on
three series: volume, negative volume and negative share. This module turns those scores into
*incidents*, which a PR team can act on without being flooded:

- **Kinds.** A *crisis* is an anomaly in negative volume or negative share carried by at least
  ``min_negative_volume`` negative mentions in the window (per brand: ``min_crisis_volume`` in
  the listening queries), so "3 angry tweets where 0.2 were expected" stays quiet. A
  *volume spike* (more talk, not more anger) is a separate, lower-severity kind. A brand has
  at most one incident at a time; a volume spike that turns negative is promoted to a crisis
  (same incident, an update), never the reverse.
- **Severity.** ``info`` < ``warning`` < ``critical``. A volume spike is ``info`` (``warning``
  when extreme); a crisis is ``warning``, ``critical`` when its score is extreme and it
  carries several times the brand's minimum. An incident's severity only goes up.
- **Lifecycle.** ``open`` -> ``update`` ... -> ``resolved``. Hysteresis: a window opens an
  incident at ``open_score`` but keeps it open down to ``stay_open_score``; the incident
  resolves after ``calm_windows`` consecutive calm windows: below that score, or with a
  count back within ``calm_ratio`` of the baseline (or under half the kind's minimum). An
  update is emitted only when the incident materially grows: severity up, promotion to
  crisis, or the window's magnitude (negative mentions for a crisis, mentions for a volume
  spike) reaching ``growth`` times the magnitude last reported. After a resolution a
  ``cooldown`` blocks a new incident of the same brand unless it is more severe (a flapping
  series does not re-alert).
- **Restarts.** :class:`BrandIncidents` state is a JSON-ready dict (the agent keeps it in a
  Faust table with a changelog). Incident ids are derived from event time and every event
  carries ``idempotency_key = brand/incident id/sequence``: a worker that restarts from
  older state and replays the same windows re-emits the *same* keys, which the notifier and
  downstream consumers dedupe (at-least-once delivery, idempotent effects). Windows at or
  before the last one processed are ignored.

Context (:class:`IncidentContext`) is accumulated from the enriched mentions in bounded
memory: weighted space-saving top-k sketches (Metwally, Agrawal and El Abbadi, 2005) for
terms, hashtags, languages and voices, a few sample mentions, and a bounded map from mention
id to author that credits copies to the author of the original. Voices are ranked by
*reach*: the author's followers (once), plus ``ENGAGEMENT_REACH`` per like, repost or reply,
plus the followers of everyone who copied one of their mentions.

Typical use, per brand (the agent keys the state by brand)::

    incidents = BrandIncidents("acme-mobile", config, brand_name="Acme Mobile")
    incidents.observe(mention, windows.window_start(created_at))   # every scored mention
    for window in windows.close_until(watermark):                   # every closed window
        observation = WindowObservation.from_baselines(window, volume, negative, share)
        for alert in incidents.update(observation):
            send(alert.idempotency_key, alert.to_dict())
            print(render_text(alert))

:class:`RoutingRules` maps brand patterns, kinds and a minimum severity to webhook
destinations (see :mod:`pipeline.stages.notify`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import urlsplit

from pipeline.stages.brands import tokenize
from pipeline.stages.spikes import Baseline, ClosedWindow

CRISIS: Final = "crisis"
VOLUME_SPIKE: Final = "volume_spike"
KINDS: Final = (CRISIS, VOLUME_SPIKE)
OPENED: Final = "open"
UPDATED: Final = "update"
RESOLVED: Final = "resolved"

# One like, repost or reply is counted as this many people reached: engagement pushes a
# mention into other feeds, and sources rarely say how far.
ENGAGEMENT_REACH: Final = 10.0
_STATE_VERSION = 1
_URL = re.compile(r"https?://\S+|www\.\S+", re.IGNORECASE)
# French and Italian elisions ("l'appareil", "dell'app") would otherwise be separate terms
_ELISION = re.compile(r"^(?:l|d|j|m|n|s|t|c|qu|un|dell|all|nell|sull|dall)'")
# Function words of the pipeline's languages that would otherwise top every term list.
_STOPWORD_TEXT = """
    the and for are but not you all any can her was one our out has have had this that with
    they them their there what when who will would from your about just like been were into
    than then its it's i'm dont don't get got why how more very too also only really still
    les des une est pas que qui pour dans sur par avec mais plus vous nous ils elle sont
    ont aux ses son sa leur tout tous cette ces comme fait être etre avoir été ete
    los las una por con para del que como pero más mas muy sus este esta esto son hay fue
    ser está esta todo todos nos les ese eso ya
    uma com por para dos das não nao mais muito seu sua isso esse essa está esta são sao foi
    tem ter pra
    der die das und ist nicht mit den dem des ein eine einen auf für fur sich auch noch wie
    von zu wir ihr sie sind war hat haben aber oder kein keine mehr schon nur
    che non per una con del della dei gli le sono questo questa come più piu anche nel alla
    hanno suo sua perché perche gia già tutto
    rt via amp
"""
_STOPWORDS: Final = frozenset(_STOPWORD_TEXT.split())


class Severity(IntEnum):
    """How urgent an incident is; ordered, so ``Severity.CRITICAL > Severity.WARNING``."""

    INFO = 1
    WARNING = 2
    CRITICAL = 3

    @property
    def label(self) -> str:
        """The lowercase name used on the wire (``"warning"``)."""
        return self.name.lower()

    @classmethod
    def parse(cls, value: str | int) -> Severity:
        """``Severity.parse("critical")`` or ``Severity.parse(3)``."""
        if isinstance(value, str):
            try:
                return cls[value.strip().upper()]
            except KeyError:
                raise ValueError(f"unknown severity {value!r}") from None
        return cls(value)


# --------------------------------------------------------------------------------------------
# Bounded context: top-k sketches, voices, samples
# --------------------------------------------------------------------------------------------


class TopK:
    """Weighted space-saving heavy hitters: at most ``capacity`` keys, whatever the stream.

    A new key that finds the sketch full replaces the lightest key and inherits its weight,
    so a heavy key is never lost and a reported weight overestimates by at most the weight of
    the lightest key. Report fewer keys than ``capacity`` for accurate ranks.

    >>> top = TopK(2)
    >>> for word in ["leak", "leak", "fire", "price", "leak"]:
    ...     _ = top.add(word)
    >>> top.top(1)
    [('leak', 3.0)]
    """

    __slots__ = ("capacity", "weights")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.weights: dict[str, float] = {}

    def add(self, key: str, weight: float = 1.0) -> str | None:
        """Count ``key`` with ``weight``; return the key it evicted, if any."""
        weights = self.weights
        if key in weights:
            weights[key] += weight
            return None
        if len(weights) < self.capacity:
            weights[key] = weight
            return None
        victim = min(weights, key=weights.__getitem__)
        floor = weights.pop(victim)
        weights[key] = floor + weight
        return victim

    def top(self, n: int) -> list[tuple[str, float]]:
        """The ``n`` heaviest keys, heaviest first (ties by key, for stable output)."""
        ranked = sorted(self.weights.items(), key=lambda item: (-item[1], item[0]))
        return ranked[:n]

    def merge(self, other: TopK) -> None:
        """Add ``other``'s weights into this sketch, keeping the ``capacity`` heaviest."""
        for key, weight in other.weights.items():
            self.weights[key] = self.weights.get(key, 0.0) + weight
        if len(self.weights) > self.capacity:
            self.weights = dict(self.top(self.capacity))

    def total(self) -> float:
        """Sum of the weights held (all weight ever added, as evictions pass it on)."""
        return sum(self.weights.values())


def _int(value: Any) -> int:
    """A non-negative int from a possibly missing or malformed count."""
    try:
        return max(int(value or 0), 0)
    except (TypeError, ValueError):
        return 0


def is_negative(mention: Mapping[str, Any]) -> bool:
    """True when the sentiment stage labelled the mention negative."""
    sentiment = mention.get("sentiment")
    return isinstance(sentiment, Mapping) and sentiment.get("label") == "negative"


def mention_terms(text: str) -> tuple[set[str], set[str]]:
    """Content words and hashtags of a text (folded, each once); handles and URLs left out."""
    terms: set[str] = set()
    hashtags: set[str] = set()
    for token in tokenize(_URL.sub(" ", text)):
        if token.startswith("#"):
            if len(token) > 2:
                hashtags.add(token)
            continue
        if token.startswith("@"):
            continue
        word = _ELISION.sub("", token)
        if len(word) >= 3 and not word.isdigit() and word not in _STOPWORDS:
            terms.add(word)
    return terms, hashtags


@dataclass(frozen=True, slots=True)
class Voice:
    """An author driving an incident, with what makes them matter."""

    author_id: str
    handle: str | None
    followers: int
    mentions: int
    copies: int
    engagement: int
    reach: float


@dataclass(frozen=True, slots=True)
class SampleMention:
    """One representative mention (never a copy), with its link."""

    id: str
    text: str
    url: str | None
    handle: str | None
    lang: str | None
    reach: float
    copies: int


@dataclass(frozen=True, slots=True)
class ContextSummary:
    """What an alert shows about the mentions behind an incident."""

    mentions: int
    top_terms: tuple[tuple[str, int], ...]
    top_hashtags: tuple[tuple[str, int], ...]
    top_voices: tuple[Voice, ...]
    languages: tuple[tuple[str, float], ...]
    samples: tuple[SampleMention, ...]


_SAMPLE_TEXT_CHARS = 280


class IncidentContext:
    """Bounded accumulator of the mentions behind an incident; mergeable and serialisable.

    Memory is fixed by ``capacity`` (per sketch), ``samples`` and ``origins`` (how many
    recent mention ids remember their author, so that copies credit the original author),
    not by the number of mentions.

    >>> context = IncidentContext(capacity=8, samples=1)
    >>> context.add({"id": "1", "text": "Battery fire again #AcmeLeak", "lang": "en",
    ...              "author": {"id": "a", "handle": "ann", "followers": 900}})
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

    def add(self, mention: Mapping[str, Any]) -> None:
        """Account one enriched mention (see the module docstring for the keys read)."""
        self.mentions += 1
        terms, hashtags = mention_terms(str(mention.get("text") or ""))
        for term in terms:
            self.terms.add(term)
        for hashtag in hashtags:
            self.hashtags.add(hashtag)
        self.languages.add(str(mention.get("lang") or "und"))

        author = mention.get("author")
        if not isinstance(author, Mapping):
            author = {}
        author_id = str(author.get("id") or "unknown")
        handle = author.get("handle")
        followers = _int(author.get("followers"))
        engagement = mention.get("engagement")
        interactions = 0
        if isinstance(engagement, Mapping):
            interactions = sum(_int(engagement.get(k)) for k in ("likes", "reposts", "replies"))
        # an author's audience is counted once, however often they post
        known = author_id in self.voice_info
        self._credit(author_id, handle, followers,
                     (0.0 if known else followers) + ENGAGEMENT_REACH * interactions,
                     mentions=1, copies=0, engagement=interactions)

        mention_id = str(mention.get("id") or "")
        original = mention.get("duplicate_of")
        if original:
            origin_author = self.origins.get(str(original))
            if origin_author is not None and origin_author != author_id:
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
            return
        if mention_id:
            self.origins[mention_id] = author_id
            if len(self.origins) > self.origin_limit:
                del self.origins[next(iter(self.origins))]
        self._offer_sample({
            "id": mention_id,
            "text": str(mention.get("text") or "")[:_SAMPLE_TEXT_CHARS],
            "url": mention.get("url"),
            "handle": handle,
            "author_id": author_id,
            "lang": mention.get("lang"),
            "reach": followers + ENGAGEMENT_REACH * interactions,
            "copies": 0,
        })

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

    def add(self, mention: Mapping[str, Any]) -> None:
        self.every.add(mention)
        if is_negative(mention):
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


# --------------------------------------------------------------------------------------------
# Windows in, alerts out
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WindowObservation:
    """One brand's closed window: observed counts, the baseline's expectations, the scores."""

    brand: str
    start: datetime
    end: datetime
    volume: int
    negative: int
    expected_volume: float
    expected_negative: float
    expected_negative_share: float
    volume_score: float
    negative_score: float
    share_score: float

    @property
    def negative_share(self) -> float:
        """Share of negative mentions; 0 for an empty window."""
        return self.negative / self.volume if self.volume else 0.0

    @classmethod
    def from_baselines(cls, window: ClosedWindow, volume: Baseline, negative: Baseline,
                       share: Baseline) -> WindowObservation:
        """Combine a closed window with the three detectors' ``get()`` after updating them."""
        return cls(window.brand, window.start, window.end, window.volume, window.negative,
                   volume.expected, negative.expected, share.expected,
                   volume.score, negative.score, share.score)


@dataclass(frozen=True, slots=True)
class IncidentConfig:
    """Thresholds of the incident lifecycle; one configuration, per-brand crisis minimums."""

    open_score: float = 0.5
    # hysteresis: an open incident stays open while its score is at least this
    stay_open_score: float = 0.3
    calm_windows: int = 3
    # a window whose count is within this ratio of the baseline is calm, whatever its score
    calm_ratio: float = 1.5
    cooldown: timedelta = timedelta(minutes=30)
    min_negative_volume: int = 10
    # brand id -> minimum negative mentions in a window for a crisis (``min_crisis_volume``)
    brand_min_negative: Mapping[str, int] = field(default_factory=dict)
    min_spike_volume: int = 30
    critical_score: float = 0.8
    # a critical crisis also carries this many times the brand's minimum negative volume
    critical_volume_multiple: float = 3.0
    growth: float = 1.5
    # windows before the opening one whose mentions join the incident's context
    lookback_windows: int = 3
    context_capacity: int = 48
    context_samples: int = 3

    def __post_init__(self) -> None:
        if not 0.0 < self.stay_open_score < self.open_score <= self.critical_score <= 1.0:
            raise ValueError("need 0 < stay_open_score < open_score <= critical_score <= 1")
        if (self.calm_windows < 1 or self.growth <= 1.0 or self.lookback_windows < 0
                or self.calm_ratio < 1.0):
            raise ValueError("need calm_windows >= 1, growth > 1, calm_ratio >= 1 and "
                             "lookback_windows >= 0")
        if self.cooldown < timedelta(0):
            raise ValueError("cooldown must not be negative")

    def min_negative_for(self, brand: str) -> int:
        """The brand's crisis minimum, or the default."""
        return int(self.brand_min_negative.get(brand, self.min_negative_volume))


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert event; :meth:`to_dict` is its JSON form on ``alerts.crisis``."""

    kind: str
    status: str
    severity: Severity
    brand: str
    brand_name: str
    incident_id: str
    sequence: int
    started_at: datetime
    window_start: datetime
    window_end: datetime
    volume: int
    expected_volume: float
    negative: int
    expected_negative: float
    negative_share: float
    expected_negative_share: float
    scores: Mapping[str, float]
    peak: Mapping[str, Any]
    totals: Mapping[str, int]
    context: ContextSummary
    previous_severity: Severity | None = None
    previous_kind: str | None = None

    @property
    def idempotency_key(self) -> str:
        """``brand/incident id/sequence``: equal for a re-emission of the same event."""
        return f"{self.brand}/{self.incident_id}/{self.sequence}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (ISO 8601 times, severity as its label)."""
        ctx = self.context
        return {
            "idempotency_key": self.idempotency_key,
            "kind": self.kind,
            "status": self.status,
            "severity": self.severity.label,
            "previous_severity": self.previous_severity.label if self.previous_severity else None,
            "previous_kind": self.previous_kind,
            "brand": self.brand,
            "brand_name": self.brand_name,
            "incident_id": self.incident_id,
            "sequence": self.sequence,
            "started_at": self.started_at.isoformat(),
            "window_start": self.window_start.isoformat(),
            "window_end": self.window_end.isoformat(),
            "volume": self.volume,
            "expected_volume": self.expected_volume,
            "negative": self.negative,
            "expected_negative": self.expected_negative,
            "negative_share": self.negative_share,
            "expected_negative_share": self.expected_negative_share,
            "scores": dict(self.scores),
            "peak": dict(self.peak),
            "totals": dict(self.totals),
            "mentions_in_context": ctx.mentions,
            "top_terms": [{"term": t, "count": c} for t, c in ctx.top_terms],
            "top_hashtags": [{"hashtag": h, "count": c} for h, c in ctx.top_hashtags],
            "top_voices": [
                {"author_id": v.author_id, "handle": v.handle, "followers": v.followers,
                 "mentions": v.mentions, "copies": v.copies, "engagement": v.engagement,
                 "reach": v.reach}
                for v in ctx.top_voices
            ],
            "languages": [{"lang": lang, "share": share} for lang, share in ctx.languages],
            "samples": [
                {"id": s.id, "text": s.text, "url": s.url, "handle": s.handle, "lang": s.lang,
                 "reach": s.reach, "copies": s.copies}
                for s in ctx.samples
            ],
        }

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> Alert:
        """Rebuild an alert from :meth:`to_dict` output (e.g. read back from the topic)."""
        previous = record.get("previous_severity")
        context = ContextSummary(
            mentions=int(record.get("mentions_in_context", 0)),
            top_terms=tuple((t["term"], int(t["count"])) for t in record.get("top_terms", ())),
            top_hashtags=tuple((h["hashtag"], int(h["count"]))
                               for h in record.get("top_hashtags", ())),
            top_voices=tuple(
                Voice(v["author_id"], v.get("handle"), int(v.get("followers", 0)),
                      int(v.get("mentions", 0)), int(v.get("copies", 0)),
                      int(v.get("engagement", 0)), float(v.get("reach", 0.0)))
                for v in record.get("top_voices", ())
            ),
            languages=tuple((lang["lang"], float(lang["share"]))
                            for lang in record.get("languages", ())),
            samples=tuple(
                SampleMention(s["id"], s["text"], s.get("url"), s.get("handle"), s.get("lang"),
                              float(s.get("reach", 0.0)), int(s.get("copies", 0)))
                for s in record.get("samples", ())
            ),
        )
        return cls(
            kind=record["kind"], status=record["status"],
            severity=Severity.parse(record["severity"]),
            brand=record["brand"], brand_name=record.get("brand_name") or record["brand"],
            incident_id=record["incident_id"], sequence=int(record["sequence"]),
            started_at=datetime.fromisoformat(record["started_at"]),
            window_start=datetime.fromisoformat(record["window_start"]),
            window_end=datetime.fromisoformat(record["window_end"]),
            volume=int(record["volume"]), expected_volume=float(record["expected_volume"]),
            negative=int(record["negative"]),
            expected_negative=float(record["expected_negative"]),
            negative_share=float(record["negative_share"]),
            expected_negative_share=float(record["expected_negative_share"]),
            scores=dict(record.get("scores", {})), peak=dict(record.get("peak", {})),
            totals=dict(record.get("totals", {})), context=context,
            previous_severity=Severity.parse(previous) if previous else None,
            previous_kind=record.get("previous_kind"),
        )


def _utc_stamp(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y%m%dT%H%MZ")


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


@dataclass(slots=True)
class _Incident:
    """The open incident of one brand (internal; serialised inside BrandIncidents' state)."""

    id: str
    kind: str
    severity: Severity
    sequence: int
    started_at: datetime
    reported_magnitude: int
    calm: int = 0
    windows: int = 0
    total_volume: int = 0
    total_negative: int = 0
    peak: dict[str, Any] = field(default_factory=dict)
    context: _SplitContext | None = None

    def to_state(self) -> dict[str, Any]:
        return {
            "id": self.id, "kind": self.kind, "severity": int(self.severity),
            "sequence": self.sequence, "started_at": self.started_at.isoformat(),
            "reported_magnitude": self.reported_magnitude, "calm": self.calm,
            "windows": self.windows, "total_volume": self.total_volume,
            "total_negative": self.total_negative, "peak": self.peak,
            "context": self.context.to_state() if self.context else None,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> _Incident:
        context = state.get("context")
        return cls(
            id=state["id"], kind=state["kind"], severity=Severity(int(state["severity"])),
            sequence=int(state["sequence"]),
            started_at=datetime.fromisoformat(state["started_at"]),
            reported_magnitude=int(state["reported_magnitude"]), calm=int(state["calm"]),
            windows=int(state["windows"]), total_volume=int(state["total_volume"]),
            total_negative=int(state["total_negative"]), peak=dict(state["peak"]),
            context=_SplitContext.from_state(context) if context else None,
        )


class BrandIncidents:
    """Incident lifecycle of one brand: ``update(window) -> alerts`` (see module docstring).

    ``observe`` feeds mentions into per-window context; ``update`` takes each closed window,
    in event-time order, and returns the alert events it causes (usually none).
    """

    def __init__(self, brand: str, config: IncidentConfig | None = None, *,
                 brand_name: str | None = None, ignore_terms: Iterable[str] = ()) -> None:
        self.brand = brand
        self.config = config or IncidentConfig()
        self.brand_name = brand_name or brand
        # the brand's own name tops every term list and tells the reader nothing
        own = {t for t in tokenize(f"{brand.replace('-', ' ')} {self.brand_name}")}
        self.ignore_terms = frozenset(own | set(ignore_terms))
        self.incident: _Incident | None = None
        self.last_window_end: datetime | None = None
        # start of the current run of windows at stay-open level before an incident opens
        self.warming_since: datetime | None = None
        self.cooldown_until: datetime | None = None
        self.last_kind: str | None = None
        self.last_severity: Severity | None = None
        self.suppressed = 0
        self.window_contexts: dict[datetime, _SplitContext] = {}

    # -- mentions ------------------------------------------------------------------------------

    def observe(self, mention: Mapping[str, Any], window_start: datetime) -> bool:
        """Add a mention of this brand to the context of its window; False if too late."""
        if self.last_window_end is not None and window_start < self.last_window_end:
            return False
        split = self.window_contexts.get(window_start)
        if split is None:
            split = _SplitContext(self.config.context_capacity, self.config.context_samples)
            self.window_contexts[window_start] = split
        split.add(mention)
        return True

    # -- windows -------------------------------------------------------------------------------

    def _kind_of(self, window: WindowObservation, threshold: float) -> str | None:
        """The kind of incident this window supports at ``threshold``, if any."""
        if (max(window.negative_score, window.share_score) >= threshold
                and window.negative >= self.config.min_negative_for(self.brand)):
            return CRISIS
        if window.volume_score >= threshold and window.volume >= self.config.min_spike_volume:
            return VOLUME_SPIKE
        return None

    def _severity_of(self, kind: str, window: WindowObservation) -> Severity:
        config = self.config
        if kind == CRISIS:
            score = max(window.negative_score, window.share_score)
            heavy = window.negative >= (config.critical_volume_multiple
                                        * config.min_negative_for(self.brand))
            return Severity.CRITICAL if score >= config.critical_score and heavy \
                else Severity.WARNING
        return Severity.WARNING if window.volume_score >= config.critical_score \
            else Severity.INFO

    @staticmethod
    def _magnitude(kind: str, window: WindowObservation) -> int:
        return window.negative if kind == CRISIS else window.volume

    def _hot(self, kind: str, window: WindowObservation) -> bool:
        """Whether a window keeps an incident of ``kind`` open (or warms one up).

        Besides the score, the count itself must still stand above the baseline: detectors
        smooth their scores (a sustained-rise average), which would otherwise hold an
        incident open for a long time after the mentions are back to normal.
        """
        config = self.config
        if kind == CRISIS:
            return (max(window.negative_score, window.share_score) >= config.stay_open_score
                    and window.negative > config.calm_ratio * window.expected_negative
                    and 2 * window.negative >= config.min_negative_for(self.brand))
        return (window.volume_score >= config.stay_open_score
                and window.volume > config.calm_ratio * window.expected_volume
                and 2 * window.volume >= config.min_spike_volume)

    def update(self, window: WindowObservation) -> list[Alert]:
        """Advance the lifecycle by one closed window; return the alert events it causes.

        A window at or before the last one processed (a redelivery) changes nothing.
        """
        if window.brand != self.brand:
            raise ValueError(f"window of {window.brand!r} fed to incidents of {self.brand!r}")
        if self.last_window_end is not None and window.end <= self.last_window_end:
            return []
        self.last_window_end = window.end
        closed_context = self.window_contexts.pop(window.start, None)
        alerts = (self._advance(window, closed_context) if self.incident
                  else self._maybe_open(window, closed_context))
        self._forget_old_contexts(window)
        return alerts

    def _maybe_open(self, window: WindowObservation,
                    closed_context: _SplitContext | None) -> list[Alert]:
        if self._hot(CRISIS, window) or self._hot(VOLUME_SPIKE, window):
            if self.warming_since is None:
                self.warming_since = window.start
        else:
            self.warming_since = None
        kind = self._kind_of(window, self.config.open_score)
        if kind is None:
            if closed_context is not None:
                # kept for the lookback of an incident that may open in the next windows
                self.window_contexts[window.start] = closed_context
            return []
        severity = self._severity_of(kind, window)
        if (self.cooldown_until is not None and window.end < self.cooldown_until
                and not self._escalates(kind, severity)):
            self.suppressed += 1
            if closed_context is not None:
                self.window_contexts[window.start] = closed_context
            return []
        started_at = self.warming_since or window.start
        lookback_from = max(started_at,
                            window.start - self.config.lookback_windows * (window.end
                                                                           - window.start))
        context = _SplitContext(self.config.context_capacity, self.config.context_samples)
        for start in sorted(self.window_contexts):
            if lookback_from <= start < window.start:
                context.merge(self.window_contexts.pop(start))
        if closed_context is not None:
            context.merge(closed_context)
        self.incident = _Incident(
            id=f"{self.brand}-{_utc_stamp(started_at)}", kind=kind, severity=severity,
            sequence=0, started_at=started_at,
            reported_magnitude=self._magnitude(kind, window), context=context,
        )
        self._account(window)
        self.warming_since = None
        return [self._alert(OPENED, window)]

    def _escalates(self, kind: str, severity: Severity) -> bool:
        """Whether a new incident inside the cooldown is worse than the one just resolved."""
        if self.last_severity is not None and severity > self.last_severity:
            return True
        return kind == CRISIS and self.last_kind == VOLUME_SPIKE

    def _account(self, window: WindowObservation) -> None:
        incident = self.incident
        assert incident is not None
        incident.windows += 1
        incident.total_volume += window.volume
        incident.total_negative += window.negative
        magnitude = self._magnitude(incident.kind, window)
        if not incident.peak or magnitude > int(incident.peak["magnitude"]):
            incident.peak = {
                "magnitude": magnitude, "window_end": window.end.isoformat(),
                "volume": window.volume, "negative": window.negative,
                "negative_share": window.negative_share,
                "expected_volume": window.expected_volume,
                "expected_negative": window.expected_negative,
            }

    def _advance(self, window: WindowObservation,
                 closed_context: _SplitContext | None) -> list[Alert]:
        incident = self.incident
        assert incident is not None
        if closed_context is not None and incident.context is not None:
            incident.context.merge(closed_context)
        previous_kind = incident.kind
        if incident.kind == VOLUME_SPIKE and self._kind_of(window, self.config.open_score) \
                == CRISIS:
            incident.kind = CRISIS
            # the magnitude of a crisis is counted in negative mentions from now on
            incident.peak = {}
        self._account(window)
        if not self._hot(incident.kind, window):
            incident.calm += 1
            if incident.calm < self.config.calm_windows:
                return []
            return [self._resolve(window)]
        incident.calm = 0
        previous_severity = incident.severity
        severity = max(incident.severity, self._severity_of(incident.kind, window))
        magnitude = self._magnitude(incident.kind, window)
        promoted = incident.kind != previous_kind
        grown = magnitude >= self.config.growth * max(incident.reported_magnitude, 1)
        if not (promoted or severity > previous_severity or grown):
            return []
        incident.severity = severity
        incident.sequence += 1
        incident.reported_magnitude = magnitude
        return [self._alert(
            UPDATED, window,
            previous_severity=previous_severity if severity > previous_severity else None,
            previous_kind=previous_kind if promoted else None,
        )]

    def _resolve(self, window: WindowObservation) -> Alert:
        incident = self.incident
        assert incident is not None
        incident.sequence += 1
        alert = self._alert(RESOLVED, window)
        self.cooldown_until = window.end + self.config.cooldown
        self.last_kind, self.last_severity = incident.kind, incident.severity
        self.incident = None
        return alert

    def _forget_old_contexts(self, window: WindowObservation) -> None:
        keep_from = window.end - (self.config.lookback_windows + 1) * (window.end - window.start)
        for start in [s for s in self.window_contexts if s < keep_from]:
            del self.window_contexts[start]

    def _alert(self, status: str, window: WindowObservation, *,
               previous_severity: Severity | None = None,
               previous_kind: str | None = None) -> Alert:
        incident = self.incident
        assert incident is not None
        if incident.context is not None:
            context = incident.context.view(incident.kind).summary(
                ignore_terms=self.ignore_terms)
        else:
            context = ContextSummary(0, (), (), (), (), ())
        return Alert(
            kind=incident.kind, status=status, severity=incident.severity, brand=self.brand,
            brand_name=self.brand_name, incident_id=incident.id, sequence=incident.sequence,
            started_at=incident.started_at, window_start=window.start, window_end=window.end,
            volume=window.volume, expected_volume=window.expected_volume,
            negative=window.negative, expected_negative=window.expected_negative,
            negative_share=window.negative_share,
            expected_negative_share=window.expected_negative_share,
            scores={"volume": window.volume_score, "negative": window.negative_score,
                    "negative_share": window.share_score},
            peak={k: v for k, v in incident.peak.items() if k != "magnitude"},
            totals={"windows": incident.windows, "volume": incident.total_volume,
                    "negative": incident.total_negative},
            context=context, previous_severity=previous_severity, previous_kind=previous_kind,
        )

    # -- state ---------------------------------------------------------------------------------

    @property
    def open_kind(self) -> str | None:
        """Kind of the open incident (for the open-incidents gauge), None when calm."""
        return self.incident.kind if self.incident else None

    def to_state(self) -> dict[str, Any]:
        """A JSON-able dict of everything needed to carry on after a restart."""
        return {
            "v": _STATE_VERSION,
            "brand": self.brand,
            "incident": self.incident.to_state() if self.incident else None,
            "last_window_end": _iso(self.last_window_end),
            "warming_since": _iso(self.warming_since),
            "cooldown_until": _iso(self.cooldown_until),
            "last_kind": self.last_kind,
            "last_severity": int(self.last_severity) if self.last_severity else None,
            "suppressed": self.suppressed,
            "windows": {start.isoformat(): split.to_state()
                        for start, split in self.window_contexts.items()},
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any], config: IncidentConfig | None = None, *,
                   brand_name: str | None = None,
                   ignore_terms: Iterable[str] = ()) -> BrandIncidents:
        """Rebuild from :meth:`to_state` output; configuration is passed again, not stored."""
        if state.get("v") != _STATE_VERSION:
            raise ValueError(f"unsupported incident state version {state.get('v')!r}")
        incidents = cls(state["brand"], config, brand_name=brand_name, ignore_terms=ignore_terms)
        incident = state.get("incident")
        incidents.incident = _Incident.from_state(incident) if incident else None
        incidents.last_window_end = _dt(state.get("last_window_end"))
        incidents.warming_since = _dt(state.get("warming_since"))
        incidents.cooldown_until = _dt(state.get("cooldown_until"))
        incidents.last_kind = state.get("last_kind")
        last_severity = state.get("last_severity")
        incidents.last_severity = Severity(int(last_severity)) if last_severity else None
        incidents.suppressed = int(state.get("suppressed", 0))
        incidents.window_contexts = {
            datetime.fromisoformat(start): _SplitContext.from_state(split)
            for start, split in state.get("windows", {}).items()
        }
        return incidents


# --------------------------------------------------------------------------------------------
# Plain-words rendering
# --------------------------------------------------------------------------------------------

_VERBS: Final = {OPENED: "OPENED", UPDATED: "UPDATE", RESOLVED: "RESOLVED"}


def _count(n: float) -> str:
    """``1234`` -> ``"1,234"``; ``1.2e6`` -> ``"1.2M"`` (people read magnitudes, not digits)."""
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f}M"
    if n >= 100_000:
        return f"{n / 1000:.0f}k"
    return f"{round(n):,}"


def _duration(span: timedelta) -> str:
    minutes = round(span.total_seconds() / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if minutes else f"{hours} h"


def _expected(value: float) -> str:
    return f"~{value:.1f}" if value < 10 else f"~{round(value):,}"


def render_text(alert: Alert | Mapping[str, Any]) -> str:
    """A plain-words, multi-line rendering of an alert for a terminal or a chat message.

    The first line says what happened, to whom and how bad, against the baseline::

        CRISIS OPENED for Acme Mobile (critical): 230 negative mentions in 5 min vs ~12
        expected; negative share 68% vs ~15% usual; 340 mentions in all vs ~80 expected
    """
    if not isinstance(alert, Alert):
        alert = Alert.from_dict(alert)
    kind = "CRISIS" if alert.kind == CRISIS else "VOLUME SPIKE"
    severity = alert.severity.label
    if alert.previous_severity is not None:
        severity += f", up from {alert.previous_severity.label}"
    if alert.previous_kind == VOLUME_SPIKE:
        severity += ", was a volume spike"
    span = _duration(alert.window_end - alert.window_start)
    head = f"{kind} {_VERBS.get(alert.status, alert.status.upper())} for {alert.brand_name} " \
           f"({severity})"
    if alert.status == RESOLVED:
        lasted = _duration(alert.window_end - alert.started_at)
        peak = alert.peak
        what = "negative mentions" if alert.kind == CRISIS else "mentions"
        total = alert.totals.get("negative" if alert.kind == CRISIS else "volume", 0)
        first = f"{head}: calm again after {lasted}; {_count(total)} {what} over " \
                f"{alert.totals.get('windows', 0)} windows"
        if peak:
            peak_value = peak["negative"] if alert.kind == CRISIS else peak["volume"]
            peak_expected = peak["expected_negative"] if alert.kind == CRISIS \
                else peak["expected_volume"]
            first += f", peak {_count(peak_value)} in {span} vs " \
                     f"{_expected(float(peak_expected))} expected"
    elif alert.kind == CRISIS:
        first = (
            f"{head}: {_count(alert.negative)} negative mentions in {span} vs "
            f"{_expected(alert.expected_negative)} expected; negative share "
            f"{alert.negative_share:.0%} vs ~{alert.expected_negative_share:.0%} usual; "
            f"{_count(alert.volume)} mentions in all vs {_expected(alert.expected_volume)} "
            "expected"
        )
    else:
        first = (
            f"{head}: {_count(alert.volume)} mentions in {span} vs "
            f"{_expected(alert.expected_volume)} expected; negative share "
            f"{alert.negative_share:.0%} vs ~{alert.expected_negative_share:.0%} usual"
        )
    started = alert.started_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    window = (f"{alert.window_start.astimezone(UTC):%H:%M}-"
              f"{alert.window_end.astimezone(UTC):%H:%M} UTC")
    lines = [first, f"  started {started}; window {window}; incident {alert.incident_id} "
                    f"#{alert.sequence}"]
    ctx = alert.context
    if ctx.top_terms or ctx.top_hashtags:
        terms = ", ".join(t for t, _ in ctx.top_terms) or "-"
        hashtags = ", ".join(h for h, _ in ctx.top_hashtags) or "-"
        lines.append(f"  talking about: {terms}; hashtags: {hashtags}")
    if ctx.top_voices:
        voices = []
        for voice in ctx.top_voices:
            name = f"@{voice.handle}" if voice.handle else voice.author_id
            detail = [f"{_count(voice.followers)} followers"]
            if voice.mentions != 1:
                detail.append(f"{voice.mentions} mentions")
            if voice.copies:
                detail.append(f"{_count(voice.copies)} copies")
            voices.append(f"{name} ({', '.join(detail)})")
        lines.append(f"  top voices: {'; '.join(voices)}")
    if ctx.languages:
        lines.append("  languages: " + ", ".join(f"{lang} {share:.0%}"
                                                 for lang, share in ctx.languages))
    for sample in ctx.samples:
        who = f"@{sample.handle}" if sample.handle else "someone"
        text = " ".join(sample.text.split())
        if len(text) > 140:
            text = text[:139] + "\u2026"
        link = f" {sample.url}" if sample.url else ""
        lines.append(f'  - {who}: "{text}"{link}')
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Routing
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Destination:
    """A webhook: a team's channel, by name.

    The URL is a secret (Slack's carry a token) and is kept out of ``repr``; ``style`` picks
    the body: ``slack`` (text and blocks) or ``json`` (the alert dict).
    """

    name: str
    url: str = field(repr=False)
    style: Literal["slack", "json"] = "slack"

    def __post_init__(self) -> None:
        if self.style not in ("slack", "json"):
            raise ValueError(f"destination {self.name}: style must be 'slack' or 'json'")
        if urlsplit(self.url).scheme not in ("http", "https"):
            raise ValueError(f"destination {self.name}: webhook URL must be http(s)")

    @property
    def host(self) -> str:
        """Host of the webhook, safe to log."""
        return urlsplit(self.url).netloc


@dataclass(frozen=True, slots=True)
class Route:
    """One routing rule: which alerts go to which named destinations.

    Alerts of brands matching ``brands`` (shell patterns on brand ids), of ``kinds``, at or
    above ``min_severity``.
    """

    destinations: tuple[str, ...]
    brands: tuple[str, ...] = ("*",)
    min_severity: Severity = Severity.WARNING
    kinds: tuple[str, ...] = KINDS

    def matches(self, alert: Alert) -> bool:
        """Whether this route takes ``alert``."""
        return (alert.severity >= self.min_severity and alert.kind in self.kinds
                and any(fnmatchcase(alert.brand, pattern) for pattern in self.brands))


@dataclass(frozen=True, slots=True)
class RoutingRules:
    """Which team/channel gets which brand and severity.

    Severity never drops within an incident, so a destination that got an incident's
    ``open`` also gets its updates and its ``resolved``.

    >>> rules = RoutingRules.from_config({
    ...     "destinations": {"pr": {"url": "https://hooks.example/pr"}},
    ...     "routes": [{"brands": ["acme-*"], "min_severity": "warning", "to": ["pr"]}]})
    >>> rules.routes[0].min_severity.label
    'warning'
    """

    destinations: Mapping[str, Destination]
    routes: tuple[Route, ...]

    def __post_init__(self) -> None:
        for route in self.routes:
            unknown = [name for name in route.destinations if name not in self.destinations]
            if unknown:
                raise ValueError(f"route names unknown destinations {unknown}")
            bad_kinds = [kind for kind in route.kinds if kind not in KINDS]
            if bad_kinds:
                raise ValueError(f"route names unknown alert kinds {bad_kinds}")

    def destinations_for(self, alert: Alert) -> list[Destination]:
        """Destinations of every matching route, each once, in rule order."""
        chosen: dict[str, Destination] = {}
        for route in self.routes:
            if route.matches(alert):
                for name in route.destinations:
                    chosen.setdefault(name, self.destinations[name])
        return list(chosen.values())

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> RoutingRules:
        """Build from plain config (YAML or JSON).

        Example (YAML)::

            destinations: {pr: {url: "https://hooks.slack.com/...", style: slack}}
            routes:
              - {brands: ["acme-*"], min_severity: warning, kinds: [crisis], to: [pr]}
        """
        destinations = {
            name: Destination(name, str(spec["url"]), spec.get("style", "slack"))
            for name, spec in (config.get("destinations") or {}).items()
        }
        routes = tuple(
            Route(
                destinations=_names(spec.get("to", ())),
                brands=_names(spec.get("brands", ("*",))),
                min_severity=Severity.parse(spec.get("min_severity", "warning")),
                kinds=_names(spec.get("kinds", KINDS)),
            )
            for spec in (config.get("routes") or ())
        )
        return cls(destinations, routes)


NO_ROUTES: Final = RoutingRules({}, ())


class RoutingRulesError(ValueError):
    """An alert routing file that cannot be loaded; the message says which and why."""


def load_routing_rules(path: str | Path | None) -> RoutingRules:
    """Routing rules from a YAML file (:meth:`RoutingRules.from_config`); none without a path.

    An empty file routes nothing. Errors name the file, so a worker refuses to start on a
    broken routing file rather than dropping alerts later.
    """
    if path is None:
        return NO_ROUTES
    import yaml

    try:
        config = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        if not isinstance(config, Mapping):
            raise ValueError("expected a mapping with 'destinations' and 'routes'")
        return RoutingRules.from_config(config)
    except (OSError, yaml.YAMLError, ValueError, KeyError, TypeError) as error:
        raise RoutingRulesError(f"{path}: bad alert routing: {error}") from error


def _names(value: str | Sequence[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(str(v) for v in value)


__all__ = [
    "CRISIS",
    "KINDS",
    "OPENED",
    "RESOLVED",
    "UPDATED",
    "VOLUME_SPIKE",
    "Alert",
    "BrandIncidents",
    "ContextSummary",
    "Destination",
    "IncidentConfig",
    "IncidentContext",
    "Route",
    "RoutingRules",
    "RoutingRulesError",
    "SampleMention",
    "Severity",
    "TopK",
    "Voice",
    "WindowObservation",
    "is_negative",
    "load_routing_rules",
    "mention_terms",
    "render_text",
]
