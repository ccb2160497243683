"""Brand windows: per-brand mention counts in event-time tumbling windows, for the detector.

Each closed window is one value of a brand's series (volume, negative volume, negative share)
for :class:`~pipeline.stages.spikes.SpikeDetector`. Pure, with a small JSON-able state the
crisis agent keeps in a Faust table.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any


@dataclass(frozen=True, slots=True)
class ClosedWindow:
    """One brand's counts over one closed event-time window ``[start, end)``."""

    brand: str
    start: datetime
    end: datetime
    volume: int
    negative: int

    @property
    def negative_share(self) -> float:
        """Share of negative mentions; 0 for an empty window."""
        return self.negative / self.volume if self.volume else 0.0


class BrandWindows:
    """Per-brand event-time tumbling windows with allowed lateness.

    A window ``[start, start + size)`` closes once the watermark passes ``end + lateness``;
    mentions for an already closed window are counted in ``late_dropped``. Once a brand has
    been seen, every later window is emitted for it, empty ones included: a brand going quiet
    is a value of its series, not a gap in it. Memory is bounded by brands times open windows.

        windows = BrandWindows(size=timedelta(minutes=5), lateness=timedelta(minutes=2))
        windows.add("acme", created_at, is_negative=True)
        for closed in windows.close_until(watermark):
            ...
    """

    def __init__(self, size: timedelta, lateness: timedelta = timedelta(0)) -> None:
        if size <= timedelta(0) or lateness < timedelta(0):
            raise ValueError("window size must be positive and lateness not negative")
        self.size = size
        self.lateness = lateness
        # brand -> window start -> [volume, negative]
        self.open: dict[str, dict[datetime, list[int]]] = {}
        # brand -> start of the next window still to be emitted
        self.next_start: dict[str, datetime] = {}
        self.late_dropped = 0

    def window_start(self, t: datetime) -> datetime:
        """Start of the window holding ``t`` (windows are aligned on the Unix epoch)."""
        if t.tzinfo is None:
            raise ValueError("BrandWindows needs timezone-aware datetimes")
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        steps = (t - epoch) // self.size
        return (epoch + steps * self.size).astimezone(t.tzinfo)

    def add(self, brand: str, created_at: datetime, is_negative: bool) -> bool:
        """Count one mention; False if its window is already closed (too late)."""
        start = self.window_start(created_at)
        first = self.next_start.get(brand)
        if first is None:
            self.next_start[brand] = start
        elif start < first:
            self.late_dropped += 1
            return False
        counts = self.open.setdefault(brand, {}).setdefault(start, [0, 0])
        counts[0] += 1
        counts[1] += int(is_negative)
        return True

    def close_until(self, watermark: datetime) -> list[ClosedWindow]:
        """Close every window whose end plus lateness is at or before ``watermark``."""
        closed: list[ClosedWindow] = []
        for brand in sorted(self.next_start):
            start = self.next_start[brand]
            windows = self.open.get(brand, {})
            while start + self.size + self.lateness <= watermark:
                volume, negative = windows.pop(start, (0, 0))
                closed.append(ClosedWindow(brand, start, start + self.size, volume, negative))
                start += self.size
            self.next_start[brand] = start
            if not windows:
                self.open.pop(brand, None)
        closed.sort(key=lambda w: (w.end, w.brand))
        return closed

    def to_state(self) -> dict[str, Any]:
        """A JSON-able dict of the open windows and per-brand positions."""
        return {
            "size_s": self.size.total_seconds(),
            "lateness_s": self.lateness.total_seconds(),
            "late_dropped": self.late_dropped,
            "next_start": {b: s.isoformat() for b, s in self.next_start.items()},
            "open": {b: {s.isoformat(): list(c) for s, c in w.items()}
                     for b, w in self.open.items()},
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> BrandWindows:
        """Rebuild windows from :meth:`to_state` output."""
        windows = cls(timedelta(seconds=state["size_s"]), timedelta(seconds=state["lateness_s"]))
        windows.late_dropped = int(state["late_dropped"])
        windows.next_start = {b: datetime.fromisoformat(s)
                              for b, s in state["next_start"].items()}
        windows.open = {b: {datetime.fromisoformat(s): [int(c[0]), int(c[1])]
                            for s, c in w.items()}
                        for b, w in state["open"].items()}
        return windows
