"""Crisis stage core: scored mentions in, alert events out, per brand, with restartable state.

One :class:`BrandMonitor` per brand chains the pieces of :mod:`pipeline.stages.brand_windows`,
:mod:`pipeline.stages.spikes` and :mod:`pipeline.stages.alerts`: event-time windows
(:class:`~pipeline.stages.brand_windows.BrandWindows`) count the brand's mentions and negative
mentions; each closed window updates three
:class:`~pipeline.stages.spikes.SpikeDetector` series (volume, negative volume and negative
share, the share fed in percent so the detector's count transform sees 0-100 rather than
0-1); the :class:`~pipeline.stages.alerts.lifecycle.BrandIncidents` lifecycle turns the
scores into alert events. :class:`PartitionMonitor` holds the brands of one partition and its
event-time watermark, which closes every brand's windows, quiet brands included.

State is split in two parts so that the changelog stays small:

- ``live`` (window counts, the watermark and the offset of the last record applied, ~0.3 KiB)
  changes with every record and is written once per record that mentions the brand;
- ``model`` (detectors, incident lifecycle and mention context, ~10-60 KiB) changes only when
  a window closes and is written then.

After a restart ``live`` is exact (counts and detection resume where they were) and records at
or before ``live``'s offset are skipped, so a redelivered record is never counted twice. The
context of the still-open windows (top terms, voices, samples) comes back as of the last
closed window: it is a sample of the mentions, the counts are not.

    partition = PartitionMonitor(config, brand_names={"acme-mobile": "Acme Mobile"})
    result = partition.apply(offset, mentions)        # one scored record
    for alert in result.alerts:
        send(alert)
    for brand in result.changed_live: store(brand, partition.monitors[brand].live_state())
    for brand in result.changed_model: store(brand, partition.monitors[brand].model_state())
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from pipeline.event_time import parse_event_time
from pipeline.records import ScoredMention, brands_of
from pipeline.schema import InvalidMention
from pipeline.stages.alerts.lifecycle import BrandIncidents, IncidentConfig, WindowObservation
from pipeline.stages.alerts.record import Alert
from pipeline.stages.alerts.terms import is_negative
from pipeline.stages.brand_windows import BrandWindows
from pipeline.stages.spikes import Baseline, SpikeConfig, SpikeDetector

_STATE_VERSION = 1
# the negative-share detector sees percent: its transform models counts, and 0-1 would sit
# entirely inside its counting-noise floor
SHARE_SCALE = 100.0


@dataclass(frozen=True, slots=True)
class CrisisConfig:
    """Windows, detectors and incident thresholds: one configuration for every brand."""

    window: timedelta = timedelta(minutes=5)
    lateness: timedelta = timedelta(minutes=2)
    detector: SpikeConfig = field(default_factory=SpikeConfig)
    incidents: IncidentConfig = field(default_factory=IncidentConfig)
    # a mention this far ahead of the partition's watermark is refused rather than allowed to
    # close every window at once (a broken clock upstream)
    max_ahead: timedelta = timedelta(hours=6)

    @classmethod
    def for_brands(cls, min_crisis_volume: Mapping[str, int], **overrides: Any) -> CrisisConfig:
        """The default configuration with the brands' own crisis minimums (brand rules).

        >>> CrisisConfig.for_brands({"acme-mobile": 15}).incidents.min_negative_for("acme-mobile")
        15
        """
        config = cls(**overrides)
        return replace(config, incidents=replace(
            config.incidents, brand_min_negative=dict(min_crisis_volume)))


def _share_baseline(share: Baseline) -> Baseline:
    """The share detector's baseline back in fractions (it learns percent)."""
    return replace(share, expected=share.expected / SHARE_SCALE, low=share.low / SHARE_SCALE,
                   high=share.high / SHARE_SCALE)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _dt(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


class BrandMonitor:
    """Windows, detectors and incidents of one brand: ``observe`` mentions, ``close_until``.

    >>> from datetime import UTC
    >>> monitor = BrandMonitor("acme-mobile", CrisisConfig())
    >>> monitor.observe(ScoredMention(id="1", text="down again", created_at=""),
    ...                 datetime(2026, 1, 1, 10, 1, tzinfo=UTC))
    True
    >>> monitor.close_until(datetime(2026, 1, 1, 10, 7, tzinfo=UTC))   # warming up: no alerts
    []
    """

    def __init__(self, brand: str, config: CrisisConfig, *, brand_name: str | None = None) -> None:
        self.brand = brand
        self.config = config
        self.brand_name = brand_name or brand
        self.windows = BrandWindows(config.window, config.lateness)
        self.volume = SpikeDetector(config.detector)
        self.negative = SpikeDetector(config.detector)
        self.share = SpikeDetector(config.detector)
        self.incidents = BrandIncidents(brand, config.incidents, brand_name=self.brand_name)
        # offset of the last record applied (redeliveries at or before it are skipped)
        self.offset = -1
        self.watermark: datetime | None = None

    def observe(self, mention: ScoredMention, created_at: datetime) -> bool:
        """Count one mention of this brand and add it to its window's context.

        False when its window is already closed (later than the allowed lateness).
        """
        if not self.windows.add(self.brand, created_at, is_negative(mention, self.brand)):
            return False
        self.incidents.observe(mention, self.windows.window_start(created_at))
        return True

    def close_until(self, watermark: datetime) -> list[Alert]:
        """Close the windows the watermark has passed; return the alert events they cause."""
        if self.watermark is None or watermark > self.watermark:
            self.watermark = watermark
        alerts: list[Alert] = []
        for closed in self.windows.close_until(watermark):
            self.volume.update(closed.end, closed.volume)
            self.negative.update(closed.end, closed.negative)
            self.share.update(closed.end, SHARE_SCALE * closed.negative_share)
            observation = WindowObservation.from_baselines(
                closed, self.volume.get(), self.negative.get(), _share_baseline(self.share.get()))
            alerts.extend(self.incidents.update(observation))
        return alerts

    @property
    def open_kind(self) -> str | None:
        """Kind of the brand's open incident, None when calm."""
        return self.incidents.open_kind

    # -- state ---------------------------------------------------------------------------------

    def live_state(self) -> dict[str, Any]:
        """What changes with every record: window counts, watermark, offset (small)."""
        return {"v": _STATE_VERSION, "brand": self.brand, "offset": self.offset,
                "watermark": _iso(self.watermark),
                "windows": self.windows.to_state()}

    def model_state(self) -> dict[str, Any]:
        """What changes when a window closes: detectors, incidents and their context."""
        return {"v": _STATE_VERSION, "brand": self.brand,
                "volume": self.volume.to_state(), "negative": self.negative.to_state(),
                "share": self.share.to_state(), "incidents": self.incidents.to_state()}

    @classmethod
    def from_state(cls, brand: str, config: CrisisConfig, *, live: Mapping[str, Any] | None,
                   model: Mapping[str, Any] | None,
                   brand_name: str | None = None) -> BrandMonitor:
        """Rebuild from :meth:`live_state` and :meth:`model_state` (either may be missing).

        The configuration is passed again, not stored: window size and lateness come from it,
        so a changed window size starts the brand's windows afresh rather than mixing sizes.
        """
        monitor = cls(brand, config, brand_name=brand_name)
        for part in (live, model):
            if part is not None and part.get("v") != _STATE_VERSION:
                raise ValueError(f"unsupported crisis state version {part.get('v')!r}")
        if live is not None:
            monitor.offset = int(live["offset"])
            monitor.watermark = _dt(live.get("watermark"))
            windows = BrandWindows.from_state(dict(live["windows"]))
            if (windows.size, windows.lateness) == (config.window, config.lateness):
                monitor.windows = windows
        if model is not None:
            monitor.volume = SpikeDetector.from_state(dict(model["volume"]), config.detector)
            monitor.negative = SpikeDetector.from_state(dict(model["negative"]), config.detector)
            monitor.share = SpikeDetector.from_state(dict(model["share"]), config.detector)
            monitor.incidents = BrandIncidents.from_state(
                model["incidents"], config.incidents, brand_name=monitor.brand_name)
        return monitor


@dataclass(slots=True)
class RecordResult:
    """What one record did to a partition: alerts, and which brands' state parts changed.

    ``refused`` counts the mentions without a usable time: ``unreadable`` ones (each with
    the error, for the dead letters) and those too far ahead of the watermark.
    """

    alerts: list[Alert] = field(default_factory=list)
    changed_live: set[str] = field(default_factory=set)
    changed_model: set[str] = field(default_factory=set)
    counted: int = 0
    late: int = 0
    refused: int = 0
    skipped: int = 0
    unreadable: list[tuple[ScoredMention, InvalidMention]] = field(default_factory=list)


class PartitionMonitor:
    """The brands of one partition and its event-time watermark.

    ``owns(brand)`` says which brands this partition counts (the agent: those whose
    ``partition_for`` is this partition); a mention names several brands and is counted for
    each one owned here. The watermark is the latest event time seen; every brand of the
    partition closes its windows against it, so a quiet brand still gets its empty windows.
    """

    def __init__(self, config: CrisisConfig, *, brand_names: Mapping[str, str] | None = None,
                 owns: Callable[[str], bool] = lambda brand: True,
                 monitors: Iterable[BrandMonitor] = ()) -> None:
        self.config = config
        self.brand_names = dict(brand_names or {})
        self.owns = owns
        self.monitors: dict[str, BrandMonitor] = {m.brand: m for m in monitors}
        known = [m.watermark for m in self.monitors.values() if m.watermark is not None]
        self.watermark: datetime | None = max(known) if known else None

    def monitor(self, brand: str) -> BrandMonitor:
        """The brand's monitor, created on its first mention."""
        monitor = self.monitors.get(brand)
        if monitor is None:
            monitor = BrandMonitor(brand, self.config, brand_name=self.brand_names.get(brand))
            self.monitors[brand] = monitor
        return monitor

    def apply(self, offset: int, mentions: Iterable[ScoredMention]) -> RecordResult:
        """Count one record's mentions, advance the watermark, close windows, return alerts.

        ``offset`` is the record's position in the partition; a brand that already applied
        it (a redelivery after a restart) skips it. A mention of an owned brand whose time
        does not read is not counted and comes back in ``result.unreadable``, for the
        caller's dead letters.
        """
        result = RecordResult()
        latest = self.watermark
        for mention in mentions:
            brands = [b for b in dict.fromkeys(brands_of(mention)) if self.owns(b)]
            if not brands:
                continue
            try:
                created_at = parse_event_time(mention.created_at)
            except InvalidMention as error:
                result.refused += 1
                result.unreadable.append((mention, error))
                continue
            if self.watermark is not None and created_at > self.watermark + self.config.max_ahead:
                result.refused += 1
                continue
            for brand in brands:
                monitor = self.monitor(brand)
                if offset <= monitor.offset:
                    result.skipped += 1
                    continue
                if monitor.observe(mention, created_at):
                    result.counted += 1
                else:
                    result.late += 1
                result.changed_live.add(brand)
            if latest is None or created_at > latest:
                latest = created_at
        for brand in result.changed_live:
            self.monitors[brand].offset = offset
        if latest is not None:
            self.watermark = latest
            result.alerts = self.close_until(latest, result)
        return result

    def close_until(self, watermark: datetime, result: RecordResult | None = None) -> list[Alert]:
        """Close every brand's windows up to ``watermark``; note who changed in ``result``."""
        alerts: list[Alert] = []
        for brand, monitor in self.monitors.items():
            before = monitor.windows.next_start.get(brand)
            alerts.extend(monitor.close_until(watermark))
            if monitor.windows.next_start.get(brand) != before and result is not None:
                result.changed_live.add(brand)
                result.changed_model.add(brand)
        alerts.sort(key=lambda alert: (alert.window_end, alert.brand, alert.sequence))
        return alerts

    def open_incidents(self) -> dict[str, int]:
        """Open incidents by kind across this partition's brands."""
        counts: dict[str, int] = {}
        for monitor in self.monitors.values():
            kind = monitor.open_kind
            if kind is not None:
                counts[kind] = counts.get(kind, 0) + 1
        return counts


__all__ = [
    "SHARE_SCALE",
    "BrandMonitor",
    "CrisisConfig",
    "PartitionMonitor",
    "RecordResult",
]
