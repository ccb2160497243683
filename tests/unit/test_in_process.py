"""Every stage through the in-process harness: the agents' objects and calls, no broker."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import orjson
import pytest

from pipeline.config import Settings
from pipeline.in_process import InProcessPipeline
from pipeline.records import ScoredMention, wire_dict
from pipeline.stages.alerts.record import OPENED, Alert
from pipeline.stages.crisis import CrisisConfig
from pipeline.stages.crisis_partitions import CrisisPartitions
from pipeline.stages.routing import Router, brand_partition, mention_partition
from pipeline.stages.sentiment.labels import SentimentResult
from pipeline.store.client import ListeningStore
from pipeline.store.queries import BoundQuery
from pipeline.store.rows import RowBatch
from pipeline.transport.topics import decode_batch, encode_batch
from tests.crisis_scenario import BRAND, windows

PARTITIONS = 4
AT = "2026-11-22T10:00:00Z"


class StandInEngine:
    """A sentiment model's two calls: "down" is negative; remembers what it was asked."""

    def __init__(self, *, fails: bool = False) -> None:
        self.fails = fails
        self.asked: list[str] = []

    def encode_carried(self, texts: Sequence[str], carried: Sequence[object] | None = None
                       ) -> list[str]:
        return list(texts)

    def score_packed(self, texts: list[str]) -> list[SentimentResult]:
        if self.fails:
            raise RuntimeError("device lost")
        self.asked += texts
        return [SentimentResult("negative", {"negative": 0.9, "neutral": 0.05, "positive": 0.05})
                if "down" in text else
                SentimentResult("neutral", {"negative": 0.1, "neutral": 0.8, "positive": 0.1})
                for text in texts]


def harness(engine: StandInEngine | None = None, **settings: Any) -> InProcessPipeline:
    # the language detector is the real one: queries may be restricted by language
    return InProcessPipeline.build(
        Settings(**{"partitions": PARTITIONS, "stages": ("ingest", "dedup", "crisis"),
                    **settings}),
        engine=engine)  # type: ignore[arg-type]  # a stand-in with the engine's two calls


def raw(mention_id: str, text: str, created_at: str = AT, **extra: Any) -> bytes:
    return orjson.dumps({"id": mention_id, "text": text, "source": "twitter",
                         "created_at": created_at, "author": {"id": f"u-{mention_id}"},
                         **extra})


def mentions_of(records: dict[int, list[bytes]]) -> dict[int, list[dict[str, Any]]]:
    return {partition: [m for value in values for m in decode_batch(value)]
            for partition, values in records.items()}


def test_ingest_routes_by_brand_and_dead_letters_what_it_refuses() -> None:
    pipeline = harness()
    routed = pipeline.ingest([
        raw("1", "Acme Mobile sin cobertura otra vez"), b"{broken",
        raw("2", "hoy hace sol"), raw("3", "Telvia no funciona en Madrid"),
    ])
    router = Router(pipeline.settings)
    by_partition = mentions_of(routed)
    assert sorted(m["id"] for ms in by_partition.values() for m in ms) == ["1", "3"]
    for partition, mentions in by_partition.items():
        assert all(router.partition(m["text"], m["brands"]) == partition for m in mentions)
    assert [(letter.stage, letter.reason, letter.value) for letter in pipeline.dead_letters] == [
        ("ingest", "not_json", b"{broken")]


def test_ingest_forwards_unmatched_mentions_in_input_order_when_asked() -> None:
    pipeline = harness(forward_unmatched=True, partitions=1)
    routed = pipeline.ingest([raw("1", "hoy hace sol"), raw("2", "Acme Mobile caída"),
                              raw("3", "llueve")])
    assert [m["id"] for m in mentions_of(routed)[0]] == ["1", "2", "3"]


def test_dedup_marks_copies_across_batches_and_keys_unique_by_mention_id() -> None:
    pipeline = harness()
    text = "Acme Mobile lleva tres horas sin servicio en todo Madrid, vergonzoso"
    first = mentions_of(pipeline.dedup(pipeline.ingest([raw("a", text)])))
    later = mentions_of(pipeline.dedup(pipeline.ingest([
        raw("b", f"RT @ana: {text}"), raw("c", f"{text} #AcmeCaida"), raw("a", text)])))
    for partition, mentions in {**first, **later}.items():
        assert all(mention_partition(m["id"], PARTITIONS) == partition for m in mentions)
    verdicts = {m["id"]: (m["duplicate_of"], m["duplicate_kind"], m["copy_count"])
                for ms in later.values() for m in ms}
    # "a" again is a redelivery: its first verdict, not a copy of itself
    assert verdicts == {"b": ("a", "exact", 2), "c": ("a", "near", 3), "a": (None, "unique", 1)}


def test_dedup_takes_an_unusual_record_whole_and_dead_letters_a_broken_one() -> None:
    pipeline = harness()
    text = "Nimbus Bank cobra comisiones nuevas sin avisar a nadie"
    [home] = pipeline.ingest([raw("a", text)]).items()
    pipeline.dedup(dict([home]))
    # another producer's record: verdict keys already there, and one time that does not read
    odd = encode_batch([
        {"id": "b", "text": text, "created_at": AT, "duplicate_of": "zzz", "copy_count": 9},
        {"id": "c", "text": text, "created_at": "yesterday"},
    ])
    unique = mentions_of(pipeline.dedup({home[0]: [odd, b"not a batch"]}))
    assert [(m["id"], m["duplicate_of"], m["copy_count"]) for ms in unique.values()
            for m in ms] == [("b", "a", 2)]
    assert [(letter.stage, letter.reason) for letter in pipeline.dead_letters] == [
        ("dedup", "bad_timestamp"), ("dedup", "bad_value")]


def test_dedup_memory_comes_back_from_its_journal_table() -> None:
    pipeline = harness()
    text = "Orbita Bank deja sin nómina a medio país esta mañana, qué desastre"
    pipeline.dedup(pipeline.ingest([raw("a", text)]))
    pipeline.dedup_partitions.forget()  # a rebalance: memory rebuilt from the table
    again = mentions_of(pipeline.dedup(pipeline.ingest([raw("b", f"RT @x: {text}")])))
    assert [(m["duplicate_of"], m["duplicate_kind"]) for ms in again.values() for m in ms] == [
        ("a", "exact")]


def wire(scored: dict[int, list[ScoredMention]]) -> dict[int, list[dict[str, Any]]]:
    """Scored mentions by partition as the JSON objects the scored topic carries."""
    return {partition: [wire_dict(m) for m in ms] for partition, ms in scored.items()}


def test_sentiment_scores_once_per_conversation_and_sends_to_each_brand() -> None:
    engine = StandInEngine()
    pipeline = harness(engine)
    text = "Acme Mobile y Telvia down otra vez en Madrid, ninguna funciona hoy"
    scored = wire(pipeline.sentiment(pipeline.dedup(pipeline.ingest([
        raw("a", text), raw("b", f"RT @x: {text}")]))))
    assert engine.asked == [text]  # the copy inherits
    expected = {brand_partition("acme-mobile", PARTITIONS), brand_partition("telvia", PARTITIONS)}
    assert set(scored) == expected
    for mentions in scored.values():
        assert [(m["id"], m["sentiment"]["label"], m["sentiment"].get("inherited"))
                for m in mentions] == [("a", "negative", None), ("b", "negative", True)]
        assert all("needs_reply" in m and "sentiment_tokens" not in m for m in mentions)


def test_a_batch_the_model_fails_on_goes_on_unscored() -> None:
    pipeline = harness(StandInEngine(fails=True))
    scored = wire(pipeline.sentiment(pipeline.dedup(pipeline.ingest([
        raw("a", "Acme Mobile caída")]))))
    [mentions] = scored.values()
    assert [(m["sentiment"], m["sentiment_error"]) for m in mentions] == [
        (None, "RuntimeError: device lost")]


@pytest.mark.parametrize("redelivered", [False, True])
def test_crisis_opens_an_incident_and_skips_a_redelivered_record(redelivered: bool) -> None:
    pipeline = harness()
    # the scenario's threshold (its windows are sized for it), on the harness's tables
    pipeline.crisis_partitions = CrisisPartitions(
        CrisisConfig.for_brands({BRAND: 15}), partitions=PARTITIONS, live={}, model={})
    home = brand_partition(BRAND, PARTITIONS)
    alerts = []
    for offset, batch in enumerate(windows()):
        record = encode_batch(batch)
        alerts += pipeline.crisis_record(home, record)
        if redelivered and offset % 50 == 0:
            alerts += pipeline.crisis_record(home, record, offset)  # counted once
    assert [alert.status for alert in alerts][:1] == [OPENED]
    assert len({alert.incident_id for alert in alerts}) == 1
    assert set(pipeline.crisis_partitions.live) == {BRAND}
    if redelivered:
        assert [a.idempotency_key for a in alerts] == [
            a.idempotency_key for a in _undisturbed_alerts()]
    # each alert went to the alerts topic with its key, and was counted once
    assert [(record.topic, record.headers["idempotency-key"]) for record in pipeline.sent] == [
        ("alerts", alert.idempotency_key.encode()) for alert in alerts]
    counted = Counter[str]()
    for delta in pipeline.metric_deltas:
        if not delta.gauge:
            counted[delta.metric] += int(delta.amount)
    assert counted["alerts"] == len(alerts)
    assert counted["brand_mentions"] == sum(len(batch) for batch in windows())


def _undisturbed_alerts() -> list[Any]:
    pipeline = harness()
    pipeline.crisis_partitions = CrisisPartitions(
        CrisisConfig.for_brands({BRAND: 15}), partitions=PARTITIONS, live={}, model={})
    home = brand_partition(BRAND, PARTITIONS)
    return [alert for batch in windows()
            for alert in pipeline.crisis_record(home, encode_batch(batch))]


def test_every_valid_mention_reaches_each_of_its_brand_partitions_once() -> None:
    pipeline = harness(StandInEngine())
    texts = ["Acme Mobile caída", "Telvia y Acme Mobile down", "hoy hace sol",
             "RT @p: Acme Mobile caída", "Lumo Air pierde mi maleta"]
    raws = [raw(str(n), text) for n, text in enumerate(texts)] + [b"[]"]
    scored, _alerts = pipeline.run(raws)
    arrived = sorted((m.id, partition) for partition, ms in scored.items() for m in ms)
    expected = sorted((str(n), brand_partition(brand, PARTITIONS))
                      for n, brands in enumerate([["acme-mobile"], ["acme-mobile", "telvia"], [],
                                                  ["acme-mobile"], ["lumo-air"]])
                      for brand in set(brands))
    assert arrived == sorted(set(expected))
    assert [letter.reason for letter in pipeline.dead_letters] == ["not_an_object"]


def test_ingest_and_dedup_answer_with_their_metric_changes() -> None:
    pipeline = harness()
    text = "Acme Mobile lleva tres horas sin servicio en todo Madrid, vergonzoso"
    unique = pipeline.dedup(pipeline.ingest([raw("a", text), raw("b", f"RT @ana: {text}"),
                                             raw("c", "hoy hace sol")]))
    [brand] = {b for ms in mentions_of(unique).values() for m in ms for b in m["brands"]}
    counted = Counter[tuple[str, tuple[tuple[str, str], ...]]]()
    for delta in pipeline.metric_deltas:
        counted[delta.metric, delta.labels] += int(delta.amount)
    assert counted == {("unmatched", ()): 1, ("brand_volume", (("brand", brand),)): 2,
                       ("duplicates", (("kind", "exact"),)): 1}


def test_the_store_stage_answers_rows_per_brand_and_the_incident_rows_of_the_alerts() -> None:
    pipeline = harness(StandInEngine())
    text = "Acme Mobile y Telvia down otra vez en Madrid, ninguna funciona hoy"
    scored = pipeline.sentiment(pipeline.dedup(pipeline.ingest([
        raw("a", text), raw("b", f"RT @x: {text}"), raw("c", "Acme Mobile va bien")])))
    pipeline.store(scored)
    rows = [orjson.loads(row) for row in pipeline.stored["brand_mentions"]]
    # a row per mention and brand it names (the table keeps one of a redelivered row)
    assert {(row["id"], row["brand"]) for row in rows} == {
        ("a", "acme-mobile"), ("a", "telvia"), ("b", "acme-mobile"), ("b", "telvia"),
        ("c", "acme-mobile")}
    assert {row["id"]: (row["sentiment"], row["duplicate_of"]) for row in rows} == {
        "a": ("negative", ""), "b": ("negative", "a"), "c": ("neutral", "")}
    assert "incident_alerts" not in pipeline.stored and pipeline.dead_letters == []


def crisis_alerts(pipeline: InProcessPipeline) -> list[Alert]:
    """The alerts of the crisis scenario, sent by the harness's crisis stage."""
    pipeline.crisis_partitions = CrisisPartitions(
        CrisisConfig.for_brands({BRAND: 15}), partitions=PARTITIONS, live={}, model={})
    home = brand_partition(BRAND, PARTITIONS)
    return [alert for batch in windows()
            for alert in pipeline.crisis_record(home, encode_batch(batch))]


def test_the_store_stage_keeps_the_alerts_as_incident_rows() -> None:
    pipeline = harness()
    alerts = crisis_alerts(pipeline)
    pipeline.store({})
    assert alerts
    rows = [orjson.loads(row) for row in pipeline.stored["incident_alerts"]]
    assert [row["idempotency_key"] for row in rows] == [a.idempotency_key for a in alerts]


def stored_harness(chdb_store_url: str, database: str,
                   engine: StandInEngine | None = None) -> tuple[InProcessPipeline, ListeningStore]:
    # fixed dates: a retention of ten years keeps them whatever today is
    pipeline = harness(engine, store_url=chdb_store_url, store_retention_days=3650)
    store = ListeningStore.open(pipeline.settings, database=database)
    pipeline.attach_store(store)
    return pipeline, store


def test_the_store_stage_writes_its_rows_into_an_attached_store(chdb_store_url: str) -> None:
    pipeline, store = stored_harness(chdb_store_url, "unit_in_process_write", StandInEngine())
    text = "Acme Mobile y Telvia down otra vez en Madrid, ninguna funciona hoy"
    scored = pipeline.sentiment(pipeline.dedup(pipeline.ingest([
        raw("a", text), raw("b", f"RT @x: {text}"), raw("c", "Acme Mobile va bien")])))
    pipeline.store(scored)
    kept = sorted((row["id"], row["brand"], row["sentiment"], row["original_author"])
                  for row in map(orjson.loads, pipeline.stored["brand_mentions"]))
    held = store.query(BoundQuery(
        f"SELECT id, brand, sentiment, original_author FROM {store.table} FINAL ORDER BY ALL"))
    assert kept == sorted(held) and len(kept) == 5
    assert ("b", "telvia", "negative", "u-a") in kept and pipeline.dead_letters == []


def test_rows_the_store_refuses_become_dead_letters_and_the_rest_go_in(
        chdb_store_url: str) -> None:
    pipeline, store = stored_harness(chdb_store_url, "unit_in_process_refused")
    good = orjson.dumps({"id": "good", "brand": "telvia", "created_at": 1_795_000_000})
    bad = orjson.dumps({"id": "bad", "brand": "telvia", "likes": "many"})
    refused = pipeline.store_rows(RowBatch([good, bad], []), "brand_mentions")
    assert [(letter.stage, letter.reason, letter.value) for letter in pipeline.dead_letters] == [
        ("store", "store_rejected", bad)]
    assert [letter.raw for letter in refused] == [bad]
    assert "likes" in pipeline.dead_letters[0].detail
    assert pipeline.stored["brand_mentions"] == [good] and store.mention_ids() == {"good"}


def test_the_alerts_the_store_stage_writes_are_the_incident_rows_it_keeps(
        chdb_store_url: str) -> None:
    pipeline, store = stored_harness(chdb_store_url, "unit_in_process_alerts")
    alerts = crisis_alerts(pipeline)
    pipeline.store({})
    pipeline.store({})  # the same alerts again, as after a redelivery: still one row each
    keys = [orjson.loads(row)["idempotency_key"] for row in pipeline.stored["incident_alerts"]]
    held = store.query(BoundQuery(
        f"SELECT idempotency_key FROM {store.incident_table} FINAL ORDER BY idempotency_key"))
    assert alerts and keys == 2 * [alert.idempotency_key for alert in alerts]
    assert [key for (key,) in held] == sorted(set(keys))
