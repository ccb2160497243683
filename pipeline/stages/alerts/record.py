"""The alert event: its kinds, statuses and severity, and its JSON form on ``alerts.crisis``.

An incident is a *crisis* (:data:`CRISIS`: more anger) or a *volume spike*
(:data:`VOLUME_SPIKE`: more talk); each of its events is ``open``, ``update`` or ``resolved``
and carries a :class:`Severity`. :meth:`Alert.to_dict` and :meth:`Alert.from_dict` are the
wire format that the notifier and downstream consumers read; :class:`ContextSummary`,
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


__all__ = [
    "CRISIS",
    "KINDS",
    "OPENED",
    "RESOLVED",
    "UPDATED",
    "VOLUME_SPIKE",
    "Alert",
    "ContextSummary",
    "SampleMention",
    "Severity",
    "Voice",
]
