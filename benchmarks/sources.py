"""Source connectors: reader-side CPU per event, per network, on one core (no network, no broker).

What each connector's reader does to one event before the producer sees it: decode, map,
pre-filter on the listening queries, validate, encode (``SourceRuntime.outcome``); for feeds,
also feedparser's parse of the document. Texts are real tweets (XLM-T, all 8 languages,
``../shared/data``); one in ten names a demo brand, the rest match no query, as on an open
network where nearly nothing is about the brands listened to. Then end to end: the Bluesky
connector (``listen``) reading a local fake Jetstream as fast as it serves, into a fresh
embedded broker, every post a match (the producer's worst case); its CPU figure includes
the fake server's, which runs in the same process.

    .venv/bin/python -m benchmarks.sources [--events 20000] [--repeat 3] [--delivered 20000]
"""

from __future__ import annotations

import argparse
import functools
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from prometheus_client import CollectorRegistry

from benchmarks.common import XLMT_LANGUAGES, load_xlmt, write_results
from pipeline.config import Settings
from pipeline.connectors.sources.bluesky import decode_event, map_jetstream_event
from pipeline.connectors.sources.config import RuntimeOptions
from pipeline.connectors.sources.cursors import MemoryCursorStore
from pipeline.connectors.sources.filtering import QueryPrefilter
from pipeline.connectors.sources.mastodon import ServerSentEvent, map_server_event
from pipeline.connectors.sources.rss import map_entry
from pipeline.connectors.sources.runtime import SourceMetrics, SourceRuntime
from pipeline.stages.brands import load_brand_rules
from tests.source_payloads import BASE_TIME_US, jetstream_post, mastodon_status

BRAND_PHRASES = ("Telvia", "Acme Mobile", "Nimbus Bank", "#LumoAir", "Banco Órbita")


def texts(count: int, matched_share: float, seed: int = 7) -> list[str]:
    """Real tweets; ``matched_share`` of them get a demo brand appended."""
    rng = random.Random(seed)
    pool = [text for language in XLMT_LANGUAGES for text in load_xlmt(language, "train")[0]]
    chosen = [rng.choice(pool) for _ in range(count)]
    return [f"{text} {rng.choice(BRAND_PHRASES)}" if rng.random() < matched_share else text
            for text in chosen]


def runtime() -> SourceRuntime:
    settings = Settings()
    return SourceRuntime(
        "bench", producer=None, cursors=MemoryCursorStore(),
        prefilter=QueryPrefilter(load_brand_rules(settings.brands_file)),
        metrics=SourceMetrics(CollectorRegistry()), options=RuntimeOptions(),
        raw_topic="raw", deadletter_topic="dead", max_text_chars=settings.max_text_chars)


def jetstream_frames(bodies: list[str]) -> list[bytes]:
    return [orjson.dumps(jetstream_post(f"3l{index:08d}", body,
                                        time_us=BASE_TIME_US + index * 1000))
            for index, body in enumerate(bodies)]


def mastodon_frames(bodies: list[str]) -> list[bytes]:
    return [orjson.dumps(mastodon_status(str(index), f"<p>{body}</p>"))
            for index, body in enumerate(bodies)]


def rss_document(bodies: list[str]) -> bytes:
    items = "".join(
        f"<item><title>{body[:60]}</title><guid>https://n.example/{index}</guid>"
        f"<pubDate>Sat, 06 Dec 2025 10:12:00 +0100</pubDate>"
        f"<description><![CDATA[<p>{body}</p>]]></description></item>"
        for index, body in enumerate(bodies))
    return (f'<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
            f"<title>Bench</title><language>es</language>{items}</channel></rss>").encode()


def _map_jetstream(raw: bytes) -> dict[str, Any]:
    return map_jetstream_event(decode_event(raw))


def best_rate(run: Callable[[], int], repeat: int) -> float:
    rates = []
    for _ in range(repeat):
        started = time.process_time()
        handled = run()
        rates.append(handled / (time.process_time() - started))
    return max(rates)


def measure(events: int, repeat: int, matched_share: float) -> dict[str, Any]:
    import feedparser

    bodies = texts(events, matched_share)
    core = runtime()
    jetstream = jetstream_frames(bodies)
    mastodon = mastodon_frames(bodies)
    feed_bodies = bodies[: min(len(bodies), 2000)]
    feed = rss_document(feed_bodies)
    fetched = datetime.now(UTC)

    def bluesky() -> int:
        for raw in jetstream:
            core.outcome(raw, functools.partial(_map_jetstream, raw))
        return len(jetstream)

    def mastodon_run() -> int:
        for raw in mastodon:
            event = ServerSentEvent("update", raw.decode())
            core.outcome(raw, functools.partial(map_server_event, event, "m.example"))
        return len(mastodon)

    def rss() -> int:
        parsed = feedparser.parse(feed)
        for entry in parsed.entries:
            core.outcome(b"", functools.partial(
                map_entry, entry, feed_url="https://n.example/rss", feed_title="Bench",
                feed_language="es", fetched_at=fetched))
        return len(parsed.entries)

    return {
        "matched_share": matched_share,
        "bluesky_events_per_cpu_s": round(best_rate(bluesky, repeat)),
        "mastodon_events_per_cpu_s": round(best_rate(mastodon_run, repeat)),
        "rss_entries_per_cpu_s": round(best_rate(rss, repeat)),
        "rss_entries_per_document": len(feed_bodies),
    }


async def _end_to_end(posts: int, batch_bytes: int) -> dict[str, Any]:
    import asyncio
    import uuid

    from pipeline.config import load_settings
    from pipeline.connectors.sources.config import sources_from_dict
    from pipeline.connectors.sources.cursors import ensure_cursor_topic
    from pipeline.connectors.sources.process import listen
    from pipeline.transport.broker import EmbeddedBroker
    from pipeline.transport.topics import ensure_topics
    from tests.integration.source_servers import FakeJetstream, running_jetstream

    events = [jetstream_post(f"3l{index:08d}", f"Telvia caída {index}",
                             time_us=BASE_TIME_US + index) for index in range(posts)]
    broker = EmbeddedBroker.start()
    try:
        settings = load_settings(broker=broker.bootstrap, topic_prefix=f"b{uuid.uuid4().hex[:8]}",
                                 producer_batch_bytes=batch_bytes)
        ensure_topics(settings)
        ensure_cursor_topic(settings)
        registry = CollectorRegistry()
        stop = asyncio.Event()
        async with running_jetstream(FakeJetstream(events)) as fake:
            sources = sources_from_dict({"bluesky": {"endpoints": [fake.url]}})
            started, cpu = time.monotonic(), time.process_time()
            task = asyncio.create_task(listen("bluesky", settings, sources, registry=registry,
                                              stop=stop))
            while (registry.get_sample_value("mentions_source_delivered_total",
                                             {"source": "bluesky"}) or 0) < posts:
                if task.done():
                    task.result()
                await asyncio.sleep(0.02)
            wall, cpu = time.monotonic() - started, time.process_time() - cpu
            stop.set()
            await task
    finally:
        broker.stop()
    return {"posts": posts, "wall_s": round(wall, 2), "posts_per_s": round(posts / wall),
            "connector_cpu_us_per_post": round(cpu / posts * 1e6, 1),
            "producer_batch_bytes": batch_bytes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--delivered", type=int, default=20_000,
                        help="posts for the end-to-end row (0 skips it)")
    args = parser.parse_args()
    rows = [measure(args.events, args.repeat, share) for share in (0.1, 1.0)]
    for row in rows:
        print(orjson.dumps(row).decode())
    end_to_end = []
    if args.delivered:
        import asyncio

        # one record per batch, as the embedded broker needs; then Kafka's default batching
        for batch_bytes in (1, 16384):
            end_to_end.append(asyncio.run(_end_to_end(args.delivered, batch_bytes)))
            print(orjson.dumps(end_to_end[-1]).decode())
    write_results("sources", {"events": args.events, "repeat": args.repeat, "rows": rows,
                              "bluesky_end_to_end": end_to_end})


if __name__ == "__main__":
    main()
