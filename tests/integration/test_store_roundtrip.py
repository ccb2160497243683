"""Store sink on the real broker: scored batches and crisis alerts in, one row each in an
embedded store.

The worker owns its chDB folder and serves the desk from it (``PIPELINE_DESK_IN_WORKER``), so
the test reads the store through the desk's HTTP API while the worker runs, and through
``mentions store ...`` (a new process) once it stopped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from pipeline.config import Settings
from pipeline.transport.broker import free_port
from pipeline.transport.connection import kafka_client_options
from pipeline.transport.topics import encode_batch, partition_for
from tests.crisis_scenario import BRAND, windows
from tests.integration.conftest import consume_until, produce
from tests.integration.polling import wait_until

pytestmark = pytest.mark.integration

BRANDS = ("acme-mobile", "telvia", "nimbus-bank")
START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def scored_mention(index: int) -> dict[str, Any]:
    brands = [BRANDS[index % 3]] if index % 7 else [BRANDS[0], BRANDS[1]]
    label = ("negative", "neutral", "positive")[index % 3]
    return {
        "id": f"m{index}", "text": f"mention {index} about {' and '.join(brands)}",
        "created_at": (START + timedelta(seconds=index)).isoformat(), "source": "test",
        "author": {"id": f"a{index % 11}", "handle": f"author{index % 11}", "followers": index},
        "brands": brands, "lang": "en", "duplicate_of": None, "duplicate_kind": "unique",
        "copy_count": 1,
        "sentiment": {"label": label, "scores": {"negative": 0.2, "neutral": 0.3,
                                                 "positive": 0.5}},
    }


def scored_records(mentions: list[dict[str, Any]], partitions: int,
                   per_record: int = 25) -> list[tuple[int, bytes]]:
    """Micro-batch records as the sentiment stage sends them: once per brand partition."""
    by_partition: dict[int, list[dict[str, Any]]] = {}
    for mention in mentions:
        for partition in {partition_for(brand.encode(), partitions)
                          for brand in mention["brands"]}:
            by_partition.setdefault(partition, []).append(mention)
    return [(partition, encode_batch(items[start:start + per_record]))
            for partition, items in by_partition.items()
            for start in range(0, len(items), per_record)]


def uncommitted(settings: Settings, group: str, topic: str) -> int:
    from kafka import KafkaConsumer
    from kafka.admin import KafkaAdminClient

    from pipeline.transport.topics import uncommitted_by_partition

    admin = KafkaAdminClient(**kafka_client_options(settings))
    consumer = KafkaConsumer(**kafka_client_options(settings))
    try:
        return sum(uncommitted_by_partition(admin, consumer, group, topic).values())
    finally:
        admin.close()
        consumer.close()


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def store_command(store_url: str, *args: str, **env: str) -> str:
    completed = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "store", *args],
        env={**os.environ, "PIPELINE_STORE_URL": store_url, **env}, capture_output=True,
        text=True, timeout=120, check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


def echoes_frontier(store_url: str) -> datetime:
    """The leaders' echoes table's frontier, read by a process of its own (chDB: one folder)."""
    script = ("from pipeline.config import Settings; from pipeline.store import echoes; "
              "from pipeline.store.client import ListeningStore; "
              f"store = ListeningStore.open(Settings(store_url={store_url!r})); "
              "print(echoes.frontier(store.query, store.location.database).isoformat())")
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                               timeout=120, check=False)
    assert completed.returncode == 0, completed.stderr
    return datetime.fromisoformat(completed.stdout.strip())


def test_every_scored_mention_is_stored_once_even_when_replayed(
    pipeline_settings: Settings, start_worker: Any, tmp_path: Path,
) -> None:
    store_url = f"chdb://{tmp_path / 'store'}"
    desk_port = free_port()
    worker = start_worker(
        pipeline_settings, "store", PIPELINE_STORE_URL=store_url,
        PIPELINE_DESK_IN_WORKER="true", PIPELINE_DESK_PORT=str(desk_port),
        PIPELINE_STORE_BATCH_WAIT_S="0.2", PIPELINE_STORE_SETTLE_S="0.5",
    )
    mentions = [scored_mention(index) for index in range(300)]
    unstorable = {**scored_mention(999), "created_at": "last tuesday"}
    records = scored_records([*mentions, unstorable], pipeline_settings.partitions)
    scored_topic = pipeline_settings.topic("scored")
    # the whole topic twice: a redelivery after a crash looks exactly like this
    for _ in range(2):
        for partition, value in records:
            produce(pipeline_settings, [value], topic=scored_topic, partition=partition)
    produce(pipeline_settings, [b"not a micro-batch"], topic=scored_topic, partition=0)

    group = f"{pipeline_settings.app_id}-store"
    wait_until(lambda: uncommitted(pipeline_settings, group, scored_topic) == 0,
               "the sink to commit the whole scored topic", 90)

    base = f"http://127.0.0.1:{desk_port}/api/mentions?limit=70"
    pages, cursor = [], None
    while True:
        page = get_json(base + (f"&cursor={cursor}" if cursor else ""))
        pages.append([mention["id"] for mention in page["mentions"]])
        cursor = page["next"]
        if cursor is None:
            break
    stored_ids = [mention_id for page in pages for mention_id in page]
    assert sorted(stored_ids) == sorted(m["id"] for m in mentions), worker.log()[-3000:]
    # newest first: ids were numbered in event-time order
    assert stored_ids == [f"m{index}" for index in range(299, -1, -1)]
    as_emitted = get_json(base.replace("limit=70", "limit=1&brand=telvia"))["mentions"][0]
    assert as_emitted == next(m for m in reversed(mentions) if "telvia" in m["brands"])

    dead = consume_until(pipeline_settings, pipeline_settings.topic("deadletter"),
                         lambda rs: len(rs) >= 3, timeout_s=30)
    reasons = sorted(orjson.loads(record.value)["reason"] for record in dead)
    # the unstorable mention came twice (two replays), the broken record once
    assert reasons == ["bad_timestamp", "bad_timestamp", "bad_value"]
    metrics = worker.metrics_text()
    inserted = next(float(line.split()[-1]) for line in metrics.splitlines()
                    if line.startswith('mentions_store_rows_total{table="brand_mentions"}'))
    # a row per mention and brand; a mention comes once per brand partition, twice over:
    # copies that arrive in one batch are one row already, later ones are inserted again
    rows = sum(len(mention["brands"]) for mention in mentions)
    deliveries = sum(len(mention["brands"]) * len({
        partition_for(brand.encode(), pipeline_settings.partitions)
        for brand in mention["brands"]}) for mention in mentions)
    assert rows <= inserted <= 2 * deliveries

    worker.process.terminate()
    worker.process.wait(timeout=30)
    assert store_command(store_url, "count").strip() == str(len(mentions))
    # the sink settled the leaders' echoes table: every hour before the current one is in it
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    assert hour - timedelta(hours=1) <= echoes_frontier(store_url) <= hour
    processed = tmp_path / "processed.jsonl"
    processed.write_bytes(b"".join(orjson.dumps(mention) + b"\n" for mention in mentions))
    assert store_command(store_url, "load", "--input", str(processed)).startswith(
        "0 mentions added (300 lines read, 300 stored in all, 0 rejected)")


def test_a_store_that_is_down_holds_the_offsets_and_is_retried(
    pipeline_settings: Settings, start_worker: Any,
) -> None:
    closed_port = free_port()
    worker = start_worker(
        pipeline_settings, "store", wait_ready=False,
        PIPELINE_STORE_URL=f"http://127.0.0.1:{closed_port}/mentions",
        PIPELINE_STORE_TIMEOUT_S="1", PIPELINE_STORE_RETRY_MAX_S="1",
        PIPELINE_STORE_BATCH_WAIT_S="0.2",
    )
    scored_topic = pipeline_settings.topic("scored")
    records = scored_records([scored_mention(index) for index in range(20)],
                             pipeline_settings.partitions)
    for partition, value in records:
        produce(pipeline_settings, [value], topic=scored_topic, partition=partition)

    def retried() -> bool:
        try:
            metrics = worker.metrics_text()
        except OSError:
            return False
        return any(line.startswith('mentions_store_errors_total{reason="unavailable"}')
                   and float(line.split()[-1]) >= 3 for line in metrics.splitlines())

    wait_until(retried, "the sink to retry the unreachable store", 90)
    assert worker.process.poll() is None, worker.log()[-3000:]
    with pytest.raises(urllib.error.HTTPError) as not_ready:
        urllib.request.urlopen(f"http://127.0.0.1:{worker.web_port}/readyz", timeout=5)
    assert json.loads(not_ready.value.read())["checks"]["store_reachable"] is False
    # nothing was stored, so nothing was committed: every record waits for the store
    assert uncommitted(pipeline_settings, f"{pipeline_settings.app_id}-store",
                       scored_topic) == len(records)
    assert worker.log().count("retrying with backoff until it is back") == 1


def test_a_real_crisis_run_leaves_its_alerts_in_the_store_once(
    pipeline_settings: Settings, start_worker: Any, tmp_path: Path,
) -> None:
    store_url = f"chdb://{tmp_path / 'store'}"
    desk_port = free_port()
    # the scenario's crisis is in March 2026: a retention of ten years keeps it
    retention = {"PIPELINE_STORE_RETENTION_DAYS": "3650"}
    worker = start_worker(
        pipeline_settings, "crisis,store", PIPELINE_STORE_URL=store_url,
        PIPELINE_DESK_IN_WORKER="true", PIPELINE_DESK_PORT=str(desk_port),
        PIPELINE_STORE_BATCH_WAIT_S="0.2", **retention,
    )
    scored_topic, alerts_topic = pipeline_settings.topic("scored"), pipeline_settings.alerts_topic
    produce(pipeline_settings, [encode_batch(batch) for batch in windows()], topic=scored_topic,
            partition=partition_for(BRAND.encode(), pipeline_settings.partitions))
    records = consume_until(pipeline_settings, alerts_topic, lambda rs: any(
        orjson.loads(r.value)["status"] == "resolved" for r in rs), timeout_s=120)
    alerts = [orjson.loads(record.value) for record in records]
    assert [alert["status"] for alert in alerts] == ["open", "update", "resolved"]
    # every alert delivered again, as after a crash, and a record that is not a whole alert
    produce(pipeline_settings, [record.value for record in records], topic=alerts_topic,
            partition=records[0].partition)
    produce(pipeline_settings, [b'{"incident_id": "x", "idempotency_key": "x/x/0"}'],
            topic=alerts_topic, partition=0)

    group = f"{pipeline_settings.app_id}-store"
    wait_until(lambda: uncommitted(pipeline_settings, group, alerts_topic) == 0
               and uncommitted(pipeline_settings, group, scored_topic) == 0,
               "the sink to commit the alerts and scored topics", 120)
    base = f"http://127.0.0.1:{desk_port}/api/incidents"
    listed = get_json(f"{base}?since=2026-03-01&until=2026-03-05")
    incident = {**alerts[-1], "opened_at": alerts[0]["window_end"],
                "updated_at": alerts[-1]["window_end"], "resolved_at": alerts[-1]["window_end"],
                "updates": 3}
    assert listed == {"incidents": [incident], "next": None}, worker.log()[-3000:]
    assert get_json(f"{base}/{alerts[0]['incident_id']}") == {"incident": incident,
                                                              "history": alerts}
    with pytest.raises(urllib.error.HTTPError) as unknown:
        urllib.request.urlopen(f"{base}/{BRAND}-19990101T0000Z", timeout=10)
    assert unknown.value.code == 404

    dead = consume_until(pipeline_settings, pipeline_settings.topic("deadletter"),
                         lambda rs: len(rs) >= 1, timeout_s=30)
    assert [(letter["reason"], letter["source_topic"], letter["stage"]) for letter in
            (orjson.loads(record.value) for record in dead)] == [
        ("missing_field", alerts_topic, "store")]
    inserted = next(float(line.split()[-1]) for line in worker.metrics_text().splitlines()
                    if line.startswith('mentions_store_rows_total{table="incident_alerts"}'))
    # each alert once, and again unless its redelivery came in the same batch
    assert 3 <= inserted <= 6

    worker.process.terminate()
    worker.process.wait(timeout=30)
    exported = tmp_path / "alerts.jsonl"
    exported.write_bytes(b"".join(record.value + b"\n" for record in records))
    mentions = sum(len(batch) for batch in windows())
    assert store_command(store_url, "load", "--input", str(exported), **retention).strip() == (
        f"0 mentions added (3 lines read, {mentions} stored in all, 0 rejected); "
        "0 alerts added (3 stored in all)")
