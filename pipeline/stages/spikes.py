"""Spike detection core: a streaming, seasonal, outlier-robust baseline, and incident onsets.

Two pieces, both pure (no Kafka, no Faust), both with state that fits in a small dict so the
agent can keep it in a Faust table with a changelog:

- :class:`SpikeDetector` learns ONE series (e.g. one brand's negative-mention volume per
  window): its level, its hour-of-day and day-of-week rhythm and its noise, and scores each new
  window in ``[0, 1]``::

      detector = SpikeDetector()
      score = detector.update(window_end, volume)   # 0 during warm-up
      baseline = detector.get()                     # expected volume, spread, z, score

- :class:`SpikeGate` turns the score stream into incident onsets with hysteresis, so one
  incident fires once rather than once per window.

The series come from :class:`~pipeline.stages.brand_windows.BrandWindows`.
:func:`score_series_csv` runs detector and gate over one NAB ``timestamp,value`` file.

The detector models counts. Each count first goes through the variance-stabilising transform
of a negative binomial (Anscombe's square root for a handful of mentions, a logarithm for
thousands), so "3 mentions where 0.1 were expected" and "x60 on a big brand" are measured on
comparable scales::

    y_t = level_t + daily[hour(t)] + weekly[weekday(t)] + noise_t

updated in Holt-Winters error-correction form, with every residual clipped to ``clip_z``
spreads before it touches the baseline: a spike moves the baseline by at most a few spreads per
window, so the baseline does not chase its own incidents, yet a lasting change of level is
absorbed within about a day. The spread is an exponentially weighted mean absolute residual per
hour of day, never below Poisson counting noise. Learning rates are set by time constants, not
per-update constants, so the same configuration serves 1-minute and 5-minute windows.

The z of a window is the largest of its own z and those of exponential averages of z over
half an hour, one hour and two hours (a sustained rise), each scaled to unit variance: several
spans rather than one, so the span is not a knob fitted to the brands it was tuned on. Social
volume is bursty and some brands burst daily, so z is finally compared with the brand's
typical daily peak z (a robust running mean over about two weeks): the score is 0.5, the
shipped threshold, when z reaches ``alert_ratio`` typical daily peaks.
"""

from __future__ import annotations

import csv
import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

_HOURS = 24
_WEEKDAYS = 7
# mean |e| of a normal variable is sigma * sqrt(2/pi): this turns the mean absolute residual
# into a standard-deviation-like spread, so z reads as usual
_MAD_TO_SIGMA = math.sqrt(math.pi / 2.0)
_STATE_VERSION = 2


@dataclass(frozen=True, slots=True)
class SpikeConfig:
    """How a :class:`SpikeDetector` learns and scores; one configuration for every brand.

    Time constants are event-time durations. ``daily_memory_days`` and ``weekly_memory_weeks``
    count only the time a bucket is active (one hour a day, one day a week), so each hour of
    the daily profile remembers about that many days of itself.
    """

    warmup: timedelta = timedelta(days=1)
    level_memory: timedelta = timedelta(hours=12)
    daily_memory_days: float = 3.0
    weekly_memory_weeks: float = 2.0
    spread_memory_days: float = 3.0
    # exponential averages of z over these spans catch a sustained rise that no single window
    # flags; the largest counts, so no single span is tuned (see benchmarks/README.md)
    rise_memories: tuple[timedelta, ...] = (timedelta(minutes=30), timedelta(hours=1),
                                            timedelta(hours=2))
    clip_z: float = 2.5
    # overdispersion of the counts (variance mu + phi mu^2), which shapes the transform
    overdispersion: float = 0.1
    # spread floor in transformed units, 1 being pure Poisson counting noise
    min_spread: float = 1.0
    # the score is 0.5, the shipped alert threshold, when z is this many typical daily peaks;
    # this and ``min_daily_peak`` are chosen by nested cross-validation (benchmarks.nab --cv)
    alert_ratio: float = 1.8
    prior_daily_peak: float = 4.0
    min_daily_peak: float = 2.0
    peak_memory_days: float = 14.0
    # a single day moves the log typical peak by at most this much (about x1.65)
    peak_clip: float = 0.5
    # an update further apart than this from the previous one learns as if it were this far
    max_step: timedelta = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Baseline:
    """What the detector expects now, for alert text: "120 mentions vs 35 +/- 10 expected"."""

    expected: float
    low: float
    high: float
    z: float
    typical_peak: float
    score: float
    warming_up: bool


def _rate(step_s: float, memory_s: float) -> float:
    """Weight of one update in an exponential average with the given time constant."""
    return 1.0 - math.exp(-step_s / memory_s)


def _score_of(ratio: float, alert_ratio: float) -> float:
    """Map a one-sided ratio to ``[0, 1)``: 0 at or below the baseline, 0.5 at the alert."""
    if ratio <= 0.0:
        return 0.0
    return ratio * ratio / (ratio * ratio + alert_ratio * alert_ratio)


class SpikeDetector:
    """Streaming anomaly score for one series: ``update(t, value) -> score`` in ``[0, 1]``.

    Only rises score (a brand being talked about less is not a crisis). Updates must come in
    event-time order; ``t`` must be timezone-aware and its hour and weekday (in its own zone)
    are the seasonal buckets, so pass local time when a brand's rhythm follows a local day.
    """

    def __init__(self, config: SpikeConfig | None = None) -> None:
        self.config = config or SpikeConfig()
        self.started_at: datetime | None = None
        self.last_at: datetime | None = None
        self.updates = 0
        self.level = 0.0
        self.daily = [0.0] * _HOURS
        self.weekly = [0.0] * _WEEKDAYS
        self.abs_residual = [0.0] * _HOURS
        self.daily_seen = [0] * _HOURS
        self.weekly_seen = [0] * _WEEKDAYS
        self.rise_z = [0.0] * len(self.config.rise_memories)
        # the day's largest z, and a robust running mean of log daily peaks: how far out a
        # normal day of this brand already goes, so a burst-prone brand needs a bigger burst
        self.peak_day = -1
        self.peak_today = 0.0
        self.log_typical_peak = 0.0
        self.peak_days = 0
        self._last = Baseline(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, True)

    # ---- scoring -------------------------------------------------------------------------

    def update(self, t: datetime, value: float) -> float:
        """Learn from one window's value and return its anomaly score in ``[0, 1]``."""
        if t.tzinfo is None:
            raise ValueError("SpikeDetector needs timezone-aware datetimes")
        cfg = self.config
        y = self.transform(value)
        hour, weekday = t.hour, t.weekday()
        if self.started_at is None or self.last_at is None:
            self.started_at = self.last_at = t
            self.level = y
            step_s = 0.0
        else:
            if t < self.last_at:
                raise ValueError(f"update at {t} is before the previous one at {self.last_at}")
            step_s = min((t - self.last_at).total_seconds(), cfg.max_step.total_seconds())
            self.last_at = t
        self.updates += 1

        expected = self.level + self.daily[hour] + self.weekly[weekday]
        spread = self._spread(hour)
        residual = y - expected
        z = residual / spread
        warming_up = t - self.started_at < cfg.warmup

        combined_z = max(z, self._sustained_z(step_s, z))
        typical_peak = self._typical_peak()
        surprise = combined_z / typical_peak
        score = 0.0 if warming_up else _score_of(surprise, cfg.alert_ratio)
        if not warming_up:
            self._track_peak(t, combined_z)

        self._learn(hour, weekday, residual, spread, step_s)
        self._last = Baseline(
            expected=self.inverse(expected),
            low=self.inverse(expected - spread),
            high=self.inverse(expected + spread),
            z=combined_z,
            typical_peak=typical_peak,
            score=score,
            warming_up=warming_up,
        )
        return score

    def transform(self, value: float) -> float:
        """Variance-stabilising transform of a count (negative binomial, ``mu + phi mu^2``).

        Anscombe's square root for small counts, a logarithm for large ones.
        """
        phi = self.config.overdispersion
        x = max(value, 0.0) + 0.375
        if phi <= 0.0:
            return 2.0 * math.sqrt(x)
        return 2.0 * math.asinh(math.sqrt(phi * x)) / math.sqrt(phi)

    def inverse(self, y: float) -> float:
        """The count whose transform is ``y`` (clamped at 0)."""
        phi = self.config.overdispersion
        if y <= 0.0:
            return 0.0
        if phi <= 0.0:
            return max((y / 2.0) ** 2 - 0.375, 0.0)
        return max(math.sinh(y * math.sqrt(phi) / 2.0) ** 2 / phi - 0.375, 0.0)

    def get(self) -> Baseline:
        """The baseline and score of the latest update (expected volume and its spread)."""
        return self._last

    def _sustained_z(self, step_s: float, z: float) -> float:
        """Learn ``z`` into each rise average; the largest average in unit-variance terms."""
        cfg = self.config
        clipped_z = max(-cfg.clip_z, min(cfg.clip_z * 2.0, z))
        largest = -math.inf
        for k, memory in enumerate(cfg.rise_memories):
            rate = _rate(step_s, memory.total_seconds()) if step_s > 0 else 1.0
            self.rise_z[k] += rate * (clipped_z - self.rise_z[k])
            # an exponential average of independent unit-variance z has variance r / (2 - r)
            largest = max(largest, self.rise_z[k] / math.sqrt(rate / (2.0 - rate)))
        return largest

    def _typical_peak(self) -> float:
        prior = self.config.prior_daily_peak
        if self.peak_days == 0:
            return prior
        return max(math.exp(self.log_typical_peak), self.config.min_daily_peak)

    def _track_peak(self, t: datetime, z: float) -> None:
        day = t.toordinal()
        if day != self.peak_day:
            if self.peak_day >= 0 and self.peak_today > 0.0:
                log_peak = math.log(max(self.peak_today, self.config.min_daily_peak))
                if self.peak_days == 0:
                    self.log_typical_peak = math.log(self.config.prior_daily_peak)
                # the prior counts as one day; a single day moves the estimate a bounded step
                rate = max(1.0 / (self.peak_days + 2), 1.0 / self.config.peak_memory_days)
                step = max(-self.config.peak_clip, min(self.config.peak_clip,
                                                       log_peak - self.log_typical_peak))
                self.log_typical_peak += rate * step
                self.peak_days += 1
            self.peak_day, self.peak_today = day, 0.0
        self.peak_today = max(self.peak_today, z)

    def _spread(self, hour: int) -> float:
        seen = self.daily_seen[hour]
        if seen:
            mad = self.abs_residual[hour]
        else:
            # an hour not seen yet borrows the average spread of the hours that were
            known = [m for m, n in zip(self.abs_residual, self.daily_seen, strict=True) if n]
            mad = sum(known) / len(known) if known else 0.0
        return max(mad * _MAD_TO_SIGMA, self.config.min_spread)

    def _learn(self, hour: int, weekday: int, residual: float, spread: float,
               step_s: float) -> None:
        cfg = self.config
        bound = cfg.clip_z * spread
        error = max(-bound, min(bound, residual))
        day_s = 86_400.0
        if step_s <= 0.0:
            # first update, or several in the same instant: count them, learn nothing new
            self.daily_seen[hour] += 1
            self.weekly_seen[weekday] += 1
            return
        # early on, fall back to running means so the profile is usable after one day
        self.daily_seen[hour] += 1
        self.weekly_seen[weekday] += 1
        level_rate = _rate(step_s, cfg.level_memory.total_seconds())
        daily_rate = max(_rate(step_s, cfg.daily_memory_days * 3_600.0),
                         1.0 / (1 + self.daily_seen[hour]))
        weekly_rate = _rate(step_s, cfg.weekly_memory_weeks * day_s)
        spread_rate = max(_rate(step_s, cfg.spread_memory_days * 3_600.0),
                          1.0 / self.daily_seen[hour])
        self.level += level_rate * error
        # the weekly profile only starts once the daily one has a full day behind it
        daily_gain = daily_rate * error
        self.daily[hour] += daily_gain
        weekly_gain = 0.0
        if self.started_at is not None and self.last_at is not None and \
                self.last_at - self.started_at >= timedelta(days=1):
            weekly_gain = weekly_rate * error
            self.weekly[weekday] += weekly_gain
        # keep the profiles centred, so ``level`` stays the de-seasonalised mean
        daily_shift = daily_gain / _HOURS
        weekly_shift = weekly_gain / _WEEKDAYS
        for h in range(_HOURS):
            self.daily[h] -= daily_shift
        for d in range(_WEEKDAYS):
            self.weekly[d] -= weekly_shift
        self.level += daily_shift + weekly_shift
        self.abs_residual[hour] += spread_rate * (abs(error) - self.abs_residual[hour])

    # ---- state ---------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """A small JSON-able dict of everything learned (about 80 numbers)."""
        return {
            "v": _STATE_VERSION,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "last_at": self.last_at.isoformat() if self.last_at else None,
            "updates": self.updates,
            "level": self.level,
            "daily": list(self.daily),
            "weekly": list(self.weekly),
            "abs_residual": list(self.abs_residual),
            "daily_seen": list(self.daily_seen),
            "weekly_seen": list(self.weekly_seen),
            "rise_z": list(self.rise_z),
            "peak_day": self.peak_day,
            "peak_today": self.peak_today,
            "log_typical_peak": self.log_typical_peak,
            "peak_days": self.peak_days,
            "last": asdict(self._last),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any],
                   config: SpikeConfig | None = None) -> SpikeDetector:
        """Rebuild a detector from :meth:`to_state` output (the config is not part of state)."""
        version = state.get("v")
        if version not in (1, _STATE_VERSION):
            raise ValueError(f"unknown SpikeDetector state version {version!r}")
        detector = cls(config)
        started, last = state["started_at"], state["last_at"]
        detector.started_at = datetime.fromisoformat(started) if started else None
        detector.last_at = datetime.fromisoformat(last) if last else None
        detector.updates = int(state["updates"])
        detector.level = float(state["level"])
        detector.daily = [float(x) for x in state["daily"]]
        detector.weekly = [float(x) for x in state["weekly"]]
        detector.abs_residual = [float(x) for x in state["abs_residual"]]
        detector.daily_seen = [int(x) for x in state["daily_seen"]]
        detector.weekly_seen = [int(x) for x in state["weekly_seen"]]
        rise = state.get("rise_z")
        if version == 1 or rise is None or len(rise) != len(detector.rise_z):
            # version 1 kept one average: each average starts from it; other spans start at 0
            seed = float(state["short_z"]) if version == 1 else 0.0
            rise = [seed] * len(detector.rise_z)
        detector.rise_z = [float(x) for x in rise]
        detector.peak_day = int(state["peak_day"])
        detector.peak_today = float(state["peak_today"])
        detector.log_typical_peak = float(state["log_typical_peak"])
        detector.peak_days = int(state["peak_days"])
        detector._last = Baseline(**state["last"])
        return detector


# --------------------------------------------------------------------------------------------
# Incident onsets
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GateConfig:
    """When a score stream opens an incident and when it may open the next one."""

    threshold: float = 0.5
    # the incident is over once the score stayed below ``rearm_below`` this long
    rearm_below: float = 0.2
    quiet_for: timedelta = timedelta(hours=2)


@dataclass(slots=True)
class SpikeGate:
    """Hysteresis over scores: ``update(t, score)`` is True only when an incident opens.

    A crisis lasts many windows; without this every window of it would be a fresh alert.
    """

    config: GateConfig = field(default_factory=GateConfig)
    open: bool = False
    quiet_since: datetime | None = None

    def update(self, t: datetime, score: float) -> bool:
        """Feed one window's score; True when it opens a new incident."""
        if not self.open:
            if score >= self.config.threshold:
                self.open, self.quiet_since = True, None
                return True
            return False
        if score >= self.config.rearm_below:
            self.quiet_since = None
        elif self.quiet_since is None:
            self.quiet_since = t
        if self.quiet_since is not None and t - self.quiet_since >= self.config.quiet_for:
            self.open, self.quiet_since = False, None
        return False

    def to_state(self) -> dict[str, Any]:
        """A JSON-able dict of the gate's state."""
        return {"open": self.open,
                "quiet_since": self.quiet_since.isoformat() if self.quiet_since else None}

    @classmethod
    def from_state(cls, state: dict[str, Any], config: GateConfig | None = None) -> SpikeGate:
        """Rebuild a gate from :meth:`to_state` output."""
        quiet = state.get("quiet_since")
        return cls(config=config or GateConfig(), open=bool(state["open"]),
                   quiet_since=datetime.fromisoformat(quiet) if quiet else None)


# --------------------------------------------------------------------------------------------
# Offline scoring of one series (``mentions spikes``)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SeriesConfig:
    """Detector plus gate: the one shipped configuration used for every series."""

    detector: SpikeConfig = field(default_factory=SpikeConfig)
    gate: GateConfig = field(default_factory=GateConfig)


def parse_nab_timestamp(text: str) -> datetime:
    """Parse a NAB series timestamp (``2015-02-26 21:42:53``); naive ones are taken as UTC.

    For NAB-format CSV files only: a mention's event time is read by
    :func:`pipeline.event_time.parse_event_time`, which rejects a naive time instead.
    """
    t = datetime.fromisoformat(text.strip())
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def score_series(timestamps: list[datetime], values: list[float],
                 config: SeriesConfig | None = None) -> tuple[list[float], list[int]]:
    """Run detector and gate over one series; return per-point scores and onset labels."""
    config = config or SeriesConfig()
    detector = SpikeDetector(config.detector)
    gate = SpikeGate(config.gate)
    scores: list[float] = []
    labels: list[int] = []
    for t, value in zip(timestamps, values, strict=True):
        score = detector.update(t, value)
        scores.append(score)
        labels.append(int(gate.update(t, score)))
    return scores, labels


def score_series_csv(input_path: str | Path, output_path: str | Path,
                     config: SeriesConfig | None = None) -> None:
    """Score one ``timestamp,value`` CSV; write ``timestamp,value,anomaly_score,label``.

    ``label`` is 1 where an incident opens under the shipped threshold and hysteresis, the
    rows an alert would be sent for; ``anomaly_score`` is the raw per-window score.
    """
    with Path(input_path).open(newline="", encoding="utf-8") as source:
        rows = list(csv.DictReader(source))
    if rows and not {"timestamp", "value"} <= rows[0].keys():
        raise ValueError(f"{input_path}: expected columns timestamp,value")
    timestamps = [parse_nab_timestamp(r["timestamp"]) for r in rows]
    values = [float(r["value"]) for r in rows]
    scores, labels = score_series(timestamps, values, config)
    with Path(output_path).open("w", newline="", encoding="utf-8") as sink:
        writer = csv.writer(sink, lineterminator="\n")
        writer.writerow(["timestamp", "value", "anomaly_score", "label"])
        for row, score, label in zip(rows, scores, labels, strict=True):
            writer.writerow([row["timestamp"], row["value"], f"{score:.6f}", label])
