from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from pipeline.stages.brand_windows import BrandWindows
from pipeline.stages.spikes import (
    GateConfig,
    SpikeConfig,
    SpikeDetector,
    SpikeGate,
    score_series,
    score_series_csv,
)

START = datetime(2025, 3, 3, tzinfo=UTC)  # a Monday
STEP = timedelta(minutes=5)


def clock(start: datetime = START, step: timedelta = STEP) -> Iterator[datetime]:
    """A fake event-time clock: one tick per 5-minute window."""
    t = start
    while True:
        yield t
        t += step


def daily_rate(t: datetime, base: float = 40.0) -> float:
    """Expected mentions per window: quiet nights, busy afternoons."""
    return base * (1.0 + 0.8 * math.sin(2 * math.pi * (t.hour + t.minute / 60 - 9) / 24))


def replay(detector: SpikeDetector, days: float, seed: int = 7,
           start: datetime = START) -> list[float]:
    rng = np.random.default_rng(seed)
    scores = []
    ticks = clock(start)
    for _ in range(int(days * 288)):
        t = next(ticks)
        scores.append(detector.update(t, float(rng.poisson(daily_rate(t)))))
    return scores


def test_warm_up_scores_zero_even_for_wild_values() -> None:
    detector = SpikeDetector()
    ticks = clock()
    scores = [detector.update(next(ticks), value) for value in [10, 5000, 0, 9000] * 50]
    assert scores == [0.0] * 200
    assert detector.get().warming_up


def test_clear_spike_scores_high_and_normal_windows_do_not() -> None:
    detector = SpikeDetector()
    normal = replay(detector, days=7)
    after_warmup = normal[288:]
    assert max(after_warmup) < 0.5
    t = START + 7 * 288 * STEP
    expected = detector.get().expected
    spike = detector.update(t, 10 * daily_rate(t))
    assert spike >= 0.5
    # what an alert would print: the baseline is near the true rate, not the spike
    assert expected == pytest.approx(daily_rate(t - STEP), rel=0.3)


def test_drop_in_volume_is_not_scored() -> None:
    detector = SpikeDetector()
    replay(detector, days=4)
    # the window's own z is far below zero; only the rise averages' leftover noise may score
    assert detector.update(START + 4 * 288 * STEP, 0.0) < 0.01
    assert detector.get().z < 0.5
    no_averages = SpikeDetector(SpikeConfig(rise_memories=()))
    replay(no_averages, days=4)
    assert no_averages.update(START + 4 * 288 * STEP, 0.0) == 0.0


def test_regular_daily_peak_is_learned_and_stops_scoring() -> None:
    detector = SpikeDetector()
    ticks = clock()
    for _ in range(4 * 288):  # four flat days: 30 mentions per window round the clock
        detector.update(next(ticks), 30.0)
    peak_scores_by_day: list[float] = []
    for _ in range(14):
        # from now on, the same lunchtime hour every day runs at 6x
        day_max = 0.0
        for _ in range(288):
            t = next(ticks)
            day_max = max(day_max, detector.update(t, 180.0 if t.hour == 12 else 30.0))
        peak_scores_by_day.append(day_max)
    # the first lunchtime is a surprise, by the second week it is routine
    assert peak_scores_by_day[0] >= 0.5
    assert max(peak_scores_by_day[-5:]) < 0.2
    # and the same jump for half an hour at night still is one
    night_scores = []
    for _ in range(3 * 12 + 6):
        t = next(ticks)
        night_scores.append(detector.update(t, 180.0 if t.hour == 3 else 30.0))
    assert max(night_scores[:36]) < 0.2
    assert max(night_scores[36:]) >= 0.5


def test_single_outlier_barely_moves_the_baseline() -> None:
    detector = SpikeDetector()
    replay(detector, days=5)
    twin = SpikeDetector.from_state(detector.to_state())
    t = START + 5 * 288 * STEP
    assert detector.update(t, 50_000.0) > 0.9
    twin.update(t, daily_rate(t))
    assert detector.update(t + STEP, daily_rate(t + STEP)) < 0.5
    twin.update(t + STEP, daily_rate(t + STEP))
    assert detector.get().expected == pytest.approx(twin.get().expected, rel=0.1)


def test_long_spike_does_not_become_the_baseline_within_hours() -> None:
    detector = SpikeDetector()
    replay(detector, days=5)
    t = START + 5 * 288 * STEP
    scores = []
    for k in range(24):  # two hours at 8x
        scores.append(detector.update(t + k * STEP, 8 * daily_rate(t + k * STEP)))
    assert min(scores) >= 0.5
    assert detector.get().expected < 3 * daily_rate(t + 23 * STEP)


def test_state_round_trip_through_json_continues_identically() -> None:
    original = SpikeDetector()
    replay(original, days=3, seed=1)
    state = json.loads(json.dumps(original.to_state()))
    restored = SpikeDetector.from_state(state)
    assert restored.to_state() == original.to_state()
    later = START + 3 * 288 * STEP
    assert replay(original, days=1, seed=2, start=later) == \
        replay(restored, days=1, seed=2, start=later)
    assert len(json.dumps(state)) < 4_000


def test_a_sustained_rise_no_single_window_flags_is_caught_by_the_rise_averages() -> None:
    # two hours at 1.8x: no single window stands out, the two-hour average does
    def rise_scores(config: SpikeConfig) -> list[float]:
        detector = SpikeDetector(config)
        replay(detector, days=5)
        t = START + 5 * 288 * STEP
        rng = np.random.default_rng(3)
        return [detector.update(t + k * STEP, float(rng.poisson(1.8 * daily_rate(t + k * STEP))))
                for k in range(24)]

    assert max(rise_scores(SpikeConfig(rise_memories=()))) < 0.5
    assert max(rise_scores(SpikeConfig())) >= 0.5


def test_state_of_one_rise_average_loads_into_every_average() -> None:
    detector = SpikeDetector()
    replay(detector, days=2)
    state = detector.to_state()
    old = {**state, "v": 1, "short_z": 1.5}
    del old["rise_z"]
    restored = SpikeDetector.from_state(old)
    assert restored.rise_z == [1.5] * len(SpikeConfig().rise_memories)
    assert restored.level == detector.level
    # a state saved with other spans restarts its averages rather than mixing them up
    other = SpikeDetector.from_state(state, SpikeConfig(rise_memories=(timedelta(hours=1),)))
    assert other.rise_z == [0.0]
    with pytest.raises(ValueError):
        SpikeDetector.from_state({**state, "v": 99})


def test_rejects_naive_and_backwards_timestamps() -> None:
    detector = SpikeDetector()
    with pytest.raises(ValueError):
        detector.update(datetime(2025, 1, 1), 1.0)  # noqa: DTZ001
    detector.update(START, 1.0)
    with pytest.raises(ValueError):
        detector.update(START - STEP, 1.0)


def test_gate_opens_once_per_incident_and_rearms_after_quiet() -> None:
    gate = SpikeGate(GateConfig(threshold=0.5, rearm_below=0.2, quiet_for=timedelta(hours=1)))
    ticks = clock()
    scores = [0.1, 0.9, 0.95, 0.3, 0.7, 0.1] + [0.05] * 12 + [0.9]
    opened = [gate.update(next(ticks), s) for s in scores]
    assert opened == [False, True] + [False] * 16 + [True]
    restored = SpikeGate.from_state(json.loads(json.dumps(gate.to_state())), gate.config)
    assert restored == gate


def test_brand_windows_close_with_lateness_and_emit_empty_windows() -> None:
    windows = BrandWindows(size=timedelta(minutes=5), lateness=timedelta(minutes=2))
    t0 = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)
    assert windows.add("acme", t0 + timedelta(minutes=1), is_negative=True)
    assert windows.add("acme", t0 + timedelta(minutes=4), is_negative=False)
    assert windows.add("globex", t0 + timedelta(minutes=3), is_negative=False)
    # the window [12:00, 12:05) is still open at 12:06 (lateness 2 minutes)
    assert windows.close_until(t0 + timedelta(minutes=6)) == []
    assert windows.add("acme", t0 + timedelta(minutes=2), is_negative=True)  # late, in time
    closed = windows.close_until(t0 + timedelta(minutes=7))
    assert [(w.brand, w.volume, w.negative) for w in closed] == [("acme", 3, 2), ("globex", 1, 0)]
    assert closed[0].negative_share == pytest.approx(2 / 3)
    assert closed[0].end == t0 + timedelta(minutes=5)
    # too late now: counted, not silently lost
    assert not windows.add("acme", t0 + timedelta(minutes=4), is_negative=True)
    assert windows.late_dropped == 1

    state = json.loads(json.dumps(windows.to_state()))
    windows.add("acme", t0 + timedelta(minutes=11), is_negative=False)
    restored = BrandWindows.from_state(state)
    restored.add("acme", t0 + timedelta(minutes=11), is_negative=False)
    # two quiet-then-busy windows per brand: acme [12:05) empty, [12:10) one mention
    later = restored.close_until(t0 + timedelta(minutes=17))
    assert later == windows.close_until(t0 + timedelta(minutes=17))
    assert [(w.brand, w.start.minute, w.volume) for w in later] == [
        ("acme", 5, 0), ("globex", 5, 0), ("acme", 10, 1), ("globex", 10, 0)]
    assert later[0].negative_share == 0.0


def test_window_start_aligns_on_the_epoch_in_the_mentions_zone() -> None:
    windows = BrandWindows(size=timedelta(minutes=15))
    t = datetime(2025, 3, 3, 12, 14, 59, tzinfo=UTC)
    assert windows.window_start(t) == datetime(2025, 3, 3, 12, 0, tzinfo=UTC)


def test_score_series_csv_writes_nab_results_and_labels_the_spike(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    series = tmp_path / "series.csv"
    spike_at = 5 * 288 + 100
    with series.open("w", newline="") as sink:
        writer = csv.writer(sink)
        writer.writerow(["timestamp", "value"])
        for i, t in zip(range(7 * 288), clock(START.replace(tzinfo=None)), strict=False):
            value = rng.poisson(daily_rate(t) * (12 if spike_at <= i < spike_at + 6 else 1))
            writer.writerow([t.strftime("%Y-%m-%d %H:%M:%S"), value])
    scores = tmp_path / "scores.csv"
    score_series_csv(series, scores)
    with scores.open(newline="") as source:
        rows = list(csv.DictReader(source))
    assert list(rows[0]) == ["timestamp", "value", "anomaly_score", "label"]
    assert len(rows) == 7 * 288
    fired = [i for i, row in enumerate(rows) if row["label"] == "1"]
    assert fired == [spike_at]
    assert all(0.0 <= float(row["anomaly_score"]) < 1.0 for row in rows)


def test_score_series_matches_the_streaming_detector() -> None:
    ticks = clock()
    timestamps = [next(ticks) for _ in range(600)]
    values = [float(daily_rate(t)) for t in timestamps]
    scores, labels = score_series(timestamps, values)
    detector = SpikeDetector()
    assert scores == [detector.update(t, v) for t, v in zip(timestamps, values, strict=True)]
    assert len(labels) == 600
