from __future__ import annotations

from datetime import timedelta

import orjson
import pytest

from pipeline.stages.alerts.lifecycle import BrandIncidents, IncidentConfig, WindowObservation
from pipeline.stages.alerts.record import CRISIS, OPENED, RESOLVED, UPDATED, VOLUME_SPIKE, Severity
from pipeline.stages.brand_windows import ClosedWindow
from pipeline.stages.spikes import Baseline
from tests.unit.stages.alerts.conftest import BRAND, START, STEP, calm, crisis, mention, run, window


def test_calm_windows_raise_nothing() -> None:
    incidents = BrandIncidents(BRAND)
    assert run(incidents, [calm(i) for i in range(50)]) == []
    assert incidents.open_kind is None


def test_crisis_opens_once_while_it_stays_level() -> None:
    incidents = BrandIncidents(BRAND, brand_name="Acme Mobile")
    alerts = run(incidents, [calm(0), calm(1), *[crisis(i) for i in range(2, 12)]])
    assert [(a.kind, a.status, a.sequence) for a in alerts] == [(CRISIS, OPENED, 0)]
    opened = alerts[0]
    assert opened.severity is Severity.WARNING
    assert opened.brand_name == "Acme Mobile"
    assert opened.window_end == START + 3 * STEP
    assert incidents.open_kind == CRISIS


def test_update_only_when_the_crisis_materially_grows() -> None:
    incidents = BrandIncidents(BRAND)
    alerts = run(incidents, [crisis(0, negative=40), crisis(1, negative=50),  # x1.25: quiet
                             crisis(2, negative=61),                            # x1.5: update
                             crisis(3, negative=80),                            # x1.3: quiet
                             crisis(4, negative=95)])                           # x1.56: update
    assert [(a.status, a.negative, a.sequence) for a in alerts] == [
        (OPENED, 40, 0), (UPDATED, 61, 1), (UPDATED, 95, 2)]
    assert {a.incident_id for a in alerts} == {alerts[0].incident_id}


def test_severity_rise_is_an_update_even_without_growth() -> None:
    incidents = BrandIncidents(BRAND)
    alerts = run(incidents, [crisis(0, negative=40, score=0.6), crisis(1, negative=40, score=0.95)])
    assert [(a.status, a.severity) for a in alerts] == [
        (OPENED, Severity.WARNING), (UPDATED, Severity.CRITICAL)]
    assert alerts[1].previous_severity is Severity.WARNING
    # severity never drops inside an incident
    later = run(incidents, [crisis(2, negative=100, score=0.6)])
    assert [(a.status, a.severity) for a in later] == [(UPDATED, Severity.CRITICAL)]


def test_critical_needs_both_an_extreme_score_and_real_volume() -> None:
    # 25 negative mentions is below 3 x the minimum of 10: extreme score, still a warning
    incidents = BrandIncidents(BRAND)
    [opened] = run(incidents, [crisis(0, negative=25, score=0.99)])
    assert opened.severity is Severity.WARNING


def test_crisis_needs_the_minimum_negative_volume_per_brand() -> None:
    # a small brand: 6 negative mentions where 0.5 were expected
    few = [window(i, volume=20, negative=6, negative_score=0.95, share_score=0.95,
                  expected_negative=0.5) for i in range(5)]
    assert run(BrandIncidents(BRAND), few) == []
    config = IncidentConfig(brand_min_negative={BRAND: 5})
    alerts = run(BrandIncidents(BRAND, config), few)
    assert [(a.kind, a.status) for a in alerts] == [(CRISIS, OPENED)]
    # another brand keeps the default minimum
    assert run(BrandIncidents("telvia", config),
               [window(i, brand="telvia", volume=50, negative=6, negative_score=0.95,
                       share_score=0.95) for i in range(5)]) == []


def test_volume_spike_is_its_own_lower_kind_and_is_promoted_to_crisis() -> None:
    incidents = BrandIncidents(BRAND)
    spike = [window(i, volume=400, negative=12, volume_score=0.7) for i in range(3)]
    alerts = run(incidents, spike)
    assert [(a.kind, a.status, a.severity) for a in alerts] == [
        (VOLUME_SPIKE, OPENED, Severity.INFO)]
    turned = run(incidents, [window(3, volume=420, negative=90, volume_score=0.7,
                                    negative_score=0.7, share_score=0.6)])
    assert [(a.kind, a.status, a.previous_kind) for a in turned] == [
        (CRISIS, UPDATED, VOLUME_SPIKE)]
    assert turned[0].incident_id == alerts[0].incident_id
    assert turned[0].severity is Severity.WARNING


def test_small_volume_spike_is_ignored() -> None:
    alerts = run(BrandIncidents(BRAND), [window(i, volume=20, negative=1, volume_score=0.9)
                                         for i in range(5)])
    assert alerts == []


def test_hysteresis_keeps_an_incident_open_between_the_thresholds() -> None:
    incidents = BrandIncidents(BRAND)
    # 0.4 is below the open threshold (0.5) but above stay-open (0.3)
    lukewarm = [crisis(i, negative=40, score=0.4) for i in range(1, 30)]
    assert run(BrandIncidents(BRAND), lukewarm) == []
    alerts = run(incidents, [crisis(0), *lukewarm])
    assert [a.status for a in alerts] == [OPENED]
    assert incidents.open_kind == CRISIS


def test_resolves_after_n_consecutive_calm_windows() -> None:
    incidents = BrandIncidents(BRAND, IncidentConfig(calm_windows=3))
    alerts = run(incidents, [crisis(0), calm(1), calm(2), crisis(3, negative=50),  # reset
                             calm(4), calm(5)])
    assert [a.status for a in alerts] == [OPENED]
    [resolved] = run(incidents, [calm(6)])
    assert resolved.status == RESOLVED
    assert resolved.sequence == 1
    assert resolved.window_end == START + 7 * STEP
    assert resolved.totals == {"windows": 7, "volume": 150 * 2 + 100 * 5,
                               "negative": 60 + 50 + 10 * 5}
    assert resolved.peak["negative"] == 60
    assert incidents.open_kind is None


def test_cooldown_blocks_a_flap_but_not_an_escalation_or_a_later_incident() -> None:
    config = IncidentConfig(calm_windows=1, cooldown=timedelta(minutes=30))
    incidents = BrandIncidents(BRAND, config)
    first = run(incidents, [crisis(0), calm(1)])
    assert [a.status for a in first] == [OPENED, RESOLVED]
    # same severity within 30 minutes of the resolution: suppressed
    assert run(incidents, [crisis(2), calm(3), crisis(4), calm(5)]) == []
    assert incidents.suppressed == 2
    # more severe than the incident just resolved: opens despite the cooldown
    escalated = run(incidents, [crisis(6, negative=100, score=0.95)])
    assert [(a.status, a.severity) for a in escalated] == [(OPENED, Severity.CRITICAL)]
    run(incidents, [calm(7)])
    # after the cooldown the same level opens a new incident, with a new id
    later = run(incidents, [calm(i) for i in range(8, 16)] + [crisis(16)])
    assert [a.status for a in later] == [OPENED]
    assert len({first[0].incident_id, escalated[0].incident_id, later[0].incident_id}) == 3


def test_started_at_goes_back_to_the_first_warm_window() -> None:
    incidents = BrandIncidents(BRAND)
    [opened] = run(incidents, [calm(0), crisis(1, score=0.35), crisis(2, score=0.4), crisis(3)])
    assert opened.started_at == START + STEP
    assert opened.incident_id == "acme-mobile-20250303T1005Z"


def test_redelivered_or_old_window_changes_nothing() -> None:
    incidents = BrandIncidents(BRAND)
    run(incidents, [crisis(0)])
    before = incidents.to_state()
    assert incidents.update(crisis(0, negative=500, score=0.99)) == []
    assert incidents.to_state() == before


def test_state_round_trip_mid_incident_neither_reopens_nor_resends() -> None:
    config = IncidentConfig(calm_windows=2)
    incidents = BrandIncidents(BRAND, config, brand_name="Acme Mobile")
    incidents.observe(mention(1, text="battery fire #AcmeLeak"), START)
    [opened] = run(incidents, [crisis(0)])
    incidents.observe(mention(2, text="battery fire again", author="a2"), START + STEP)
    wire = orjson.loads(orjson.dumps(incidents.to_state()))
    restored = BrandIncidents.from_state(wire, config, brand_name="Acme Mobile")
    assert restored.to_state() == incidents.to_state()
    # the window already processed before the crash is redelivered: nothing again
    assert restored.update(crisis(0)) == []
    # same level: no re-open, no re-send; growth: an update continuing the sequence
    assert restored.update(crisis(1)) == []
    [grown] = restored.update(crisis(2, negative=95))
    assert (grown.status, grown.sequence, grown.incident_id) == (UPDATED, 1, opened.incident_id)
    assert grown.context.mentions == 2
    statuses = [a.status for a in run(restored, [calm(3), calm(4)])]
    assert statuses == [RESOLVED]


def test_replay_from_older_state_reproduces_the_same_idempotency_keys() -> None:
    def events(incidents: BrandIncidents, start: int) -> list[str]:
        series = [calm(0), crisis(1), crisis(2, negative=100), calm(3), calm(4), calm(5)]
        return [a.idempotency_key for a in run(incidents, series[start:])]

    live = BrandIncidents(BRAND)
    first_half = run(live, [calm(0), crisis(1)])
    snapshot = orjson.loads(orjson.dumps(live.to_state()))
    keys = [a.idempotency_key for a in first_half] + events(live, 2)
    # a worker that restarts from the snapshot and replays windows 2.. emits the same keys
    replayed = [a.idempotency_key for a in first_half] + events(
        BrandIncidents.from_state(snapshot), 2)
    assert keys == replayed
    assert keys == [f"{BRAND}/acme-mobile-20250303T1005Z/{n}" for n in range(3)]


def test_wrong_brand_and_bad_config_are_refused() -> None:
    with pytest.raises(ValueError, match="fed to incidents"):
        BrandIncidents(BRAND).update(window(0, brand="telvia"))
    with pytest.raises(ValueError, match="stay_open_score"):
        IncidentConfig(open_score=0.3, stay_open_score=0.4)
    with pytest.raises(ValueError, match="version"):
        BrandIncidents.from_state({"v": 99, "brand": BRAND})


def test_from_baselines_reads_the_detectors() -> None:
    closed = ClosedWindow(BRAND, START, START + STEP, volume=200, negative=50)

    def baseline(expected: float, score: float) -> Baseline:
        return Baseline(expected, expected / 2, expected * 2, 3.0, 4.0, score, False)

    observation = WindowObservation.from_baselines(
        closed, baseline(80.0, 0.2), baseline(8.0, 0.9), baseline(0.1, 0.7))
    assert (observation.volume, observation.negative, observation.negative_share) == (
        200, 50, 0.25)
    assert (observation.expected_negative, observation.negative_score,
            observation.share_score) == (8.0, 0.9, 0.7)


def test_crisis_context_reads_negative_mentions_and_lookback_windows() -> None:
    incidents = BrandIncidents(BRAND, brand_name="Acme Mobile")
    incidents.observe(mention(1, text="acme mobile battery fire", label="negative"), START)
    incidents.observe(mention(2, text="acme mobile lovely camera", label="positive",
                              author="fan", followers=10**6), START)
    incidents.observe(mention(3, text="battery exploded #AcmeLeak", author="b2"), START + STEP)
    # a window long before the incident: not part of its context
    incidents.observe(mention(4, text="ancient complaint", author="old"), START - 20 * STEP)
    incidents.update(window(-20))
    [opened] = run(incidents, [crisis(0, score=0.4), crisis(1)])
    terms = dict(opened.context.top_terms)
    assert "battery" in terms and terms["battery"] == 2
    # the brand's own name and the positive mention stay out of a crisis context
    assert not {"acme", "mobile", "lovely", "ancient"} & set(terms)
    assert [v.author_id for v in opened.context.top_voices] == ["a1", "b2"]
    assert opened.context.top_hashtags == (("#acmeleak", 1),)
    # a mention for a window already closed is refused
    assert incidents.observe(mention(5, text="late"), START) is False


def test_window_contexts_are_forgotten_when_nothing_opens() -> None:
    incidents = BrandIncidents(BRAND, IncidentConfig(lookback_windows=2))
    for i in range(50):
        incidents.observe(mention(i, text=f"calm words {i}"), START + i * STEP)
        incidents.update(calm(i))
    assert len(incidents.window_contexts) <= 3


def test_resolves_when_counts_are_back_at_baseline_even_if_scores_linger() -> None:
    # detectors smooth their scores: 0.6 lingers while negatives are back to ~8 expected
    incidents = BrandIncidents(BRAND, IncidentConfig(calm_windows=2))
    lingering = [window(i, volume=90, negative=11, negative_score=0.6, share_score=0.6)
                 for i in (1, 2)]
    alerts = run(incidents, [crisis(0), *lingering])
    assert [a.status for a in alerts] == [OPENED, RESOLVED]
    # while the count stays well above the baseline the same score keeps it open
    still = BrandIncidents(BRAND, IncidentConfig(calm_windows=2))
    elevated = [window(i, volume=90, negative=30, negative_score=0.6, share_score=0.6)
                for i in (1, 2)]
    assert [a.status for a in run(still, [crisis(0), *elevated])] == [OPENED]
