"""NAB score of the spike detector on the five realTweets dev series, against baselines.

    .venv/bin/python -m benchmarks.nab          # the shipped detector against baselines
    .venv/bin/python -m benchmarks.nab --cv     # leave-one-series-out CV (benchmarks.nab_cv)

The scorer follows the Numenta Anomaly Benchmark's published rules (Lavin and Ahmad 2015;
numenta/NAB ``sweeper.py``), re-implemented here:

- rows before ``min(floor(0.15 * n), 750)`` are probationary: never scored;
- in a labelled window, only the first detection counts, worth
  ``A_TP * sigma(p) / sigma(-1)`` with ``sigma(p) = 2 / (1 + exp(5p)) - 1`` and
  ``p = -(right - i + 1) / width`` (-1 at the window's left edge, near 0 at its right);
- a detection outside every window costs ``A_FP * sigma(d)`` (negative) with ``d`` the
  distance past the previous window's right edge in window widths (``sigma = -1`` before
  the first window or 3 widths after one);
- every window without a detection costs ``-A_FN``;
- per profile, ``100 * (raw - null) / (perfect - null)`` where the null detector never
  fires (``-A_FN`` per window) and the perfect one fires on every window's first row.

A detector here is what it ships: its binary ``label`` column (score over the shipped
threshold, through the incident gate). For comparison the raw score at the same threshold,
without the gate, is scored too (that is how NAB itself reads ``anomaly_score``).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import math
import statistics
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import orjson

from benchmarks.common import SHARED_DATA, write_results
from pipeline.stages.spikes import SeriesConfig, SpikeGate, parse_nab_timestamp, score_series

NAB_DIR = SHARED_DATA / "nab"
SERIES = ("AAPL", "AMZN", "CRM", "CVS", "FB")
PROFILES: dict[str, tuple[float, float, float]] = {
    # name: (A_TP, A_FP, A_FN), NAB's config/profiles.json
    "standard": (1.0, 0.11, 1.0),
    "reward_low_FP_rate": (1.0, 0.22, 1.0),
    "reward_low_FN_rate": (1.0, 0.11, 2.0),
}


def nab_sigmoid(position: float) -> float:
    """NAB's scaled sigmoid: +0.987 at -1, 0 at 0, -1 from 3 onwards."""
    if position >= 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


@dataclass(frozen=True)
class SeriesScore:
    """Raw NAB score of one series with its null and perfect references."""

    raw: float
    null: float
    perfect: float
    detected: int
    windows: int
    false_positives: int

    @property
    def normalised(self) -> float:
        """The 0 (never fires) to 100 (perfect) score of this series alone."""
        return 100.0 * (self.raw - self.null) / (self.perfect - self.null)


def score_detections(detections: Sequence[bool], windows: Sequence[tuple[int, int]],
                     profile: tuple[float, float, float]) -> SeriesScore:
    """NAB score of one series; ``windows`` are inclusive row ranges, sorted."""
    a_tp, a_fp, a_fn = profile
    n = len(detections)
    probation = min(math.floor(0.15 * n), 750)
    max_tp = nab_sigmoid(-1.0)
    window_of = [-1] * n
    for k, (left, right) in enumerate(windows):
        for i in range(left, right + 1):
            window_of[i] = k
    # a window with no row after the probation is not scored at all (as in NAB)
    scored = [k for k, (_, right) in enumerate(windows) if right >= probation]
    best: dict[int, float] = {}
    fp_total, fp_count = 0.0, 0
    prev_right: int | None = None
    prev_width = 0
    for i in range(n):
        k = window_of[i]
        if k >= 0:
            left, right = windows[k]
            if i == right:
                prev_right, prev_width = right, right - left + 1
            if i < probation or not detections[i]:
                continue
            width = right - left + 1
            reward = a_tp * nab_sigmoid(-(right - i + 1) / width) / max_tp
            best[k] = max(best.get(k, -math.inf), reward)
        elif i >= probation and detections[i]:
            position = 3.0 if prev_right is None else abs(prev_right - i) / (prev_width - 1)
            fp_total += a_fp * nab_sigmoid(position)
            fp_count += 1
    tp_total = sum(best.values())
    missed = len([k for k in scored if k not in best])
    return SeriesScore(
        raw=tp_total + fp_total - a_fn * missed,
        null=-a_fn * len(scored),
        perfect=a_tp * len(scored),
        detected=len(best),
        windows=len(scored),
        false_positives=fp_count,
    )


def load_series(name: str) -> tuple[list[datetime], list[float], list[tuple[int, int]]]:
    path = NAB_DIR / "realTweets" / f"Twitter_volume_{name}.csv"
    with path.open(newline="") as source:
        rows = list(csv.DictReader(source))
    timestamps = [parse_nab_timestamp(r["timestamp"]) for r in rows]
    values = [float(r["value"]) for r in rows]
    labelled = orjson.loads((NAB_DIR / "realTweets_dev_windows.json").read_bytes())
    index = {t: i for i, t in enumerate(timestamps)}
    windows = [(index[parse_nab_timestamp(a)], index[parse_nab_timestamp(b)])
               for a, b in labelled[f"realTweets/Twitter_volume_{name}.csv"]]
    return timestamps, values, windows


# ---- baselines ------------------------------------------------------------------------------


def rolling_zscore(timestamps: Sequence[datetime], values: Sequence[float],
                   rows: int = 288, alert_z: float = 4.0) -> list[float]:
    """Plain z-score of each value against the previous day (288 rows), as a score in [0,1).

    Same score mapping as the detector (0.5 at ``alert_z``) so the same gate applies.
    """
    history: deque[float] = deque(maxlen=rows)
    scores = []
    for value in values:
        if len(history) < rows:
            scores.append(0.0)
        else:
            mean = statistics.fmean(history)
            sd = statistics.pstdev(history, mean) or 1.0
            z = max((value - mean) / sd, 0.0)
            scores.append(z * z / (z * z + alert_z * alert_z))
        history.append(value)
    return scores


def gated(timestamps: Sequence[datetime], scores: Sequence[float]) -> list[bool]:
    gate = SpikeGate()
    return [gate.update(t, s) for t, s in zip(timestamps, scores, strict=True)]


def main() -> None:
    config = SeriesConfig()
    threshold = config.gate.threshold
    detectors: dict[str, Callable[[list[datetime], list[float]], list[bool]]] = {}

    def shipped(ts: list[datetime], vs: list[float]) -> list[bool]:
        return [bool(x) for x in score_series(ts, vs, config)[1]]

    def shipped_ungated(ts: list[datetime], vs: list[float]) -> list[bool]:
        return [s >= threshold for s in score_series(ts, vs, config)[0]]

    def zscore_gated(ts: list[datetime], vs: list[float]) -> list[bool]:
        return gated(ts, rolling_zscore(ts, vs))

    def zscore_ungated(ts: list[datetime], vs: list[float]) -> list[bool]:
        return [s >= threshold for s in rolling_zscore(ts, vs)]

    detectors["spikes (shipped: score + gate)"] = shipped
    detectors["spikes score >= threshold, no gate"] = shipped_ungated
    detectors["rolling 1-day z-score + gate"] = zscore_gated
    detectors["rolling 1-day z-score, no gate"] = zscore_ungated
    detectors["null (never fires)"] = lambda ts, vs: [False] * len(vs)

    data = {name: load_series(name) for name in SERIES}
    results: dict[str, dict[str, object]] = {}
    for detector_name, detect in detectors.items():
        started = time.perf_counter()
        detections = {name: detect(ts, vs) for name, (ts, vs, _) in data.items()}
        elapsed = time.perf_counter() - started
        per_profile: dict[str, object] = {}
        for profile_name, profile in PROFILES.items():
            per_series = {name: score_detections(detections[name], data[name][2], profile)
                          for name in SERIES}
            raw = sum(s.raw for s in per_series.values())
            null = sum(s.null for s in per_series.values())
            perfect = sum(s.perfect for s in per_series.values())
            per_profile[profile_name] = {
                "total": round(100.0 * (raw - null) / (perfect - null), 2),
                "series": {name: {"score": round(s.normalised, 2), "detected": s.detected,
                                  "windows": s.windows, "false_positives": s.false_positives}
                           for name, s in per_series.items()},
            }
        rows = sum(len(v) for _, v, _ in data.values())
        results[detector_name] = {"profiles": per_profile,
                                  "rows_per_s": round(rows / elapsed) if elapsed else None}

    # how much the standard score depends on the one shipped threshold (reported, not used
    # to pick it): the detector's scores are re-read at neighbouring alert ratios
    sensitivity: dict[str, float] = {}
    runs = {name: score_series(ts, vs, config)[0] for name, (ts, vs, _) in data.items()}
    shipped_ratio = config.detector.alert_ratio
    for ratio in (1.2, 1.3, 1.4, 1.5, 1.6, 1.7, 1.8, 2.0):
        raw = null = perfect = 0.0
        for name, (ts, _, windows) in data.items():
            # score = r^2 / (r^2 + shipped^2), so the score at ratio r' is a fixed threshold
            def score_at(r: float) -> float:
                return r * r / (r * r + shipped_ratio * shipped_ratio)

            # the shipped gate re-arms at half the alert ratio (score 0.2 vs 0.5)
            gate = SpikeGate(dataclasses.replace(config.gate, threshold=score_at(ratio),
                                                 rearm_below=score_at(ratio / 2)))
            fired = [gate.update(t, s) for t, s in zip(ts, runs[name], strict=True)]
            scored = score_detections(fired, windows, PROFILES["standard"])
            raw, null, perfect = raw + scored.raw, null + scored.null, perfect + scored.perfect
        sensitivity[f"{ratio:.1f}"] = round(100.0 * (raw - null) / (perfect - null), 2)
    print("standard-profile total at other alert ratios (shipped "
          f"{shipped_ratio}): {sensitivity}")

    print(f"{'detector':40s} {'profile':20s} {'total':>7s} " +
          " ".join(f"{n:>14s}" for n in SERIES))
    for detector_name, result in results.items():
        profiles = result["profiles"]
        assert isinstance(profiles, dict)
        for profile_name, scored in profiles.items():
            cells = " ".join(
                f"{s['score']:6.1f} {s['detected']}/{s['windows']} fp{s['false_positives']:<2d}"
                for s in scored["series"].values())
            print(f"{detector_name:40s} {profile_name:20s} {scored['total']:7.2f} {cells}")
    write_results("nab", {
        "data": "NAB realTweets dev series (5 of 10), ../shared/data/nab",
        "shipped_config": {"detector": repr(config.detector), "gate": repr(config.gate)},
        "note": "cells: normalised score, windows detected/scored, false-positive detections",
        "detectors": results,
        "standard_total_by_alert_ratio": sensitivity,
    })


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cv", action="store_true",
                        help="choose the detector's knobs by leave-one-series-out "
                             "cross-validation and report CV next to in-sample scores")
    if parser.parse_args().cv:
        from benchmarks import nab_cv

        nab_cv.main()
    else:
        main()
