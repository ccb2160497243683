"""The NAB cross-validation harness: folds, pooling, threshold fit, grid search, rescoring."""

from datetime import UTC, datetime, timedelta

import pytest

from benchmarks.nab import PROFILES, SeriesScore
from benchmarks.nab_cv import (
    Fold,
    cross_validate,
    describe,
    detections_at,
    fit_ratio,
    grid_search,
    in_sample,
    leave_one_out,
    pooled,
    rescore,
)
from pipeline.stages.spikes import GateConfig, SeriesConfig, SpikeConfig, score_series
from tests.unit.stages.test_spikes import daily_rate

NAMES = ("a", "b", "c")


def series_score(normalised: float, windows: int = 2) -> SeriesScore:
    """A score whose normalised value is ``normalised`` (null -windows, perfect +windows)."""
    raw = -windows + normalised / 100.0 * 2 * windows
    return SeriesScore(raw=raw, null=-windows, perfect=windows, detected=0, windows=windows,
                       false_positives=0)


def table(scores: dict[float, dict[str, float]]) -> dict[float, dict[str, dict[str, SeriesScore]]]:
    """A ratio table with the same score under every profile."""
    return {ratio: {name: {p: series_score(value) for p in PROFILES}
                    for name, value in by_name.items()}
            for ratio, by_name in scores.items()}


def test_leave_one_out_holds_out_each_series_once_and_trains_on_the_rest() -> None:
    folds = leave_one_out(NAMES)
    assert folds == [Fold(("b", "c"), "a"), Fold(("a", "c"), "b"), Fold(("a", "b"), "c")]
    for fold in folds:
        assert fold.test not in fold.train and len(fold.train) == len(NAMES) - 1
    with pytest.raises(ValueError):
        leave_one_out(["a", "a"])
    with pytest.raises(ValueError):
        leave_one_out(["a"])


def test_pooled_sums_raw_scores_before_normalising_as_nab_does() -> None:
    small, large = series_score(100.0, windows=1), series_score(0.0, windows=3)
    # one perfect window and three missed: 1 of 4 windows' worth, not the mean of 100 and 0
    assert pooled([small, large]) == pytest.approx(25.0)
    assert pooled([series_score(62.5)]) == pytest.approx(62.5)


def test_fit_ratio_maximises_the_pooled_training_score_and_breaks_ties_low() -> None:
    scores = table({1.5: {"a": 60, "b": 80, "c": 0},
                    1.8: {"a": 90, "b": 70, "c": 100},
                    2.0: {"a": 90, "b": 70, "c": 0}})
    assert fit_ratio(scores, ["a", "b"]) == 1.8      # 80 against 70 and 80: the tie goes low
    assert fit_ratio(scores, ["b"]) == 1.5
    assert fit_ratio(scores, ["a", "c"]) == 1.8


def test_cross_validation_scores_each_series_with_what_the_others_chose() -> None:
    scores = table({1.5: {"a": 50, "b": 90, "c": 40},
                    1.8: {"a": 80, "b": 30, "c": 70}})
    cv = cross_validate(scores, NAMES)
    # a held out: b + c prefer 1.5 (130 vs 100); b: a + c prefer 1.8 (90 vs 150); c: 1.5
    assert cv.ratios == {"a": 1.5, "b": 1.8, "c": 1.5}
    assert [cv.scores[n]["standard"].normalised for n in NAMES] == pytest.approx([50, 30, 40])
    assert cv.total() == pytest.approx(40.0)
    fit = in_sample(scores, NAMES)
    # 180 at either ratio: the tie goes to the lower one
    assert set(fit.ratios.values()) == {1.5}
    assert fit.total() == pytest.approx(60.0)


def test_grid_search_scores_every_point_and_keeps_the_first_best() -> None:
    calls: list[dict] = []

    def score(knobs: dict) -> float:
        calls.append(dict(knobs))
        return float(-abs(knobs["x"] - 1) + (knobs["y"] == 0))

    best, value = grid_search({"x": 0, "y": 0, "z": 7}, {"x": (0, 1, 2), "y": (1, 0)}, score)
    assert (best, value) == ({"x": 1, "y": 0, "z": 7}, 1.0)
    assert len(calls) == 6 and all(c["z"] == 7 for c in calls)
    # ties go to the first point in grid order
    assert grid_search({"x": 0}, {"x": (2, 1, 0)}, lambda k: 0.0) == ({"x": 2}, 0.0)
    with pytest.raises(ValueError):
        grid_search({"x": 0}, {"x": ()}, score)


def test_rescore_reads_the_score_a_detector_with_another_alert_ratio_gives() -> None:
    start = datetime(2025, 3, 3, tzinfo=UTC)
    timestamps = [start + k * timedelta(minutes=5) for k in range(3 * 288)]
    values = [daily_rate(t) * (6.0 if 700 <= k < 706 else 1.0)
              for k, t in enumerate(timestamps)]
    base = SpikeConfig(alert_ratio=1.5)
    scores, _ = score_series(timestamps, values, SeriesConfig(detector=base))
    other, labels = score_series(timestamps, values,
                                 SeriesConfig(detector=SpikeConfig(alert_ratio=2.2)))
    assert [rescore(s, 1.5, 2.2) for s in scores] == pytest.approx(other, abs=1e-12)
    assert detections_at(timestamps, scores, 1.5, 2.2, GateConfig()) == [bool(x) for x in labels]
    assert rescore(0.3, 1.8, 1.8) == pytest.approx(0.3)
    ungated = detections_at(timestamps, scores, 1.5, 2.2, None)
    assert sum(ungated) >= sum(labels) >= 1


def test_describe_knob_values() -> None:
    assert [describe(v) for v in (timedelta(hours=1), timedelta(minutes=30),
                                  timedelta(seconds=1), timedelta(days=2), float("inf"), 0.1,
                                  (timedelta(minutes=30), timedelta(hours=1)), ())] \
        == ["1h", "30m", "1s", "2d", "inf", "0.1", "30m+1h", "off"]


def test_docstring_examples_hold() -> None:
    import doctest

    import benchmarks.nab_cv

    failures, tried = doctest.testmod(benchmarks.nab_cv)
    assert failures == 0 and tried >= 3
