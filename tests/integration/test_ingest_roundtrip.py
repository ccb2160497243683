"""Mentions through a real Faust worker on the real broker: valid ones tagged, bad ones
dead-lettered with their reason, and the counters on /metrics agree."""

import random
from collections.abc import Callable

import orjson
import pytest
from kafka.admin import KafkaAdminClient

from benchmarks.pipeline import committed
from pipeline.config import Settings
from pipeline.transport.connection import kafka_client_options
from pipeline.transport.topics import decode_batch
from tests.integration.conftest import RunningWorker, consume_until, produce

pytestmark = pytest.mark.integration


def mention(number: int, text: str) -> bytes:
    return mention_with_id(f"m{number}", text)


def mention_with_id(mention_id: str, text: str) -> bytes:
    return orjson.dumps({
        "id": mention_id, "text": text, "created_at": "2026-11-22T10:00:00Z",
        "source": "twitter", "author": {"id": f"u-{mention_id}", "followers": 10},
    })


def test_ingest_tags_forwards_and_dead_letters(
    pipeline_settings: Settings, start_worker: Callable[..., RunningWorker],
) -> None:
    worker = start_worker(pipeline_settings, "ingest")
    valid = [mention(i, f"Acme Mobile sin cobertura {i}") for i in range(40)]
    valid += [mention(100 + i, f"Banco Nimbus me cobra {i}") for i in range(10)]
    unmatched = [mention(200, "buenos días")]
    invalid = [b"not json", b'{"id": "x"}', b"\xff\xfe", b"[]"]
    produce(pipeline_settings, valid + unmatched + invalid)

    routed = consume_until(
        pipeline_settings, pipeline_settings.topic("routed"),
        lambda records: sum(len(decode_batch(r.value)) for r in records) >= len(valid),
    )
    mentions = [m for record in routed for m in decode_batch(record.value)]
    assert sorted(m["id"] for m in mentions) == sorted(
        [f"m{i}" for i in range(40)] + [f"m{100 + i}" for i in range(10)]
    )
    brands = {m["id"]: m["brands"] for m in mentions}
    assert brands["m3"] == ["acme-mobile"] and brands["m105"] == ["nimbus-bank"]

    dead = consume_until(
        pipeline_settings, pipeline_settings.topic("deadletter"),
        lambda records: len(records) >= len(invalid),
    )
    reasons = sorted(orjson.loads(record.value)["reason"] for record in dead)
    assert reasons == ["invalid_utf8", "missing_field", "not_an_object", "not_json"]

    metrics = worker.metrics_text()
    assert 'mentions_stage_in_total{stage="ingest"} 55.0' in metrics
    assert 'mentions_stage_out_total{stage="ingest"} 50.0' in metrics
    assert "mentions_unmatched_total 1.0" in metrics
    assert 'mentions_brand_volume_total{brand="acme-mobile"} 40.0' in metrics
    assert 'mentions_deadlettered_total{reason="not_json",stage="ingest"} 1.0' in metrics

    # every batch was committed once the broker had its output: a restart replays nothing
    worker.process.terminate()
    worker.process.wait(timeout=60)
    admin = KafkaAdminClient(**kafka_client_options(pipeline_settings))
    try:
        raw_committed = committed(
            admin, f"{pipeline_settings.app_id}-ingest", pipeline_settings.topic("raw"),
        )
    finally:
        admin.close()
    assert raw_committed == len(valid + unmatched + invalid)


def test_dedup_marks_copies_and_survives_a_worker_restart(
    pipeline_settings: Settings, start_worker: Callable[..., RunningWorker],
) -> None:
    worker = start_worker(pipeline_settings, "ingest,dedup")
    original = "Acme Mobile lleva tres horas sin servicio en todo Madrid, vergonzoso"

    def unique_mentions(records: list) -> list[dict]:
        return [m for record in records for m in decode_batch(record.value)]

    # the raw topic is keyed by mention id, so records on different partitions have no order:
    # the originals go first and must be through before their copies are sent
    produce(pipeline_settings, [
        mention(1, original),
        mention(4, "Banco Nimbus abre oficinas nuevas en Lisboa la semana que viene"),
    ])
    consume_until(
        pipeline_settings, pipeline_settings.topic("unique"),
        lambda records: len(unique_mentions(records)) >= 2,
    )
    produce(pipeline_settings, [
        mention(2, f"RT @ana: {original}"),
        mention(3, original.replace("tres", "cuatro")),
    ])
    first = consume_until(
        pipeline_settings, pipeline_settings.topic("unique"),
        lambda records: len(unique_mentions(records)) >= 4,
    )
    verdicts = {m["id"]: (m["duplicate_of"], m["duplicate_kind"]) for m in unique_mentions(first)}
    assert verdicts == {
        "m1": (None, "unique"), "m2": ("m1", "exact"), "m3": ("m1", "near"),
        "m4": (None, "unique"),
    }
    assert 'mentions_duplicates_total{kind="exact"} 1.0' in worker.metrics_text()

    # a new worker rebuilds the dedup tables from their changelogs
    worker.process.terminate()
    worker.process.wait(timeout=30)
    start_worker(pipeline_settings, "ingest,dedup")
    produce(pipeline_settings, [mention(5, f"{original} 😡😡")])
    after = consume_until(
        pipeline_settings, pipeline_settings.topic("unique"),
        lambda records: any(m["id"] == "m5" for m in unique_mentions(records)),
        timeout_s=90,
    )
    fifth = next(m for m in unique_mentions(after) if m["id"] == "m5")
    assert fifth["duplicate_of"] == "m1"
    assert fifth["copy_count"] == 4


def test_dedup_takes_routed_records_of_every_shape(
    pipeline_settings: Settings, start_worker: Callable[..., RunningWorker],
) -> None:
    """The usual micro-batch is marked without decoding it whole; any other shape is decoded
    whole (a key of its own), and a record or mention that is not one is dead-lettered with
    its reason (not a batch; an integer id), and none of them stops the agent."""
    worker = start_worker(pipeline_settings, "dedup")
    text = "Acme Mobile lleva tres horas sin servicio en todo Madrid, vergonzoso"
    at = {"created_at": "2026-11-22T10:00:00+00:00", "ingested_at": 1_795_000_000.5}
    produce(pipeline_settings, [
        b"[{oops",
        orjson.dumps([{"id": 7, "text": f"{text} otra vez", **at}]),
        orjson.dumps([{"id": "m7", "text": text, **at, "extra": [1, "x"]}]),
        orjson.dumps([{"id": "m8", "text": f"RT @ana: {text}", **at}]),
    ], topic=pipeline_settings.topic("routed"), partition=0)  # copies meet on one partition
    unique = [m for record in consume_until(
        pipeline_settings, pipeline_settings.topic("unique"),
        lambda records: sum(len(decode_batch(r.value)) for r in records) >= 2,
    ) for m in decode_batch(record.value)]
    assert sorted(unique, key=lambda m: str(m["id"])) == [
        {"id": "m7", "text": text, **at, "extra": [1, "x"],
         "duplicate_of": None, "duplicate_kind": "unique", "copy_count": 1},
        {"id": "m8", "text": f"RT @ana: {text}", **at,
         "duplicate_of": "m7", "duplicate_kind": "exact", "copy_count": 2,
         "duplicate_similarity": 1.0},
    ]
    dead = consume_until(
        pipeline_settings, pipeline_settings.topic("deadletter"),
        lambda records: len(records) >= 2,
    )
    letters = sorted((orjson.loads(record.value) for record in dead),
                     key=lambda letter: str(letter["reason"]))
    assert [letter["reason"] for letter in letters] == ["bad_value", "wrong_type"]
    assert letters[0]["original"] == "[{oops"
    assert '"id": 7' in letters[1]["original"] or '"id":7' in letters[1]["original"]
    metrics = worker.metrics_text()
    assert 'mentions_deadlettered_total{reason="bad_value",stage="dedup"} 1.0' in metrics
    assert 'mentions_deadlettered_total{reason="wrong_type",stage="dedup"} 1.0' in metrics


def test_dedup_drains_a_backlog_with_copies_and_remembers_it_after_a_restart(
    pipeline_settings: Settings, start_worker: Callable[..., RunningWorker],
) -> None:
    # a backlog already waiting when the worker starts: 1,000 conversations over three
    # brands (so several routed partitions), each sent as the original, a retweet and a copy
    # with another tracking link (exact copies after normalisation): 3,000 mentions
    rng = random.Random(4)
    syllables = ["ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "ze", "po", "qu", "fe"]
    brands = ["Acme Mobile", "Banco Nimbus", "Telvia"]
    originals = {
        f"c{n}": f"{brands[n % 3]} " + " ".join(
            "".join(rng.choice(syllables) for _ in range(3)) for _ in range(9))
        for n in range(1000)
    }
    backlog = []
    for conversation, text in originals.items():
        backlog += [
            mention_with_id(f"{conversation}-a", text),
            mention_with_id(f"{conversation}-b", f"RT @fan: {text}"),
            mention_with_id(f"{conversation}-c", f"{text} https://t.co/x?utm={conversation}"),
        ]
    rng.shuffle(backlog)
    produce(pipeline_settings, backlog)
    worker = start_worker(pipeline_settings, "ingest,dedup")

    def unique_mentions(records: list) -> dict[str, dict]:
        # at-least-once: a redelivered mention may appear twice, with the same verdict
        return {m["id"]: m for record in records for m in decode_batch(record.value)}

    drained = unique_mentions(consume_until(
        pipeline_settings, pipeline_settings.topic("unique"),
        lambda records: len(unique_mentions(records)) >= len(backlog), timeout_s=120,
    ))
    assert len(drained) == len(backlog)
    first_of = {}
    for conversation in originals:
        copies = [drained[f"{conversation}-{suffix}"] for suffix in "abc"]
        firsts = [m["id"] for m in copies if m["duplicate_of"] is None]
        assert len(firsts) == 1, copies
        first_of[conversation] = firsts[0]
        assert sorted(m["duplicate_of"] or m["id"] for m in copies) == [firsts[0]] * 3
    assert f'mentions_duplicates_total{{kind="exact"}} {2.0 * len(originals)}' in (
        worker.metrics_text())

    # a new worker rebuilds the journal from the changelog: a fourth copy of each of 50
    # conversations is a copy of the first one, counted as the fourth
    worker.process.terminate()
    worker.process.wait(timeout=30)
    start_worker(pipeline_settings, "ingest,dedup")
    later = list(originals)[:50]
    produce(pipeline_settings, [mention_with_id(f"{c}-d", f"{originals[c]} 😡") for c in later])
    after = unique_mentions(consume_until(
        pipeline_settings, pipeline_settings.topic("unique"),
        lambda records: all(f"{c}-d" in unique_mentions(records) for c in later),
        timeout_s=120,
    ))
    for conversation in later:
        fourth = after[f"{conversation}-d"]
        assert fourth["duplicate_of"] == first_of[conversation]
        assert fourth["copy_count"] == 4
