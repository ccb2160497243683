"""The Faust transport whose agents' fetches wait as long as our settings say."""

import asyncio
import inspect

from aiokafka import AIOKafkaConsumer

from pipeline.agents.app import build_app
from pipeline.config import load_settings


def test_worker_consumers_get_the_configured_fetch_wait() -> None:
    settings = load_settings(broker="127.0.0.1:1", consumer_fetch_max_wait_ms=80,
                             stages="ingest")

    async def build_consumer() -> AIOKafkaConsumer:
        # aiokafka wants a running loop; nothing connects before start()
        app, _context = build_app(settings)
        consumer = app.consumer._thread._create_worker_consumer(app.transport)
        assert isinstance(consumer, AIOKafkaConsumer)
        return consumer

    assert asyncio.run(build_consumer())._fetch_max_wait_ms == 80


def test_aiokafka_still_builds_its_fetcher_from_that_attribute() -> None:
    # the transport sets a private attribute of a not yet started consumer; if aiokafka
    # stops reading it in start(), this fails instead of the setting silently doing nothing
    assert "fetch_max_wait_ms=self._fetch_max_wait_ms" in inspect.getsource(
        AIOKafkaConsumer.start
    )
