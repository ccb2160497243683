"""A crisis in scored micro-batches through a real Faust worker on the real broker: the
incident opens, the alert lands on the alerts topic and on a real local webhook, and a
restarted worker carries on with the same incident without sending anything twice."""

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
from aiohttp import web

from pipeline.config import Settings
from pipeline.transport.topics import encode_batch, partition_for
from tests.crisis_scenario import BRAND, windows
from tests.http_thread import AiohttpThread
from tests.integration.conftest import RunningWorker, consume_until

pytestmark = pytest.mark.integration

# the scenario's crisis opens on record 364 (see tests/unit/stages/test_crisis.py)
OPENS_AT = 364


class WebhookReceiver(AiohttpThread):
    """A real aiohttp server in a thread, recording every request it accepts."""

    def __init__(self) -> None:
        super().__init__()
        self.received: list[tuple[str, dict]] = []

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/hook", self._hook)

    async def _hook(self, request: web.Request) -> web.Response:
        self.received.append((request.headers["Idempotency-Key"], await request.json()))
        return web.Response(status=204)

    def wait_for(self, done: Callable[[list], bool], timeout_s: float = 60) -> None:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end and not done(self.received):
            time.sleep(0.2)


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    receiver.start()
    yield receiver
    receiver.stop()


def produce_scored(settings: Settings, batches: list[list[dict]]) -> None:
    from kafka import KafkaProducer

    from pipeline.transport.connection import kafka_client_options

    producer = KafkaProducer(**kafka_client_options(settings))
    partition = partition_for(BRAND.encode(), settings.partitions)
    for batch in batches:
        producer.send(settings.topic("scored"), value=encode_batch(batch), partition=partition)
    producer.flush()
    producer.close()


def alert_events(settings: Settings, done: Callable[[list[dict]], bool]) -> list[dict]:
    records = consume_until(
        settings, settings.alerts_topic,
        lambda records: done([orjson.loads(r.value) for r in records]), timeout_s=90,
    )
    return [orjson.loads(r.value) for r in records]


def test_crisis_alerts_reach_topic_and_webhook_once_across_a_restart(
    pipeline_settings: Settings, start_worker: Callable[..., RunningWorker],
    webhook: WebhookReceiver, tmp_path: Path,
) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        "destinations:\n"
        f"  pr: {{url: 'http://127.0.0.1:{webhook.port}/hook', style: json}}\n"
        "routes:\n  - {brands: ['acme-*'], min_severity: info, to: [pr]}\n")
    env = {"PIPELINE_ALERT_ROUTES_FILE": str(routes)}
    batches = list(windows())

    worker = start_worker(pipeline_settings, "crisis", **env)
    produce_scored(pipeline_settings, batches[:OPENS_AT + 1])
    opened = alert_events(pipeline_settings, lambda events: len(events) >= 1)
    assert [(e["status"], e["brand"], e["kind"]) for e in opened] == [
        ("open", BRAND, "crisis")]
    webhook.wait_for(lambda received: len(received) >= 1)
    assert [key for key, _ in webhook.received] == [opened[0]["idempotency_key"]]
    assert webhook.received[0][1]["incident_id"] == opened[0]["incident_id"]
    metrics = worker.metrics_text()
    assert 'mentions_alerts_total{kind="crisis",severity="warning",status="open"} 1.0' in metrics
    assert 'mentions_open_incidents{kind="crisis"} 1.0' in metrics
    assert 'mentions_webhook_deliveries_total{outcome="delivered"} 1.0' in metrics

    # a new worker takes over from the changelogs: same incident, nothing sent twice
    worker.process.terminate()
    worker.process.wait(timeout=30)
    start_worker(pipeline_settings, "crisis", **env)
    produce_scored(pipeline_settings, batches[OPENS_AT + 1:])
    events = alert_events(pipeline_settings, lambda events: any(
        e["status"] == "resolved" for e in events))
    assert [e["status"] for e in events] == ["open", "update", "resolved"]
    assert len({e["incident_id"] for e in events}) == 1
    keys = [e["idempotency_key"] for e in events]
    assert [e["sequence"] for e in events] == [0, 1, 2]
    webhook.wait_for(lambda received: len(received) >= 3)
    assert [key for key, _ in webhook.received] == keys
