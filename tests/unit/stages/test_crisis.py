from datetime import timedelta
from pathlib import Path

import orjson
import pytest

from pipeline.records import ScoredMention
from pipeline.stages.alerts.record import OPENED, RESOLVED, UPDATED, Alert
from pipeline.stages.alerts.routing import NO_ROUTES, RoutingRulesError, load_routing_rules
from pipeline.stages.crisis import BrandMonitor, CrisisConfig, PartitionMonitor
from tests.crisis_scenario import BRAND, CRISIS_START, START, mention, typed, typed_windows

CONFIG = CrisisConfig.for_brands({BRAND: 15})


class Tables:
    """The agent's two tables: live written per record, model per closed window (as JSON)."""

    def __init__(self) -> None:
        self.live: dict[str, dict] = {}
        self.model: dict[str, dict] = {}

    def store(self, monitor: PartitionMonitor, changed_live: set[str],
              changed_model: set[str]) -> None:
        for brand in changed_model:
            self.model[brand] = orjson.loads(orjson.dumps(monitor.monitors[brand].model_state()))
        for brand in changed_live:
            self.live[brand] = orjson.loads(orjson.dumps(monitor.monitors[brand].live_state()))

    def restore(self) -> PartitionMonitor:
        """What a restarted worker rebuilds from the tables."""
        return PartitionMonitor(CONFIG, monitors=[
            BrandMonitor.from_state(brand, CONFIG, live=live, model=self.model.get(brand))
            for brand, live in self.live.items()
        ])


def run(monitor: PartitionMonitor, batches: list[list[ScoredMention]], first_offset: int = 0,
        tables: Tables | None = None) -> list[Alert]:
    alerts = []
    for offset, batch in enumerate(batches, start=first_offset):
        result = monitor.apply(offset, batch)
        alerts.extend(result.alerts)
        if tables is not None:
            tables.store(monitor, result.changed_live, result.changed_model)
    return alerts


def test_one_crisis_opens_updates_and_resolves_once() -> None:
    alerts = run(PartitionMonitor(CONFIG, brand_names={BRAND: "Acme Mobile"}),
                 list(typed_windows()))
    assert [a.status for a in alerts] == [OPENED, UPDATED, RESOLVED]
    assert len({a.incident_id for a in alerts}) == 1
    opened = alerts[0]
    assert opened.brand_name == "Acme Mobile" and opened.kind == "crisis"
    # detected within a few windows of the onset, and dated back to it
    assert opened.window_end - CRISIS_START <= timedelta(minutes=25)
    assert opened.started_at <= CRISIS_START + timedelta(minutes=5)
    assert "#acmeleak" in dict(opened.context.top_hashtags)
    # the share detector learns percent; the alert speaks in fractions
    assert 0.0 < opened.expected_negative_share < 0.5 < opened.negative_share <= 1.0


def test_restart_from_state_neither_loses_nor_resends() -> None:
    batches = list(typed_windows())
    reference = [a.idempotency_key for a in run(PartitionMonitor(CONFIG), batches)]
    for split in (200, 362, 363, 364, 366):
        tables = Tables()
        before = run(PartitionMonitor(CONFIG), batches[:split], tables=tables)
        # the last record is redelivered after the restart (at-least-once): skipped by offset
        after = run(tables.restore(), batches[split - 1:], first_offset=split - 1)
        assert [a.idempotency_key for a in before + after] == reference, split


def test_restart_keeps_counts_and_watermark_from_the_live_table() -> None:
    tables = Tables()
    monitor = PartitionMonitor(CONFIG)
    run(monitor, list(typed_windows())[:100], tables=tables)
    again = tables.restore()
    assert again.monitors[BRAND].offset == 99
    assert again.watermark == monitor.watermark
    assert again.monitors[BRAND].windows.open == monitor.monitors[BRAND].windows.open


def test_a_mention_counts_for_the_brands_this_partition_owns() -> None:
    monitor = PartitionMonitor(CONFIG, owns=lambda brand: brand != "telvia")
    shared = mention(1, START, negative=True) | {"brands": [BRAND, "telvia", BRAND]}
    result = monitor.apply(0, typed([shared, mention(2, START, negative=False, brand="telvia")]))
    assert set(monitor.monitors) == {BRAND} and result.counted == 1
    assert result.changed_live == {BRAND}


def test_late_bad_and_far_future_mentions_are_not_counted() -> None:
    monitor = PartitionMonitor(CONFIG)
    monitor.apply(0, typed([mention(1, START, negative=False)]))
    result = monitor.apply(1, typed([mention(2, START + timedelta(minutes=30), negative=False)]))
    assert result.changed_model == {BRAND}   # windows closed: the model changed
    late = monitor.apply(2, typed([mention(3, START + timedelta(minutes=1), negative=True)]))
    assert (late.late, late.counted) == (1, 0)
    broken = mention(4, START, negative=False) | {"created_at": "yesterday"}
    naive = mention(5, START, negative=False) | {"created_at": "2026-03-02T10:00:00"}
    future = mention(6, START + timedelta(days=3), negative=False)
    refused = monitor.apply(3, typed([broken, naive, future]))
    assert (refused.refused, refused.counted) == (3, 0)
    # the unreadable ones come back with the reason, for the agent's dead letters
    assert [(m.id, error.reason) for m, error in refused.unreadable] == [
        (broken["id"], "bad_timestamp"), (naive["id"], "bad_timestamp")]
    assert monitor.watermark == START + timedelta(minutes=30)


def test_a_changed_window_size_starts_the_windows_afresh() -> None:
    monitor = PartitionMonitor(CONFIG)
    monitor.apply(0, typed([mention(1, START, negative=False)]))
    live = monitor.monitors[BRAND].live_state()
    wider = CrisisConfig(window=timedelta(minutes=10))
    rebuilt = BrandMonitor.from_state(BRAND, wider, live=live, model=None)
    assert rebuilt.windows.size == timedelta(minutes=10) and not rebuilt.windows.next_start
    with pytest.raises(ValueError, match="version"):
        BrandMonitor.from_state(BRAND, CONFIG, live=live | {"v": 99}, model=None)


def test_routing_rules_from_a_yaml_file(tmp_path: Path) -> None:
    assert load_routing_rules(None) is NO_ROUTES
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        "destinations:\n  pr: {url: 'https://hooks.example/pr', style: json}\n"
        "routes:\n  - {brands: ['acme-*'], min_severity: info, to: [pr]}\n")
    rules = load_routing_rules(routes)
    assert list(rules.destinations) == ["pr"] and rules.routes[0].brands == ("acme-*",)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_routing_rules(empty).routes == ()
    for text in ("[1, 2]", "routes: [{to: [nobody]}]", "destinations: {pr: {url: ftp://x}}"):
        routes.write_text(text)
        with pytest.raises(RoutingRulesError, match=r"routes\.yaml"):
            load_routing_rules(routes)
    with pytest.raises(RoutingRulesError, match=r"missing\.yaml"):
        load_routing_rules(tmp_path / "missing.yaml")
