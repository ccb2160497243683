"""RSS and Atom feeds: the press half of listening, polled politely.

Each feed is polled every ``poll_interval_s`` with a conditional GET (``If-None-Match`` with
the last ETag, ``If-Modified-Since`` with the last Last-Modified), so an unchanged feed costs
the publisher a 304. Entries are keyed by their ``id`` (Atom) or ``guid`` (RSS), falling back
to the link; the newest ``seen_ids_per_feed`` ids are part of the feed's durable cursor, so a
restart sends no entry twice beyond what at-least-once allows.

Parsing is feedparser's: it reads every RSS and Atom dialect met in the wild (namespaced
dates, ``content:encoded``, broken encodings, malformed XML flagged as ``bozo`` but still
read), and never fetches anything itself here: this module downloads the bytes (with a size
limit and a timeout) and hands them over.
"""

from __future__ import annotations

import asyncio
import calendar
import functools
import logging
import random
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import orjson

from pipeline.connectors.sources.config import FeedOptions, RssOptions, RuntimeOptions
from pipeline.connectors.sources.filtering import SkipEvent, UnmappableEvent, html_to_text
from pipeline.connectors.sources.mastodon import retry_after_s
from pipeline.connectors.sources.runtime import Backoff, Health, SourceRuntime

log = logging.getLogger("pipeline.sources")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S")


def entry_key(entry: Any) -> str | None:
    """The entry's stable id: ``id``/``guid``, else its link; None when it has neither."""
    for name in ("id", "link"):
        value = entry.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _entry_time(entry: Any, fetched_at: datetime) -> str:
    for name in ("published_parsed", "updated_parsed"):
        parsed = entry.get(name)
        if parsed:
            # feedparser gives UTC struct_time
            return datetime.fromtimestamp(calendar.timegm(parsed), tz=UTC).isoformat()
    return fetched_at.isoformat()  # undated entry: first heard now


def _entry_body(entry: Any) -> str:
    content = entry.get("content")
    if isinstance(content, list) and content and isinstance(content[0], dict):
        value = content[0].get("value")
        if isinstance(value, str) and value.strip():
            return html_to_text(value)
    summary = entry.get("summary")
    return html_to_text(summary) if isinstance(summary, str) else ""


def map_entry(entry: Any, *, feed_url: str, feed_title: str | None,
              feed_language: str | None, fetched_at: datetime) -> dict[str, Any]:
    """The mention of one feed entry: title and body as text, the outlet as author."""
    key = entry_key(entry)
    if key is None:
        raise UnmappableEvent("missing_field", "a feed entry without id, guid or link")
    title = entry.get("title") if isinstance(entry.get("title"), str) else ""
    body = _entry_body(entry)
    text = "\n\n".join(part for part in (html_to_text(title), body) if part)
    if not text:
        raise SkipEvent("no_text")
    host = urlsplit(feed_url).hostname or feed_url
    writer = entry.get("author") if isinstance(entry.get("author"), str) else None
    language = entry.get("language") or feed_language
    return {
        # an id that is a URI (a link, tag:, urn:) is global; a bare guid is the feed's own
        "id": f"rss:{key}" if _URI.match(key) else f"rss:{host}:{key}",
        "text": text,
        "created_at": _entry_time(entry, fetched_at),
        "source": "rss",
        "author": {"id": f"rss:{host}" + (f":{writer}" if writer else ""),
                   "handle": writer or feed_title or host, "followers": None},
        "url": entry.get("link") if isinstance(entry.get("link"), str) else None,
        "lang_hint": language.split("-")[0].lower() if isinstance(language, str)
        and language else None,
        "outlet": feed_title or host,
    }


class FeedState:
    """A feed's cursor: validators of the last answer and the newest entry ids seen."""

    def __init__(self, saved: dict[str, Any] | None, *, keep: int) -> None:
        saved = saved or {}
        self.etag: str | None = saved.get("etag")
        self.modified: str | None = saved.get("modified")
        self.keep = keep
        self.seen: dict[str, None] = dict.fromkeys(saved.get("seen") or [])

    def request_headers(self) -> dict[str, str]:
        """The conditional GET's headers."""
        headers = {"Accept": "application/rss+xml, application/atom+xml, application/xml;q=0.9,"
                   " */*;q=0.5"}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.modified:
            headers["If-Modified-Since"] = self.modified
        return headers

    def new_entries(self, entries: Iterable[Any]) -> list[tuple[str | None, Any]]:
        """(id, entry) of the entries not seen before, in feed order; marks them seen."""
        fresh = []
        for entry in entries:
            key = entry_key(entry)
            if key is not None and key in self.seen:
                continue
            if key is not None:
                self.seen[key] = None
            fresh.append((key, entry))
        while len(self.seen) > self.keep:
            del self.seen[next(iter(self.seen))]
        return fresh

    def snapshot(self) -> dict[str, Any]:
        """The JSON cursor value."""
        return {"etag": self.etag, "modified": self.modified, "seen": list(self.seen)}


class FeedPoller:
    """Polls one feed into a :class:`SourceRuntime`."""

    def __init__(self, feed: FeedOptions, options: RssOptions, runtime: SourceRuntime,
                 runtime_options: RuntimeOptions, saved: dict[str, Any] | None) -> None:
        self.feed = feed
        self.options = options
        self.runtime = runtime
        self.state = FeedState(saved, keep=options.seen_ids_per_feed)
        self.backoff = Backoff(runtime_options.backoff_initial_s, runtime_options.backoff_max_s)
        self.health = Health(runtime.source, runtime.metrics)

    async def run(self, session: Any) -> None:
        """Poll until cancelled."""
        import aiohttp

        while True:
            try:
                await self.poll_once(session)
                self.backoff.reset()
                # a little jitter, so many feeds on one host do not arrive in step
                delay = self.options.poll_interval_s * random.uniform(0.9, 1.1)
            except (aiohttp.ClientError, OSError, TimeoutError, FeedError) as error:
                wait_s = error.wait_s if isinstance(error, FeedError) else 0.0
                delay = self.backoff.next_delay(at_least_s=wait_s)
                self.health.failed(self.feed.url, error, delay)
            await asyncio.sleep(delay)

    async def poll_once(self, session: Any) -> int:
        """One conditional GET; returns how many new entries were handed on."""
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=self.options.timeout_s)
        async with session.get(self.feed.url, headers=self.state.request_headers(),
                               timeout=timeout) as response:
            if response.status == 304:
                self.health.ok(self.feed.url)
                return 0
            if response.status != 200:
                raise FeedError(f"HTTP {response.status}",
                                retry_after_s(response.headers.get("Retry-After")))
            body = await response.content.read(self.options.max_feed_bytes + 1)
            if len(body) > self.options.max_feed_bytes:
                raise FeedError(f"feed larger than {self.options.max_feed_bytes} bytes")
            self.health.ok(self.feed.url)
            etag, modified = response.headers.get("ETag"), response.headers.get("Last-Modified")
            content_type = response.headers.get("Content-Type", "")
        return await self.accept(body, content_type, etag=etag, modified=modified)

    async def accept(self, body: bytes, content_type: str, *, etag: str | None,
                     modified: str | None) -> int:
        """Hand a fetched document's new entries on, then the feed's new cursor."""
        import feedparser

        parsed = feedparser.parse(body, response_headers={"content-type": content_type})
        if parsed.get("bozo") and not parsed.get("entries"):
            raise FeedError(f"not a feed: {parsed.get('bozo_exception')}")
        channel = parsed.get("feed", {})
        fetched_at = datetime.now(UTC)
        title = channel.get("title") if isinstance(channel.get("title"), str) else None
        title = self.feed.name or title
        language = channel.get("language")
        entries = parsed.get("entries", [])
        fresh = self.state.new_entries(entries)
        for _ in range(len(entries) - len(fresh)):
            self.runtime.metrics.skipped.labels(self.runtime.source, "seen_before").inc()
            self.runtime.metrics.events.labels(self.runtime.source).inc()
        for _key, entry in fresh:
            await self.runtime.offer(orjson.dumps(entry, default=str), functools.partial(
                map_entry, entry, feed_url=self.feed.url, feed_title=title,
                feed_language=language, fetched_at=fetched_at))
        self.state.etag, self.state.modified = etag, modified
        await self.runtime.advance(self.feed.url, self.state.snapshot())
        return len(fresh)


class FeedError(Exception):
    """A poll that did not give a feed (status, size, parse); ``wait_s`` from Retry-After."""

    def __init__(self, message: str, wait_s: float = 0.0) -> None:
        super().__init__(message)
        self.wait_s = wait_s
