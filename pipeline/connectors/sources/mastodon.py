"""Mastodon's streaming API: public, local and hashtag timelines of chosen instances.

Each stream is one HTTP request whose response is server-sent events (``event: update`` with
a status as JSON in ``data:``, ``event: delete``, ``:`` heartbeats). Hashtag streams are
the keyword filter Mastodon supports: with ``hashtags_from_queries`` every one-word term of
the listening queries becomes a hashtag stream (README: Real sources). The token, when an
instance needs one, goes in the ``Authorization`` header, never in a URL or a log line.
A 429 waits for the instance's ``Retry-After``; a refused token is said once, clearly.
Statuses of accounts that opted out of search indexing (``noindex``) are skipped.

A stream has no resume, so each reader keeps the newest status id it heard (durably, in the
source cursors); when a stream opens again it first reads the matching REST timeline with
``min_id`` (a few pages at most) to fill the gap, then the stream: repeats are the same ids.

Mentions are keyed by the status's ActivityPub ``uri``, the same on every instance that
federates it, so one post heard on two instances is one mention id.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final
from urllib.parse import parse_qs, quote, urlsplit

import orjson

from pipeline.connectors.sources.config import MastodonInstance, RuntimeOptions
from pipeline.connectors.sources.filtering import SkipEvent, UnmappableEvent, html_to_text
from pipeline.connectors.sources.runtime import Backoff, Health, SourceRuntime
from pipeline.http_retry import retry_after_seconds

log = logging.getLogger("pipeline.sources")

# most timeline pages read to fill one gap (40 statuses each)
GAP_PAGES: Final = 10

_STREAM_PATHS: Final = {
    "public": "/api/v1/streaming/public",
    "public:local": "/api/v1/streaming/public/local",
    "hashtag": "/api/v1/streaming/hashtag",
    "hashtag:local": "/api/v1/streaming/hashtag/local",
}


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One dispatched event: its name (``message`` when none was given) and data."""

    event: str
    data: str


@dataclass(slots=True)
class SseParser:
    r"""Incremental parser of a ``text/event-stream`` body (the WHATWG format).

    >>> parser = SseParser()
    >>> parser.feed(b":thump\nevent: update\ndata: {\"a\"")
    []
    >>> parser.feed(b": 1}\n\n")
    [ServerSentEvent(event='update', data='{"a": 1}')]
    """

    _buffer: bytes = b""
    _event: str = ""
    _data: list[str] = field(default_factory=list)

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Events completed by this chunk (a partial line waits for the next one)."""
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        events = []
        for raw_line in lines:
            line = raw_line.rstrip(b"\r").decode("utf-8", errors="replace")
            if not line:
                if self._data:
                    events.append(ServerSentEvent(self._event or "message",
                                                  "\n".join(self._data)))
                self._event, self._data = "", []
                continue
            if line.startswith(":"):
                continue  # a comment: Mastodon's heartbeat
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                self._event = value
            elif name == "data":
                self._data.append(value)
        return events


def stream_urls(instance: MastodonInstance, query_hashtags: list[str]) -> list[str]:
    """Every stream URL to follow on ``instance``.

    >>> stream_urls(MastodonInstance(url="https://m.example", streams=("public:local",
    ...     "hashtag"), hashtags=("Telvia",)), ["acme"])
    ['https://m.example/api/v1/streaming/public/local', \
'https://m.example/api/v1/streaming/hashtag?tag=Telvia', \
'https://m.example/api/v1/streaming/hashtag?tag=acme']
    """
    tags = list(dict.fromkeys(
        [*instance.hashtags, *(query_hashtags if instance.hashtags_from_queries else [])]))
    urls: list[str] = []
    for stream in instance.streams:
        path = instance.url + _STREAM_PATHS[stream]
        if stream.startswith("hashtag"):
            urls.extend(f"{path}?tag={quote(tag)}" for tag in tags)
        else:
            urls.append(path)
    return urls


def timeline_url(stream_url: str) -> str:
    """The REST timeline that holds what a stream carries, for filling a gap.

    >>> timeline_url("https://m.example/api/v1/streaming/hashtag/local?tag=telvia")
    'https://m.example/api/v1/timelines/tag/telvia?local=true'
    >>> timeline_url("https://m.example/api/v1/streaming/public")
    'https://m.example/api/v1/timelines/public'
    """
    parts = urlsplit(stream_url)
    base, _, stream = parts.path.partition("/api/v1/streaming/")
    root = f"{parts.scheme}://{parts.netloc}{base}/api/v1/timelines/"
    kind, _, scope = stream.partition("/")
    local = "?local=true" if scope == "local" else ""
    if kind == "hashtag":
        tag = parse_qs(parts.query).get("tag", [""])[0]
        return f"{root}tag/{quote(tag)}{local}"
    return f"{root}public{local}"


def _newer(status_id: Any, than: str | None) -> bool:
    """Whether a status id is past ``than`` (Mastodon's ids are numeric strings)."""
    if not isinstance(status_id, str) or not status_id.isdigit():
        return False
    return than is None or not than.isdigit() or int(status_id) > int(than)


def _account_handle(account: dict[str, Any], instance_host: str) -> str | None:
    acct = account.get("acct")
    if not isinstance(acct, str) or not acct:
        return None
    return acct if "@" in acct else f"{acct}@{instance_host}"


def _status_text(status: dict[str, Any]) -> str:
    content = status.get("content")
    if not isinstance(content, str):
        raise UnmappableEvent("wrong_type", "status.content must be an HTML string")
    text = html_to_text(content)
    warning = status.get("spoiler_text")
    if isinstance(warning, str) and warning.strip():
        text = f"{warning.strip()}\n\n{text}"
    if not text.strip():
        raise SkipEvent("no_text")
    return text


def map_status(status: Any, instance_host: str) -> dict[str, Any]:
    """The mention of a Mastodon status (a boost carries the boosted text and ``repost_of``)."""
    if not isinstance(status, dict):
        raise UnmappableEvent("not_an_object", f"status is {type(status).__name__}")
    account, uri = status.get("account"), status.get("uri")
    if not isinstance(uri, str) or not uri or not isinstance(account, dict):
        raise UnmappableEvent("missing_field", "a status needs uri and account")
    boosted = status.get("reblog")
    body = boosted if isinstance(boosted, dict) else status
    # an author who asked search engines not to index them did not ask to be listened to
    if any(isinstance(writer, dict) and writer.get("noindex") is True
           for writer in (account, body.get("account"))):
        raise SkipEvent("author_opted_out")
    mention: dict[str, Any] = {
        "id": f"mastodon:{uri}",
        "text": _status_text(body),
        "created_at": status.get("created_at"),
        "source": "mastodon",
        "author": {
            "id": f"mastodon:{account.get('url') or account.get('id')}",
            "handle": _account_handle(account, instance_host),
            "followers": account.get("followers_count"),
        },
        "url": body.get("url") or body.get("uri"),
        "lang_hint": body.get("language"),
        "engagement": {"likes": body.get("favourites_count"), "reposts":
                       body.get("reblogs_count"), "replies": body.get("replies_count")},
    }
    if body is boosted and isinstance(boosted.get("uri"), str):
        mention["repost_of"] = f"mastodon:{boosted['uri']}"
    return mention


def map_server_event(event: ServerSentEvent, instance_host: str) -> dict[str, Any]:
    """The mention of one streamed event; :class:`SkipEvent` for all but ``update``."""
    if event.event != "update":
        raise SkipEvent("not_an_update")
    try:
        status = orjson.loads(event.data)
    except orjson.JSONDecodeError as error:
        raise UnmappableEvent("not_json", str(error)) from None
    return map_status(status, instance_host)


def retry_after_s(value: str | None, *, now: datetime | None = None) -> float:
    """Seconds a ``Retry-After`` header asks for; 0 if none (the reader's backoff decides).

    >>> retry_after_s("30"), retry_after_s(None), retry_after_s("soon")
    (30.0, 0.0, 0.0)
    """
    return retry_after_seconds(value, now) or 0.0


class StreamRefused(Exception):
    """The instance answered the stream request with an error status."""

    def __init__(self, status: int, wait_s: float = 0.0) -> None:
        hint = {401: " (the token is missing or refused)", 403: " (the token lacks read "
                "access, or the instance keeps this stream for its users)",
                429: " (rate limited)"}.get(status, "")
        super().__init__(f"HTTP {status}{hint}")
        self.status = status
        self.wait_s = wait_s


class MastodonStreamReader:
    """Follows one stream URL into a :class:`SourceRuntime`, reconnecting with backoff."""

    def __init__(self, url: str, instance: MastodonInstance, runtime: SourceRuntime,
                 runtime_options: RuntimeOptions, saved: dict[str, Any] | None = None) -> None:
        self.url = url
        self.timeline = timeline_url(url)
        self.instance = instance
        self.instance_host = urlsplit(instance.url).netloc
        self.runtime = runtime
        self.backoff = Backoff(runtime_options.backoff_initial_s, runtime_options.backoff_max_s)
        self.health = Health(runtime.source, runtime.metrics)
        last_id = (saved or {}).get("last_id")
        self.last_id: str | None = last_id if isinstance(last_id, str) else None
        # read at start: a token file that is missing stops the process before it listens
        token = instance.token()
        self.auth = {} if token is None else {
            "Authorization": f"Bearer {token.get_secret_value()}"}

    async def run(self, session: Any) -> None:
        """Stream until cancelled."""
        import aiohttp

        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache", **self.auth}
        while True:
            received = 0
            wait_s = 0.0
            try:
                received = await self._stream(session, headers)
                error: BaseException | str = "the instance closed the stream"
            except StreamRefused as refused:
                error, wait_s = refused, refused.wait_s
            except (aiohttp.ClientError, OSError, TimeoutError) as failure:
                error = failure
            if received:
                self.backoff.reset()
            delay = self.backoff.next_delay(at_least_s=wait_s)
            self.health.failed(self.url, error, delay)
            await asyncio.sleep(delay)

    async def _stream(self, session: Any, headers: dict[str, str]) -> int:
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=None, sock_connect=15, sock_read=120)
        received = 0
        async with session.get(self.url, headers=headers, timeout=timeout) as response:
            if response.status != 200:
                raise StreamRefused(response.status,
                                    retry_after_s(response.headers.get("Retry-After")))
            self.health.ok(self.url)
            log.info("mastodon: listening to %s", self.url)
            if self.last_id is not None:  # the stream is open: what came before it, now
                await self._fill_gap(session)
            parser = SseParser()
            async for chunk in response.content.iter_any():
                for event in parser.feed(chunk):
                    received += 1
                    await self.accept(event)
        return received

    async def _fill_gap(self, session: Any) -> None:
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=30)
        headers = {"Accept": "application/json", **self.auth}
        joiner = "&" if "?" in self.timeline else "?"
        for _page in range(GAP_PAGES):
            url = f"{self.timeline}{joiner}min_id={self.last_id}&limit=40"
            async with session.get(url, headers=headers, timeout=timeout) as response:
                if response.status != 200:
                    raise StreamRefused(response.status,
                                        retry_after_s(response.headers.get("Retry-After")))
                page = orjson.loads(await response.read())
            if not isinstance(page, list) or not page:
                return
            for status in reversed(page):  # the timeline lists the newest first
                await self._offer_status(orjson.dumps(status), status)

    async def accept(self, event: ServerSentEvent) -> None:
        """Hand one event to the runtime (an update with the cursor it reaches)."""
        raw = event.data.encode()
        if event.event == "update":
            try:
                status = orjson.loads(raw)
            except orjson.JSONDecodeError:
                pass  # map_server_event says not_json
            else:
                await self._offer_status(raw, status)
                return
        await self.runtime.offer(raw, functools.partial(map_server_event, event,
                                                        self.instance_host))

    async def _offer_status(self, raw: bytes, status: Any) -> None:
        cursor = None
        status_id = status.get("id") if isinstance(status, dict) else None
        if _newer(status_id, self.last_id):
            self.last_id = status_id
            cursor = (self.url, {"last_id": status_id})
        await self.runtime.offer(raw, functools.partial(map_status, status, self.instance_host),
                                 cursor)
