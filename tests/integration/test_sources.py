"""The source connectors against fake networks on 127.0.0.1 and the real embedded broker.

Each test runs ``listen`` (the body of ``mentions source NETWORK``) in-process, and reads what
landed in ``mentions.raw`` (and the dead-letter topic) back from the broker.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
import urllib.request
from collections.abc import Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from pipeline.config import Settings, settings_env
from pipeline.connectors.sources.config import sources_from_dict
from pipeline.connectors.sources.cursors import ensure_cursor_topic
from pipeline.connectors.sources.process import Network, listen
from pipeline.schema import decode_record
from pipeline.stages.brands import BrandMatcher, load_brand_rules
from pipeline.stages.ingest import Ingestor
from pipeline.transport.broker import free_port
from tests.integration.conftest import consume_until
from tests.integration.source_servers import (
    FakeFeed,
    FakeJetstream,
    FakeMastodon,
    running_app,
    running_jetstream,
)
from tests.source_payloads import (
    BASE_TIME_US,
    DID_ANA,
    RSS_SPANISH,
    jetstream_identity,
    jetstream_like,
    jetstream_post,
    mastodon_status,
    sse,
)

FAST = {"cursor_interval_s": 0.1, "backoff_initial_s": 0.1, "backoff_max_s": 0.5}
SECOND_US = 1_000_000


@asynccontextmanager
async def connector(network: Network, settings: Settings, document: dict[str, Any]) -> Any:
    """``listen`` in a task; yields a probe of its metrics, stops it gracefully at exit."""
    ensure_cursor_topic(settings)
    registry = CollectorRegistry()
    stop = asyncio.Event()
    task = asyncio.create_task(listen(network, settings, sources_from_dict(
        {"runtime": FAST, **document}), registry=registry, stop=stop))

    def metric(name: str, **labels: str) -> float:
        return registry.get_sample_value(name, {"source": network, **labels}) or 0.0

    try:
        yield metric
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def until(condition: Callable[[], bool], what: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def topic_values(settings: Settings, name: str, at_least: int) -> list[dict[str, Any]]:
    records = await asyncio.to_thread(consume_until, settings, settings.topic(name),
                                      lambda got: len(got) >= at_least, 20)
    return [orjson.loads(record.value) for record in records]


def assert_ingest_tags_every_one(settings: Settings, mentions: list[dict[str, Any]]) -> None:
    """The ingest core accepts every mention sent and tags it with a brand: the pre-filter
    let through only what the listening queries match."""
    ingest = Ingestor(BrandMatcher(load_brand_rules(settings.brands_file)),
                      max_text_chars=settings.max_text_chars,
                      max_record_bytes=settings.max_record_bytes)
    outcome = ingest.process([orjson.dumps(mention) for mention in mentions])
    assert outcome.rejects == []
    assert len(outcome.mentions) == len(mentions)
    assert all(mention["brands"] for mention in outcome.mentions)


def _jetstream_events() -> tuple[list[dict[str, Any]], set[str]]:
    """30 events a second apart: 18 posts that name Telvia, the rest not for us."""
    events, wanted = [], set()
    for index in range(30):
        time_us = BASE_TIME_US + index * SECOND_US
        if index == 0:
            events.append(jetstream_identity(DID_ANA, "ana.bsky.social", time_us))
        elif index % 5 == 0:
            events.append(jetstream_like(time_us))
        elif index % 7 == 0:
            events.append(jetstream_post(f"n{index}", "hoy llueve en Bilbao", time_us=time_us))
        else:
            events.append(jetstream_post(f"p{index}", f"Telvia caída número {index}",
                                         time_us=time_us))
            wanted.add(f"bsky:{DID_ANA}/p{index}")
    return events, wanted


@pytest.mark.timeout(90)
async def test_bluesky_survives_a_dropped_connection_and_bad_frames(
        pipeline_settings: Settings) -> None:
    events, wanted = _jetstream_events()
    fake = FakeJetstream(events, cut_first_after=12, extra_frames={3: b'{"kind": "commit", "ti'})
    async with running_jetstream(fake), connector("bluesky", pipeline_settings, {
            "bluesky": {"endpoints": ["ws://127.0.0.1:9/subscribe", fake.url],
                        "rewind_s": 2}}) as metric:
        await until(lambda: metric("mentions_source_delivered_total") >= len(wanted) + 2,
                    "every wanted post, and the rewound ones again")
        assert metric("mentions_source_reconnects_total") >= 2  # the dead endpoint, the cut
        assert metric("mentions_source_skipped_total", reason="no_query_match") >= 3
        assert metric("mentions_source_lag_seconds") > 0
    raw = await topic_values(pipeline_settings, "raw", len(wanted))
    assert {mention["id"] for mention in raw} == wanted
    for mention in raw:  # what ingest accepts
        decode_record(orjson.dumps(mention), max_text_chars=20_000, max_record_bytes=10**6)
    assert raw[0]["author"]["handle"] == "ana.bsky.social"
    assert_ingest_tags_every_one(pipeline_settings, raw)
    (dead,) = await topic_values(pipeline_settings, "deadletter", 1)
    assert dead["reason"] == "not_json" and dead["stage"] == "source-bluesky"
    # the server was asked for posts only; the reconnect resumed 2 s before the cut
    first, second = fake.queries[0], fake.queries[1]
    assert first["wantedCollections"] == ["app.bsky.feed.post"] and "cursor" not in first
    # the server kept the likes (5, 10) back, so the 12th frame sent was event 13
    assert int(second["cursor"][0]) == events[13]["time_us"] - 2 * SECOND_US


@pytest.mark.timeout(90)
async def test_bluesky_restart_resumes_from_the_durable_cursor(
        pipeline_settings: Settings) -> None:
    events, wanted = _jetstream_events()
    fake = FakeJetstream(events, serve_until=15)
    first_half = {f"bsky:{DID_ANA}/p{index}" for index in range(15)} & wanted
    async with running_jetstream(fake):
        document = {"bluesky": {"endpoints": [fake.url], "rewind_s": 1}}
        async with connector("bluesky", pipeline_settings, document) as metric:
            await until(lambda: metric("mentions_source_delivered_total") >= len(first_half),
                        "the first half")
            await asyncio.sleep(0.3)  # past a cursor save: the newest event is index 14
        fake.serve_until = None
        async with connector("bluesky", pipeline_settings, document) as metric:
            await until(lambda: metric("mentions_source_delivered_total")
                        >= len(wanted - first_half), "the second half")
    assert int(fake.queries[1]["cursor"][0]) == events[14]["time_us"] - SECOND_US
    raw = await topic_values(pipeline_settings, "raw", len(wanted))
    ids = [mention["id"] for mention in raw]
    assert set(ids) == wanted
    # at least once: only the rewound second may come twice
    assert len(ids) - len(wanted) <= 1


@pytest.mark.timeout(90)
async def test_mastodon_waits_out_a_429_fills_a_dropped_stream_gap_and_resumes(
        pipeline_settings: Settings, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("TEST_INSTANCE_TOKEN", "tok-3f9a")
    posted = {str(100 + n): mastodon_status(str(100 + n), f"<p>Sin fibra de #Telvia ({n})</p>")
              for n in range(6)}
    posted["101"] = mastodon_status("101", "<p>otra cosa</p>")

    def update(status_id: str) -> bytes:
        return sse("update", orjson.dumps(posted[status_id]).decode())

    # 103 and 104 are posted while the first stream is down: only the timeline has them
    fake = FakeMastodon([
        [update("100"), update("101"), sse("update", '{"id": "151", "content'),
         sse("delete", "99"), update("102")],
        [update("105")],
    ], timeline=list(posted.values()))
    caplog.set_level(logging.INFO, logger="pipeline.sources")
    async with running_app(fake.app()) as port:
        instance = {"url": f"http://127.0.0.1:{port}", "streams": ["public:local", "hashtag"],
                    "token_env": "TEST_INSTANCE_TOKEN"}
        document = {"mastodon": {"instances": [instance]}}
        async with connector("mastodon", pipeline_settings, document) as metric:
            # 100, the dead letter, 102, then 103-105 from the timeline and 105 streamed
            await until(lambda: metric("mentions_source_delivered_total") >= 7,
                        "the statuses, the gap and a dead letter")
            assert metric("mentions_source_skipped_total", reason="not_an_update") == 1
            assert metric("mentions_source_skipped_total", reason="no_query_match") == 1
            await asyncio.sleep(0.3)  # past a cursor save
        async with connector("mastodon", pipeline_settings, document):
            await until(lambda: sum("min_id=" in path for _, path, _ in fake.requests) >= 2,
                        "the gap fill after a restart")
    # Retry-After was honoured: the reader chose its next try from the server's 1 s
    rate_limited = [record for record in caplog.records
                    if "rate limited" in record.getMessage()]
    assert rate_limited and rate_limited[0].args[-1] >= 1.0
    assert {auth for _, _, auth in fake.requests} == {"Bearer tok-3f9a"}
    fills = [path for _, path, _ in fake.requests if "min_id=" in path]
    assert fills[0] == "/api/v1/timelines/public?local=true&min_id=102&limit=40"
    assert "min_id=105" in fills[1]  # the restart resumed from the durable cursor
    hashtags = {path.split("tag=")[1] for _, path, _ in fake.requests if "tag=" in path}
    assert hashtags == {"telvia", "lumoair", "acmemobile", "nimbusbank", "orbitabank"}
    assert "tok-3f9a" not in caplog.text
    assert "HTTP 429 (rate limited)" in caplog.text
    raw = await topic_values(pipeline_settings, "raw", 5)
    ids = [mention["id"].rsplit("/", 1)[1] for mention in raw]
    assert sorted(set(ids)) == ["100", "102", "103", "104", "105"]
    assert len(ids) <= 6  # at least once: 105 came from the timeline and the stream
    assert raw[0]["author"]["followers"] == 842
    assert_ingest_tags_every_one(pipeline_settings, raw)


@pytest.mark.timeout(90)
async def test_rss_polls_conditionally_and_sends_each_entry_once_across_restarts(
        pipeline_settings: Settings) -> None:
    fake = FakeFeed(RSS_SPANISH)
    async with running_app(fake.app()) as port:
        document = {"rss": {"poll_interval_s": 0.2,
                            "feeds": [f"http://127.0.0.1:{port}/feed.xml"]}}
        async with connector("rss", pipeline_settings, document) as metric:
            await until(lambda: metric("mentions_source_delivered_total") >= 1, "the first item")
            await until(lambda: fake.statuses.count(304) >= 2, "conditional polls")
            new_item = (b"<item><title>Telvia responde a la ca\xc3\xadda</title>"
                        b"<guid>diario-48300</guid></item>")
            fake.body = RSS_SPANISH.replace(b"<item>", new_item + b"<item>", 1)
            fake.etag = '"v2"'
            await until(lambda: metric("mentions_source_delivered_total") >= 2, "the new item")
            await asyncio.sleep(0.3)
        assert metric("mentions_source_skipped_total", reason="no_query_match") == 1
        polls_before_restart = len(fake.statuses)
        fake.etag = '"v3"'  # the same entries under a new validator: only ids can tell
        async with connector("rss", pipeline_settings, document) as metric:
            await until(lambda: metric("mentions_source_skipped_total", reason="seen_before")
                        >= 3, "the entries seen before the restart")
    assert fake.validators[polls_before_restart] == '"v2"'  # the saved ETag survived
    assert fake.statuses[polls_before_restart] == 200
    raw = await topic_values(pipeline_settings, "raw", 2)
    assert sorted(mention["id"] for mention in raw) == [
        "rss:127.0.0.1:diario-48300",
        "rss:https://diario.example/economia/2025-12-06/telvia-caida.html"]
    assert_ingest_tags_every_one(pipeline_settings, raw)


@pytest.mark.timeout(90)
async def test_the_source_command_serves_metrics_and_stops_cleanly_on_sigterm(
        pipeline_settings: Settings, tmp_path: Path) -> None:
    fake = FakeFeed(RSS_SPANISH)
    async with running_app(fake.app()) as port:
        sources_file = tmp_path / "sources.yaml"
        sources_file.write_text(f"rss:\n  poll_interval_s: 0.2\n  feeds:\n"
                                f"    - http://127.0.0.1:{port}/feed.xml\n")
        web_port = free_port()
        env = {**os.environ, **settings_env(pipeline_settings), "PYTHONUNBUFFERED": "1",
               "PIPELINE_SOURCES_FILE": str(sources_file), "PIPELINE_WEB_PORT": str(web_port)}
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pipeline.cli", "source", "rss", env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        try:
            metrics_url = f"http://127.0.0.1:{web_port}/metrics"

            def delivered() -> float:
                try:
                    with urllib.request.urlopen(metrics_url, timeout=2) as response:
                        text = response.read().decode()
                except OSError:
                    return 0.0
                line = 'mentions_source_delivered_total{source="rss"} '
                return next((float(row.split()[-1]) for row in text.splitlines()
                             if row.startswith(line)), 0.0)

            await until(lambda: fake.statuses.count(304) >= 1, "a conditional poll", 60)
            # the metrics server is the other process's: a short blocking read is fine here
            await until(lambda: delivered() == 1.0, "the delivery on /metrics")
        finally:
            process.send_signal(signal.SIGTERM)
            output, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, output.decode()
    assert b"rss: stopped; 1 mentions delivered" in output
