"""The crisis worker's core: partitions' monitors over state tables, one step per record."""

from __future__ import annotations

from typing import Any

import orjson

from pipeline.config import Settings
from pipeline.records import ScoredMention, Sentiment
from pipeline.stages.alerts.record import OPENED, RESOLVED, UPDATED
from pipeline.stages.brands import BrandRule
from pipeline.stages.crisis import CrisisConfig
from pipeline.stages.crisis_partitions import (
    CrisisPartitions,
    alert_record,
    crisis_config,
    tone_counts,
)
from pipeline.transport.topics import partition_for
from tests.crisis_scenario import BRAND, START, mention, typed, typed_windows

CONFIG = CrisisConfig.for_brands({BRAND: 15})
PARTITIONS = 4
HOME = partition_for(BRAND.encode(), PARTITIONS)


class JsonTable(dict[str, Any]):
    """A state table that keeps values as JSON, as the agent's Faust tables do."""

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, orjson.loads(orjson.dumps(value)))


def worker(live: JsonTable | None = None, model: JsonTable | None = None) -> CrisisPartitions:
    return CrisisPartitions(
        CONFIG, partitions=PARTITIONS, brand_names={BRAND: "Acme Mobile"},
        live=JsonTable() if live is None else live, model=JsonTable() if model is None else model,
    )


def replay(partitions: CrisisPartitions, batches: list[list[dict[str, Any]]],
           first_offset: int = 0) -> list[str]:
    """Run records through the steps as the agent does (apply, send, save)."""
    sent = []
    for offset, batch in enumerate(batches, start=first_offset):
        step = partitions.apply(HOME, offset, batch)
        sent += [alert.idempotency_key for alert in step.alerts]
        partitions.save(step)
    return sent


def test_a_crisis_opens_updates_and_resolves_and_the_state_is_in_the_tables() -> None:
    partitions = worker()
    sent = replay(partitions, list(typed_windows()))
    assert [key.rsplit("/", 1)[0] for key in sent] == [sent[0].rsplit("/", 1)[0]] * 3
    assert set(partitions.live) == set(partitions.model) == {BRAND}
    assert partitions.live[BRAND]["offset"] == len(list(typed_windows())) - 1
    assert partitions.open_incidents() == {"crisis": 0, "volume_spike": 0}


def test_after_a_rebalance_the_monitors_come_back_from_the_tables() -> None:
    batches = list(typed_windows())
    reference = replay(worker(), batches)
    live, model = JsonTable(), JsonTable()
    before = replay(worker(live, model), batches[:364])
    restarted = worker(live, model)
    # the last record comes again (at-least-once): skipped by offset, nothing sent twice
    after = replay(restarted, batches[363:], first_offset=363)
    assert before + after == reference


def test_state_is_saved_only_when_asked_and_from_the_monitor_that_counted() -> None:
    partitions = worker()
    step = partitions.apply(HOME, 0, typed([mention(1, START, negative=True)]))
    assert not partitions.live  # the agent sends the step's alerts first
    partitions.forget()  # a rebalance while the alerts were being sent
    partitions.save(step)
    assert partitions.live[BRAND]["offset"] == 0


def test_a_partition_counts_only_the_brands_it_owns() -> None:
    other = next(brand for brand in ("zeta", "nimbus", "orbit", "telvia")
                 if partition_for(brand.encode(), PARTITIONS) != HOME)
    partitions = worker()
    shared = mention(1, START, negative=True) | {"brands": [BRAND, other]}
    step = partitions.apply(HOME, 0, typed([shared]))
    assert step.result.changed_live == {BRAND}
    assert dict(step.tones) == {(BRAND, "negative"): 1}


def test_an_unreadable_time_comes_back_for_the_dead_letters() -> None:
    partitions = worker()
    broken = mention(1, START, negative=False) | {"created_at": "yesterday"}
    step = partitions.apply(HOME, 0, typed([broken, mention(2, START, negative=False)]))
    assert [(m.id, error.reason) for m, error in step.unreadable] == [
        (broken["id"], "bad_timestamp")]
    assert (step.result.refused, step.result.counted) == (1, 1)


def test_tones_count_each_brand_once_and_unscored_mentions_too() -> None:
    mentions = [
        ScoredMention(id="1", text="", created_at="", brands=["acme", "acme"],
                      sentiment=Sentiment("negative", {})),
        ScoredMention(id="2", text="", created_at="", brands=["acme", "zeta"], sentiment=None,
                      sentiment_error="Timeout"),
        ScoredMention(id="3", text="", created_at="", brands=[],
                      sentiment=Sentiment("positive", {})),
    ]
    assert tone_counts(mentions, owns=lambda brand: True) == {
        ("acme", "negative"): 1, ("acme", "unscored"): 1, ("zeta", "unscored"): 1}


def test_an_alert_is_keyed_by_brand_with_its_idempotency_key() -> None:
    partitions = worker()
    alerts = []
    for offset, batch in enumerate(typed_windows()):
        alerts += partitions.apply(HOME, offset, batch).alerts
    assert [alert.status for alert in alerts] == [OPENED, UPDATED, RESOLVED]
    key, value, headers = alert_record(alerts[0])
    assert key == BRAND.encode()
    assert orjson.loads(value)["idempotency_key"] == alerts[0].idempotency_key
    assert headers == {"idempotency-key": alerts[0].idempotency_key.encode()}


def test_the_configuration_takes_the_window_from_settings_and_minimums_from_rules() -> None:
    rules = [BrandRule(id=BRAND, name="Acme Mobile", query="acme", min_crisis_volume=15),
             BrandRule(id="zeta", name="Zeta", query="zeta")]
    config = crisis_config(Settings(crisis_window_s=600, crisis_lateness_s=60), rules)
    assert config.window.total_seconds() == 600 and config.lateness.total_seconds() == 60
    assert config.incidents.min_negative_for(BRAND) == 15
    assert "zeta" not in config.incidents.brand_min_negative


def test_a_redelivered_record_is_not_counted_in_the_tones_again() -> None:
    partitions = worker()
    first, second = list(typed_windows())[:2]
    counted = partitions.apply(HOME, 0, first)
    partitions.save(counted)
    assert sum(counted.tones.values()) == len(first)
    again = partitions.apply(HOME, 0, first)  # the same offset: a redelivery
    assert not again.tones and again.result.skipped == len(first)
    assert sum(partitions.apply(HOME, 1, second).tones.values()) == len(second)
