"""The batched stages' consumer options (no broker: the consumer is not started)."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer

from pipeline.agents.app import build_app
from pipeline.agents.batch_consumer import batch_consumer_options
from pipeline.config import Settings, load_settings


def test_poll_size_follows_the_settings_and_the_fetch_wait_stays_aiokafkas() -> None:
    settings = Settings(app_id="acme", consumer_fetch_max_wait_ms=40, ingest_batch_size=1234)
    options = batch_consumer_options(settings, "ingest", settings.ingest_batch_size)
    assert "fetch_max_wait_ms" not in options
    assert options["max_poll_records"] == 1234
    assert options["group_id"] == "acme-ingest"
    assert options["enable_auto_commit"] is False


async def test_aiokafka_takes_every_option() -> None:
    consumer = AIOKafkaConsumer(
        "mentions.raw", bootstrap_servers="127.0.0.1:1",
        **batch_consumer_options(Settings(), "ingest", 1234),
    )
    assert consumer._max_poll_records == 1234
    assert consumer._enable_auto_commit is False


async def test_batched_consumers_heartbeat_like_the_faust_agents() -> None:
    settings = load_settings(broker="127.0.0.1:1", stages="ingest", group_session_timeout_s=6.0)
    app, _context = build_app(settings)
    options = batch_consumer_options(settings, "ingest", 10)
    assert options["heartbeat_interval_ms"] == 2000
    assert app.conf.broker_heartbeat_interval == 2.0
    assert options["session_timeout_ms"] == 6000 == app.conf.broker_session_timeout * 1000
