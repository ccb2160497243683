"""Integration fixtures: a real Tansu broker for the session, real worker processes per test.

``PIPELINE_TEST_BROKER=host:port`` points the tests at an existing Kafka instead; otherwise
the session starts the embedded broker on a free port and stops it (by its pid) at the end.
Every test gets its own uuid topic prefix and consumer group, so tests never see each other.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pipeline.config import Settings, load_settings, settings_env
from pipeline.demo import wait_until_ready
from pipeline.transport.broker import PRODUCER_BATCH_BYTES, EmbeddedBroker, free_port
from pipeline.transport.connection import kafka_client_options
from pipeline.transport.topics import ensure_topics


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    given = os.environ.get("PIPELINE_TEST_BROKER")
    if given:
        yield given
        return
    log = tmp_path_factory.mktemp("broker") / "tansu.log"
    broker = EmbeddedBroker.start(log_path=log)
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


@pytest.fixture
def pipeline_settings(kafka_bootstrap: str) -> Settings:
    unique = uuid.uuid4().hex[:10]
    # the embedded broker needs one record per producer batch (pipeline.transport.broker)
    embedded = not os.environ.get("PIPELINE_TEST_BROKER")
    settings = load_settings(
        broker=kafka_bootstrap, app_id=f"test-{unique}", topic_prefix=f"t{unique}",
        alerts_topic=f"t{unique}.alerts", partitions=2,
        **({"producer_batch_bytes": PRODUCER_BATCH_BYTES} if embedded else {}),
    )
    ensure_topics(settings)
    return settings


@dataclass
class RunningWorker:
    process: subprocess.Popen[bytes]
    web_port: int
    log_path: Path

    def metrics_text(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}/metrics", timeout=5) as r:
            return r.read().decode()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout_s: float = 120) -> None:
        """Wait until the worker's ``/readyz`` answers ready; fail the test if it does not."""
        if not wait_until_ready(f"http://127.0.0.1:{self.web_port}/readyz", self.process,
                                timeout_s):
            pytest.fail(f"worker not ready (exit code {self.process.poll()}):\n"
                        f"{self.log()[-3000:]}")


def _env_for(settings: Settings, web_port: int, data_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(settings_env(settings))
    env.update({
        "PIPELINE_WEB_PORT": str(web_port),
        "PIPELINE_DATA_DIR": str(data_dir),
        "PYTHONUNBUFFERED": "1",
        "HF_HUB_OFFLINE": "1",
    })
    return env


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., RunningWorker]]:
    """Start ``mentions worker`` processes; each is stopped by its pid after the test."""
    started: list[RunningWorker] = []

    def start(settings: Settings, stages: str, *, wait_ready: bool = True,
              **env_overrides: str) -> RunningWorker:
        web_port = free_port()
        log_path = tmp_path / f"worker-{web_port}.log"
        env = _env_for(settings, web_port, tmp_path / f"data-{web_port}")
        env["PIPELINE_STAGES"] = stages
        env.update(env_overrides)
        process = subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli", "worker", "--loglevel", "info"],
            env=env, stdout=log_path.open("wb"), stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        worker = RunningWorker(process, web_port, log_path)
        started.append(worker)
        if wait_ready:
            worker.wait_ready()
        return worker

    yield start
    for worker in started:
        if worker.process.poll() is None:
            worker.process.terminate()
            try:
                worker.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait()


def produce(
    settings: Settings, values: list[bytes], topic: str | None = None,
    partition: int | None = None,
) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(**kafka_client_options(settings))
    for value in values:
        producer.send(topic or settings.topic("raw"), value=value, partition=partition)
    producer.flush()
    producer.close()


def consume_until(
    settings: Settings, topic: str, done: Callable[[list[Any]], bool], timeout_s: float = 60.0,
) -> list[Any]:
    """Read every partition of ``topic`` from the start until ``done(records)`` holds."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        enable_auto_commit=False, auto_offset_reset="earliest", **kafka_client_options(settings),
    )
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
    consumer.assign(partitions)
    consumer.seek_to_beginning()
    records: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and not done(records):
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
    finally:
        consumer.close()
    return records
