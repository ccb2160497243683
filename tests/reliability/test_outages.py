"""Broker and store outages: workers wait, say so once, and carry on by themselves.

The broker sits behind a TCP relay (:mod:`tests.reliability.relay`) that the test cuts and
restores: the broker keeps its state, as a real Kafka cluster does across a network outage.
(Restarting the embedded broker instead loses every topic, record and committed offset: it
keeps them in memory only. That loss is the broker's, not the workers'; see README.)
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest

from pipeline.config import Settings, load_settings
from pipeline.demo import wait_until_ready
from pipeline.transport.broker import PRODUCER_BATCH_BYTES, EmbeddedBroker
from pipeline.transport.topics import decode_batch, ensure_topics
from tests.integration.conftest import RunningWorker, consume_until, produce
from tests.integration.polling import wait_until
from tests.reliability.relay import Relay

pytestmark = pytest.mark.integration

BROKER_DOWN_LINE = "broker not reachable"


@pytest.fixture
def relayed_broker(tmp_path: Path) -> Iterator[tuple[EmbeddedBroker, Relay]]:
    """A broker of its own, clients reach it only through a relay (started cut)."""
    relay_holder = Relay(target_port=0)
    broker = EmbeddedBroker.start(log_path=tmp_path / "tansu.log",
                                  advertised_port=relay_holder.port)
    relay_holder.target_port = broker.port
    relay_holder.start(listening=False)
    try:
        yield broker, relay_holder
    finally:
        relay_holder.stop()
        broker.stop()


def settings_for(bootstrap: str) -> Settings:
    unique = uuid.uuid4().hex[:10]
    return load_settings(
        broker=bootstrap, app_id=f"out-{unique}", topic_prefix=f"o{unique}",
        alerts_topic=f"o{unique}.alerts", partitions=2, group_session_timeout_s=6.0,
        producer_batch_bytes=PRODUCER_BATCH_BYTES,
    )


def mentions(first: int, count: int) -> list[bytes]:
    return [orjson.dumps({
        "id": f"m{n}", "text": f"Acme Mobile sin señal otra vez, día {n}",
        "created_at": "2026-11-22T10:00:00Z", "source": "twitter", "author": {"id": f"u{n}"},
    }) for n in range(first, first + count)]


def unique_ids(settings: Settings) -> set[str]:
    records = consume_until(settings, settings.topic("unique"), lambda _: False, timeout_s=2)
    return {m["id"] for record in records for m in decode_batch(record.value)}


def test_workers_wait_for_a_broker_that_is_down_at_start_and_then_gone_a_while(
    relayed_broker: tuple[EmbeddedBroker, Relay],
    start_worker: Callable[..., RunningWorker],
) -> None:
    _broker, relay = relayed_broker
    settings = settings_for(f"127.0.0.1:{relay.port}")
    worker = start_worker(settings, "ingest,dedup", wait_ready=False)
    wait_until(lambda: BROKER_DOWN_LINE in worker.log(), "the worker to say the broker is down",
               60)
    time.sleep(5)  # a while of retrying: the worker must still be there after it
    assert worker.process.poll() is None, worker.log()[-3000:]

    down_since = time.monotonic()
    relay.restore()
    assert wait_until_ready(f"http://127.0.0.1:{worker.web_port}/readyz", worker.process, 120), (
        worker.log()[-3000:])
    ready_after_s = time.monotonic() - down_since
    ensure_topics(settings)
    produce(settings, mentions(0, 300))
    wait_until(lambda: len(unique_ids(settings)) >= 100, "some mentions through", 60)

    # gone mid-stream for longer than the group session: everything in flight must come out
    relay.cut()
    cut_at = time.monotonic()
    time.sleep(15)
    relay.restore()
    wait_until(lambda: unique_ids(settings) >= {f"m{n}" for n in range(300)},
               "every mention after the outage", 120)
    produce(settings, mentions(300, 100))
    wait_until(lambda: unique_ids(settings) >= {f"m{n}" for n in range(400)},
               "mentions sent after the outage", 120)
    recovered_after_s = time.monotonic() - cut_at - 15
    dead = consume_until(settings, settings.topic("deadletter"), lambda _: False, timeout_s=2)
    assert dead == [], [orjson.loads(record.value)["reason"] for record in dead]
    log = worker.log()
    assert worker.process.poll() is None, log[-3000:]
    assert log.count(BROKER_DOWN_LINE) == 1, log[-3000:]
    assert "Crashed reason" not in log, log[-3000:]
    print(f"\nready {ready_after_s:.1f}s after the broker came up; all through "
          f"{recovered_after_s:.1f}s after a 15 s outage")


def hold_store(store_url: str) -> subprocess.Popen[bytes]:
    """A process that opens the embedded store and keeps it (the store is down for others)."""
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys; from pipeline.config import load_settings; "
         "from pipeline.store.client import ListeningStore; "
         f"s = ListeningStore.open(load_settings(store_url={store_url!r})); "
         "print('held', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
    return holder


def test_the_store_sink_waits_out_a_store_outage_and_stores_everything_once(
    pipeline_settings: Settings, start_worker: Callable[..., RunningWorker], tmp_path: Path,
) -> None:
    from tests.integration.test_store_roundtrip import scored_mention, scored_records
    from tests.reliability.store_probe import probe_in_subprocess

    store_url = f"chdb://{tmp_path / 'store'}"
    holder = hold_store(store_url)
    try:
        worker = start_worker(pipeline_settings, "store", wait_ready=False,
                              PIPELINE_STORE_URL=store_url, PIPELINE_STORE_RETRY_MAX_S="1",
                              PIPELINE_STORE_BATCH_WAIT_S="0.2")
        sent = [scored_mention(index) for index in range(200)]
        for partition, value in scored_records(sent, pipeline_settings.partitions):
            produce(pipeline_settings, [value], topic=pipeline_settings.topic("scored"),
                    partition=partition)
        wait_until(lambda: "retrying with backoff until it is back" in worker.log(),
                   "the sink to say the store is down", 90)
        time.sleep(5)  # retries while it stays down
    finally:
        holder.communicate(timeout=30)  # the store is back
    back_at = time.monotonic()
    wait_until(lambda: "store: reachable again" in worker.log(), "the sink to reconnect", 90)
    from tests.integration.test_store_roundtrip import uncommitted

    wait_until(lambda: uncommitted(pipeline_settings, f"{pipeline_settings.app_id}-store",
                                   pipeline_settings.topic("scored")) == 0,
               "the sink to store and commit everything", 90)
    caught_up_s = time.monotonic() - back_at
    log = worker.log()
    worker.process.terminate()
    worker.process.wait(timeout=60)
    rows = probe_in_subprocess(store_url)["final_rows"]
    assert sorted({row[0] for row in rows}) == sorted(m["id"] for m in sent)
    assert all(row[2] == 1 for row in rows)
    assert log.count("retrying with backoff until it is back") == 1, log[-3000:]
    print(f"\nstore back: everything stored and committed {caught_up_s:.1f}s later")
