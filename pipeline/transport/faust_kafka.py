"""Faust's aiokafka transport with the consumer's fetch wait taken from our settings.

Faust creates its worker consumer with ``fetch_max_wait_ms=1500`` written into the call and
no setting for it. On Apache Kafka that costs nothing while data flows, because the broker
answers a waiting fetch as soon as data arrives. The embedded Tansu broker answers only when
the wait has passed if the partition was empty when the fetch came, so every agent that
caught up with its input waited up to 1.5 s for the next record: most of the dedup hop's
latency and the idle tail of every drain in ``benchmarks/pipeline.py``.

:func:`install` replaces the app's consumer transport with this subclass before the worker
starts; everything else is Faust's own code. aiokafka 0.14 reads the wait from the
consumer's ``_fetch_max_wait_ms`` when the consumer starts (its Fetcher is built then), so
setting that attribute on the freshly built, not yet started, consumer is the whole change.
``tests/unit/test_faust_kafka.py`` checks that this still holds for the installed versions.
"""

from __future__ import annotations

from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = transport.fetch_max_wait_ms
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(faust_aiokafka.Transport):
    """Faust's aiokafka transport whose worker consumers wait at most ``fetch_max_wait_ms``."""

    Consumer = _Consumer

    def __init__(self, *args: Any, fetch_max_wait_ms: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fetch_max_wait_ms = fetch_max_wait_ms


def install(app: Any, fetch_max_wait_ms: int) -> None:
    """Make ``app`` consume through :class:`Transport` (before the worker starts)."""
    app.transport = Transport(app.conf.broker_consumer, app, fetch_max_wait_ms=fetch_max_wait_ms)
