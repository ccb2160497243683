"""``mentions source NETWORK``: one connector process, from the network to ``mentions.raw``.

It creates the topics it needs, serves ``/metrics``, loads the source's cursors, starts the
network's readers and the runtime's pump, and on SIGTERM or Ctrl-C stops reading, delivers
what is queued and saves the cursors before it exits. If the broker stops acknowledging, the
pump fails and the process exits non-zero with one clear line: a restart resumes from the
last saved cursor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Coroutine
from typing import Any, Literal

from prometheus_client import CollectorRegistry

from pipeline.config import Settings
from pipeline.connectors.sources.config import SourcesConfig
from pipeline.connectors.sources.cursors import CursorStore, TopicCursorStore, ensure_cursor_topic
from pipeline.connectors.sources.filtering import QueryPrefilter
from pipeline.connectors.sources.runtime import SourceMetrics, SourceRuntime
from pipeline.stages.brands import load_brand_rules
from pipeline.transport.connection import aiokafka_options

log = logging.getLogger("pipeline.sources")

Network = Literal["bluesky", "mastodon", "rss"]
NETWORKS: tuple[Network, ...] = ("bluesky", "mastodon", "rss")
Reader = Callable[[Any], Coroutine[Any, Any, None]]


def build_readers(network: Network, sources: SourcesConfig, runtime: SourceRuntime,
                  saved: dict[str, Any], prefilter: QueryPrefilter) -> list[Reader]:
    """The network's reader coroutines (each takes the shared HTTP session)."""
    if network == "bluesky":
        from pipeline.connectors.sources.bluesky import CURSOR_KEY, JetstreamReader

        cursor = saved.get(CURSOR_KEY, {}).get("time_us")
        reader = JetstreamReader(sources.bluesky, runtime, sources.runtime,
                                 cursor_us=cursor if isinstance(cursor, int) else None)
        return [lambda _session: reader.run()]
    if network == "mastodon":
        from pipeline.connectors.sources.mastodon import MastodonStreamReader, stream_urls

        tags = prefilter.hashtags()
        streams = [MastodonStreamReader(url, instance, runtime, sources.runtime, saved.get(url))
                   for instance in sources.mastodon.instances
                   for url in stream_urls(instance, tags)]
        return [stream.run for stream in streams]
    from pipeline.connectors.sources.rss import FeedPoller

    pollers = [FeedPoller(feed, sources.rss, runtime, sources.runtime, saved.get(feed.url))
               for feed in sources.rss.feeds]
    return [poller.run for poller in pollers]


def new_producer(settings: Settings) -> Any:
    """The connector's producer: acknowledged by all in-sync replicas, batched a little."""
    from aiokafka import AIOKafkaProducer

    return AIOKafkaProducer(
        client_id=f"{settings.app_id}-source", acks="all", linger_ms=5,
        max_batch_size=settings.producer_batch_bytes, **aiokafka_options(settings),
    )


async def listen(network: Network, settings: Settings, sources: SourcesConfig, *,
                 registry: CollectorRegistry, stop: asyncio.Event,
                 cursor_store: CursorStore | None = None) -> SourceRuntime:
    """Run one connector until ``stop`` is set; return its runtime (for its counts)."""
    import aiohttp

    prefilter = QueryPrefilter(load_brand_rules(settings.brands_file),
                               enabled=sources.prefilter)
    producer = new_producer(settings)
    await producer.start()
    try:
        cursors = cursor_store or TopicCursorStore(settings, producer)
        runtime = SourceRuntime(
            network, producer=producer, cursors=cursors, prefilter=prefilter,
            metrics=SourceMetrics(registry), options=sources.runtime,
            raw_topic=settings.topic("raw"), deadletter_topic=settings.topic("deadletter"),
            max_text_chars=settings.max_text_chars,
        )
        saved = await cursors.load(network)
        readers = build_readers(network, sources, runtime, saved, prefilter)
        if not readers:
            log.warning("%s: the sources file lists nothing to listen to", network)
        async with aiohttp.ClientSession(headers={"User-Agent": "mentions-listening/1.0"}) \
                as session:
            pump = asyncio.create_task(runtime.pump())
            tasks = [asyncio.create_task(reader(session)) for reader in readers]
            stopped = asyncio.create_task(stop.wait())
            # readers loop until cancelled: one that ends has failed, and ends the process
            await asyncio.wait([pump, stopped, *tasks], return_when=asyncio.FIRST_COMPLETED)
            failed = [task for task in tasks if task.done() and not task.cancelled()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if not pump.done():
                await runtime.stop()
            stopped.cancel()
            await pump  # raises when the broker stopped acknowledging
            if failed:
                failed[0].result()
    finally:
        await producer.stop()
    return runtime


def run_source(network: Network, settings: Settings, sources: SourcesConfig) -> int:
    """The ``mentions source`` command's body: serve metrics, listen until a signal."""
    from prometheus_client import REGISTRY, start_http_server

    from pipeline.transport.topics import ensure_topics

    ensure_topics(settings)
    ensure_cursor_topic(settings)
    server, _thread = start_http_server(settings.web_port, addr=settings.web_host)
    print(f"{network}: writing {settings.topic('raw')} on {settings.broker}; metrics on "
          f"http://{settings.web_host}:{server.server_port}/metrics", flush=True)

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        try:
            runtime = await listen(network, settings, sources, registry=REGISTRY, stop=stop)
        except Exception as error:  # the broker: say it once, clearly, and exit non-zero
            from aiokafka.errors import KafkaError

            if not isinstance(error, KafkaError):
                raise
            log.error("%s: the broker stopped acknowledging (%s); exiting, a restart resumes "
                      "from the last saved cursor", network, error)
            return 1
        print(f"{network}: stopped; {runtime.delivered} mentions delivered", flush=True)
        return 0

    try:
        return asyncio.run(main())
    finally:
        with contextlib.suppress(Exception):
            server.shutdown()
