"""Fake networks on 127.0.0.1 that speak the real protocols, for the source connectors' tests.

A Jetstream websocket server (``wantedCollections`` and ``cursor`` query parameters, a
dropped connection mid-stream), a Mastodon streaming server (server-sent events, a 429 with
Retry-After, bearer tokens) and a feed server (ETag / If-None-Match, 304).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
from aiohttp import web


@dataclass
class FakeJetstream:
    """Serves ``events`` (dicts with ``time_us``) from the requested cursor on."""

    events: list[dict[str, Any]]
    # the first connection is cut (TCP abort) after this many messages
    cut_first_after: int | None = None
    # serve only events up to this index (exclusive); None serves all
    serve_until: int | None = None
    # raw frames sent right after the event at the given index
    extra_frames: dict[int, bytes] = field(default_factory=dict)
    queries: list[dict[str, list[str]]] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/subscribe"

    async def handle(self, connection: Any) -> None:
        query = parse_qs(urlsplit(connection.request.path).query)
        self.queries.append(query)
        first = len(self.queries) == 1
        cursor = int(query["cursor"][0]) if "cursor" in query else None
        wanted = set(query.get("wantedCollections", []))
        sent = 0
        limit = len(self.events) if self.serve_until is None else self.serve_until
        for index, event in enumerate(self.events[:limit]):
            if cursor is not None and event["time_us"] < cursor:
                continue
            collection = event.get("commit", {}).get("collection")
            if wanted and collection is not None and collection not in wanted:
                continue
            await connection.send(orjson.dumps(event).decode())
            if index in self.extra_frames:
                await connection.send(self.extra_frames[index].decode())
            sent += 1
            if first and self.cut_first_after is not None and sent >= self.cut_first_after:
                connection.transport.abort()  # a dropped connection, no close frame
                return
        await connection.wait_closed()


@asynccontextmanager
async def running_jetstream(fake: FakeJetstream) -> AsyncIterator[FakeJetstream]:
    from websockets.asyncio.server import serve

    async with serve(fake.handle, "127.0.0.1", 0) as server:
        fake.port = next(iter(server.sockets)).getsockname()[1]
        yield fake


@asynccontextmanager
async def running_app(app: web.Application) -> AsyncIterator[int]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


@dataclass
class FakeMastodon:
    """One instance. The local timeline's stream answers 429 once, then each connection
    streams its frames of ``connections`` and closes, but the last stays open; the REST
    timeline holds ``timeline`` (statuses, for ``min_id`` gap filling)."""

    connections: list[list[bytes]]
    timeline: list[dict[str, Any]] = field(default_factory=list)
    retry_after_s: int = 1
    requests: list[tuple[float, str, str | None]] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api/v1/streaming/public/local", self.local)
        app.router.add_get("/api/v1/streaming/hashtag", self.hashtag)
        app.router.add_get("/api/v1/timelines/public", self.public_timeline)
        return app

    def _note(self, request: web.Request) -> None:
        self.requests.append((time.monotonic(), request.path_qs,
                              request.headers.get("Authorization")))

    async def local(self, request: web.Request) -> web.StreamResponse:
        self._note(request)
        opened = sum(1 for _, path, _ in self.requests if path.endswith("/public/local"))
        if opened == 1:
            return web.Response(status=429, headers={"Retry-After": str(self.retry_after_s)},
                                text='{"error":"Too many requests"}')
        index = min(opened - 2, len(self.connections) - 1)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b":)\n\n")
        for frame in self.connections[index]:
            await response.write(frame)
        if index < len(self.connections) - 1:
            return response  # the instance drops this stream
        while True:  # heartbeats until the client goes
            await asyncio.sleep(0.5)
            await response.write(b":thump\n\n")

    async def hashtag(self, request: web.Request) -> web.StreamResponse:
        self._note(request)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        while True:
            await asyncio.sleep(0.5)
            await response.write(b":thump\n\n")

    async def public_timeline(self, request: web.Request) -> web.Response:
        self._note(request)
        after = int(request.query["min_id"])
        newer = sorted((status for status in self.timeline if int(status["id"]) > after),
                       key=lambda status: -int(status["id"]))
        return web.json_response(newer[: int(request.query.get("limit", "20"))])


@dataclass
class FakeFeed:
    """A feed document behind ETag validation; ``body`` and ``etag`` change between polls."""

    body: bytes
    etag: str = '"v1"'
    statuses: list[int] = field(default_factory=list)
    validators: list[str | None] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/feed.xml", self.feed)
        return app

    async def feed(self, request: web.Request) -> web.Response:
        given = request.headers.get("If-None-Match")
        self.validators.append(given)
        if given == self.etag:
            self.statuses.append(304)
            return web.Response(status=304, headers={"ETag": self.etag})
        self.statuses.append(200)
        return web.Response(body=self.body, headers={
            "ETag": self.etag, "Content-Type": "application/rss+xml; charset=utf-8",
            "Last-Modified": "Sat, 06 Dec 2025 10:30:00 GMT"})
