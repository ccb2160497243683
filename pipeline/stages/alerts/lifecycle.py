"""Incident lifecycle per brand: closed windows' scores in, alert events out.

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

Each incident carries the context of its mentions
(:class:`~pipeline.stages.alerts.context.IncidentContext`), including those of a few windows
before it opened.

Typical use, per brand (the agent keys the state by brand)::

    incidents = BrandIncidents("acme-mobile", config, brand_name="Acme Mobile")
    incidents.observe(mention, windows.window_start(created_at))   # every scored mention
    for window in windows.close_until(watermark):                   # every closed window
        observation = WindowObservation.from_baselines(window, volume, negative, share)
        for alert in incidents.update(observation):
            send(alert.idempotency_key, alert.to_dict())
            print(render_text(alert))
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.records import ScoredMention
from pipeline.stages.alerts.context import _SplitContext
from pipeline.stages.alerts.record import (
    CRISIS,
    OPENED,
    RESOLVED,
    UPDATED,
    VOLUME_SPIKE,
    Alert,
    ContextSummary,
    Severity,
)
from pipeline.stages.brand_windows import ClosedWindow
from pipeline.stages.spikes import Baseline
from pipeline.text import tokenize

_STATE_VERSION = 1


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

    def observe(self, mention: ScoredMention, window_start: datetime) -> bool:
        """Add a mention of this brand to the context of its window; False if too late."""
        if self.last_window_end is not None and window_start < self.last_window_end:
            return False
        split = self.window_contexts.get(window_start)
        if split is None:
            split = _SplitContext(self.config.context_capacity, self.config.context_samples)
            self.window_contexts[window_start] = split
        split.add(mention, self.brand)
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


__all__ = [
    "BrandIncidents",
    "IncidentConfig",
    "WindowObservation",
]
