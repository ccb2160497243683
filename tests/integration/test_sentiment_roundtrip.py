"""Sentiment agent on the real broker: unique batches in, scored batches out by brand."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from pipeline.config import Settings
from pipeline.stages.sentiment.bundled import DEFAULT_MODEL_DIR
from pipeline.stages.sentiment.carried import CARRIED_KEY, CarryingTokenizer
from pipeline.transport.topics import decode_batch, encode_batch, partition_for
from tests.integration.conftest import consume_until, produce

pytestmark = pytest.mark.integration


def mention(mention_id: str, text: str, brands: list[str],
            duplicate_of: str | None = None) -> dict[str, Any]:
    return {
        "id": mention_id, "text": text, "brands": brands, "duplicate_of": duplicate_of,
        "created_at": "2026-11-23T10:00:00+00:00", "source": "test",
        "author": {"id": "a1", "handle": "someone", "followers": 10},
    }


def test_unique_batches_are_scored_and_routed_by_brand(
    pipeline_settings: Settings, start_worker: Any,
) -> None:
    worker = start_worker(pipeline_settings, "sentiment", PIPELINE_SENTIMENT_MAX_WAIT_MS="5")
    first = [
        mention("m1", "Worst customer service ever, I want my money back", ["acme"]),
        mention("m2", "J'adore mon nouveau téléphone, merci !", ["acme", "globex"]),
        mention("m3", "", ["globex"]),
        mention("m4", "The store opens at 9am.", []),
    ]
    copies = [
        # copies of m1: one in the same record as another mention, one in a later record
        mention("c1", "RT @x: Worst customer service ever, I want my money back", ["acme"],
                duplicate_of="m1"),
    ]
    # as the ingest stage writes them: m2 and m4 come with their token ids, m1 and m3 without
    carrying = CarryingTokenizer(DEFAULT_MODEL_DIR, pipeline_settings.sentiment_max_tokens)
    for carried in (first[1], first[3]):
        carried[CARRIED_KEY] = carrying.wire([carried["text"]])[0]
    later = [mention("c2", "worst customer service EVER i want my money back", ["acme"],
                     duplicate_of="m1")]

    def seen(records: list[Any]) -> Counter[str]:
        return Counter(m["id"] for r in records for m in decode_batch(r.value))

    # the later copy is sent once its first copy is scored: records in flight at the same
    # time may be scored in any order, and a copy that overtakes its original is scored
    produce(pipeline_settings, [encode_batch(first + copies)],
            topic=pipeline_settings.topic("unique"))
    consume_until(pipeline_settings, pipeline_settings.topic("scored"),
                  lambda rs: "m1" in seen(rs), timeout_s=90)
    produce(pipeline_settings, [encode_batch(later)], topic=pipeline_settings.topic("unique"))
    records = consume_until(
        pipeline_settings, pipeline_settings.topic("scored"),
        lambda rs: set(seen(rs)) >= {"m1", "m2", "m3", "m4", "c1", "c2"}, timeout_s=90,
    )
    by_id: dict[str, dict[str, Any]] = {}
    where: dict[str, set[int]] = {}
    for record in records:
        for item in decode_batch(record.value):
            by_id[item["id"]] = item
            where.setdefault(item["id"], set()).add(record.partition)
    assert set(by_id) >= {"m1", "m2", "m3", "m4", "c1", "c2"}, worker.log()[-2000:]

    assert by_id["m1"]["sentiment"]["label"] == "negative"
    assert by_id["m2"]["sentiment"]["label"] == "positive"
    assert by_id["m3"]["sentiment"]["label"] == "neutral"  # nothing to read
    # a mention naming several brands carries a label per brand (these ids have no listening
    # query here, so each keeps the mention's label); one naming a single brand has none
    assert {b: r["label"] for b, r in by_id["m2"]["sentiment_by_brand"].items()} == {
        "acme": "positive", "globex": "positive"}
    assert "sentiment_by_brand" not in by_id["m1"]
    assert sum(by_id["m4"]["sentiment"]["scores"].values()) == pytest.approx(1.0, abs=1e-3)
    # copies inherit their first copy's result instead of a model call
    for copy_id in ("c1", "c2"):
        assert by_id[copy_id]["sentiment"]["inherited"] is True
        assert by_id[copy_id]["sentiment"]["scores"] == by_id["m1"]["sentiment"]["scores"]
    # the reply verdict rides with the scores; copies are answered at their first copy
    assert {m: by_id[m]["needs_reply"] for m in ("m1", "m3", "m4", "c1", "c2")} == {
        "m1": "complaint", "m3": None, "m4": None, "c1": None, "c2": None}
    # one copy per brand partition: the crisis agent owns a brand on exactly one partition
    partitions = pipeline_settings.partitions
    assert where["m1"] == {partition_for(b"acme", partitions)}
    assert where["m2"] == {partition_for(b"acme", partitions),
                           partition_for(b"globex", partitions)}
    assert seen(records)["m2"] == len(where["m2"])
    assert not any(CARRIED_KEY in item for item in by_id.values())  # nothing downstream reads them

    metrics = worker.metrics_text()
    assert "mentions_sentiment_skipped_total 2.0" in metrics
    assert 'mentions_sentiment_inputs_total{ids="carried"} 2.0' in metrics
    assert 'mentions_sentiment_inputs_total{ids="tokenised"} 2.0' in metrics
    assert 'mentions_stage_out_total{stage="sentiment"} 6.0' in metrics
