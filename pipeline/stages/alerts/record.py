"""The alert event: its kinds, statuses and severity, and its JSON form on ``alerts.crisis``.

An incident is a *crisis* (:data:`CRISIS`: more anger) or a *volume spike*
(:data:`VOLUME_SPIKE`: more talk); each of its events is ``open``, ``update`` or ``resolved``
and carries a :class:`Severity`. :class:`AlertEvent` is its typed record on the topic, written
and read by :data:`ALERT_EVENTS` (:meth:`Alert.to_event`, :meth:`Alert.from_event`;
:meth:`Alert.to_dict` and :meth:`Alert.from_dict` are the same as plain JSON objects, for
webhook bodies and files); the events live here, beside the alert, rather than in
:mod:`pipeline.records`, which they would take past ~500 lines. :class:`ContextSummary`,
:class:`Voice` and :class:`SampleMention` are the mentions behind the incident as an alert
shows them. The rules that pick kinds, severities and statuses are in
:mod:`pipeline.stages.alerts.lifecycle`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from typing import Any, Final

import msgspec

from pipeline.records import RecordCodec

CRISIS: Final = "crisis"
VOLUME_SPIKE: Final = "volume_spike"
KINDS: Final = (CRISIS, VOLUME_SPIKE)
OPENED: Final = "open"
UPDATED: Final = "update"
RESOLVED: Final = "resolved"


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


class TermCount(msgspec.Struct, gc=False):
    """A top term of an alert event and how often it was said."""

    term: str
    count: int


class HashtagCount(msgspec.Struct, gc=False):
    """A top hashtag of an alert event and how often it was used."""

    hashtag: str
    count: int


class VoiceEntry(msgspec.Struct, gc=False):
    """A :class:`Voice` on the wire."""

    author_id: str
    handle: str | None = None
    followers: int = 0
    mentions: int = 0
    copies: int = 0
    engagement: int = 0
    reach: float = 0.0


class LanguageShare(msgspec.Struct, gc=False):
    """A language of the mentions behind an alert and its share."""

    lang: str
    share: float


class SampleEntry(msgspec.Struct, gc=False):
    """A :class:`SampleMention` on the wire."""

    id: str
    text: str
    url: str | None = None
    handle: str | None = None
    lang: str | None = None
    reach: float = 0.0
    copies: int = 0


# fields in the wire order; those with defaults may be absent from a record read back
class AlertEvent(msgspec.Struct, kw_only=True):
    """One alert event as it is on ``alerts.crisis`` (times ISO 8601, severity its label)."""

    idempotency_key: str = ""
    kind: str
    status: str
    severity: str | int
    previous_severity: str | int | None = None
    previous_kind: str | None = None
    brand: str
    brand_name: str | None = None
    incident_id: str
    sequence: int
    started_at: str
    window_start: str
    window_end: str
    volume: int
    expected_volume: float
    negative: int
    expected_negative: float
    negative_share: float
    expected_negative_share: float
    scores: dict[str, float] = msgspec.field(default_factory=dict)
    peak: dict[str, Any] = msgspec.field(default_factory=dict)
    totals: dict[str, int] = msgspec.field(default_factory=dict)
    mentions_in_context: int = 0
    top_terms: list[TermCount] = msgspec.field(default_factory=list)
    top_hashtags: list[HashtagCount] = msgspec.field(default_factory=list)
    top_voices: list[VoiceEntry] = msgspec.field(default_factory=list)
    languages: list[LanguageShare] = msgspec.field(default_factory=list)
    samples: list[SampleEntry] = msgspec.field(default_factory=list)


class AlertEventCodec(RecordCodec[AlertEvent]):
    """:class:`RecordCodec` of alert events, which also reads one from a JSON object."""

    def __init__(self) -> None:
        super().__init__(AlertEvent)

    @staticmethod
    def from_dict(record: Mapping[str, Any]) -> AlertEvent:
        """The event in a JSON object; ``msgspec.ValidationError`` says what does not fit.

        Lax as reading the encoded record is not: a number written as a string is read.
        """
        return msgspec.convert(record, AlertEvent, strict=False)


ALERT_EVENTS: Final = AlertEventCodec()


class AlertDeadLetterEvent(msgspec.Struct, kw_only=True):
    """An alert a destination did not get, as on ``alerts.deadletter`` (no webhook URL)."""

    reason: str
    detail: str
    attempts: int
    destination: str
    host: str
    alert: AlertEvent


ALERT_DEAD_LETTERS: Final = RecordCodec(AlertDeadLetterEvent)


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

    def to_event(self) -> AlertEvent:
        """The alert's record on ``alerts.crisis``."""
        ctx = self.context
        previous = self.previous_severity
        return AlertEvent(
            idempotency_key=self.idempotency_key, kind=self.kind, status=self.status,
            severity=self.severity.label, previous_severity=previous.label if previous else None,
            previous_kind=self.previous_kind, brand=self.brand, brand_name=self.brand_name,
            incident_id=self.incident_id, sequence=self.sequence,
            started_at=self.started_at.isoformat(), window_start=self.window_start.isoformat(),
            window_end=self.window_end.isoformat(), volume=self.volume,
            expected_volume=self.expected_volume, negative=self.negative,
            expected_negative=self.expected_negative, negative_share=self.negative_share,
            expected_negative_share=self.expected_negative_share, scores=dict(self.scores),
            peak=dict(self.peak), totals=dict(self.totals), mentions_in_context=ctx.mentions,
            top_terms=[TermCount(term, count) for term, count in ctx.top_terms],
            top_hashtags=[HashtagCount(tag, count) for tag, count in ctx.top_hashtags],
            top_voices=[VoiceEntry(v.author_id, v.handle, v.followers, v.mentions, v.copies,
                                   v.engagement, v.reach) for v in ctx.top_voices],
            languages=[LanguageShare(lang, share) for lang, share in ctx.languages],
            samples=[SampleEntry(s.id, s.text, s.url, s.handle, s.lang, s.reach, s.copies)
                     for s in ctx.samples],
        )

    def to_dict(self) -> dict[str, Any]:
        """The alert's record as a JSON-ready dict (for webhook bodies and files)."""
        record: dict[str, Any] = msgspec.to_builtins(self.to_event())
        return record

    @classmethod
    def from_event(cls, event: AlertEvent) -> Alert:
        """The alert of an event read back from the topic."""
        previous = event.previous_severity
        context = ContextSummary(
            mentions=event.mentions_in_context,
            top_terms=tuple((t.term, t.count) for t in event.top_terms),
            top_hashtags=tuple((h.hashtag, h.count) for h in event.top_hashtags),
            top_voices=tuple(Voice(v.author_id, v.handle, v.followers, v.mentions, v.copies,
                                   v.engagement, v.reach) for v in event.top_voices),
            languages=tuple((lang.lang, lang.share) for lang in event.languages),
            samples=tuple(SampleMention(s.id, s.text, s.url, s.handle, s.lang, s.reach,
                                        s.copies) for s in event.samples),
        )
        return cls(
            kind=event.kind, status=event.status, severity=Severity.parse(event.severity),
            brand=event.brand, brand_name=event.brand_name or event.brand,
            incident_id=event.incident_id, sequence=event.sequence,
            started_at=datetime.fromisoformat(event.started_at),
            window_start=datetime.fromisoformat(event.window_start),
            window_end=datetime.fromisoformat(event.window_end),
            volume=event.volume, expected_volume=event.expected_volume,
            negative=event.negative, expected_negative=event.expected_negative,
            negative_share=event.negative_share,
            expected_negative_share=event.expected_negative_share,
            scores=event.scores, peak=event.peak, totals=event.totals, context=context,
            previous_severity=Severity.parse(previous) if previous else None,
            previous_kind=event.previous_kind,
        )

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> Alert:
        """Rebuild an alert from :meth:`to_dict` output; ``msgspec.ValidationError`` if none."""
        return cls.from_event(ALERT_EVENTS.from_dict(record))


__all__ = [
    "ALERT_EVENTS",
    "CRISIS",
    "KINDS",
    "OPENED",
    "RESOLVED",
    "UPDATED",
    "VOLUME_SPIKE",
    "Alert",
    "AlertEvent",
    "ContextSummary",
    "SampleMention",
    "Severity",
    "Voice",
]
