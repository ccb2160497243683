"""Mentions through a real Faust worker on the real broker: valid ones tagged, bad ones
dead-lettered with their reason, and the counters on /metrics agree."""

from collections.abc import Callable

import orjson
import pytest

from pipeline.config import Settings
from pipeline.transport.topics import decode_batch
from tests.integration.conftest import RunningWorker, consume_until, produce

pytestmark = pytest.mark.integration


def mention(number: int, text: str) -> bytes:
    return orjson.dumps({
        "id": f"m{number}", "text": text, "created_at": "2026-11-22T10:00:00Z",
        "source": "twitter", "author": {"id": f"u{number}", "followers": 10},
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
    assert 'mentions_deadlettered_total{reason="not_json",stage="ingest"} 1.0' in metrics
