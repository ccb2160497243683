"""Bluesky through Jetstream: post creations of the whole network, as mentions.

Jetstream serves the network's commits as JSON over a websocket. We ask the server for
``wantedCollections=app.bsky.feed.post`` only (the filter it supports; it has none on
words), so likes, follows and reposts never cross the wire; identity events still come,
and teach us DID -> handle. Each event carries ``time_us``, the server's clock in unix
microseconds, which is also the resume cursor: a reconnect or a restart asks for
``cursor=<last time_us - rewind>``, so nothing between is missed and the few events
replayed are the same mention ids again (dedup marks them).

A post's reply parent and quoted post become copy hints on the mention (``reply_to``,
``quote_of``: the other post's mention id); a repost is a separate record with no text of
its own, so it is not a mention.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final
from urllib.parse import urlencode, urlsplit, urlunsplit

import orjson

from pipeline.caching import BoundedCache
from pipeline.connectors.sources.config import BlueskyOptions, RuntimeOptions
from pipeline.connectors.sources.filtering import SkipEvent, UnmappableEvent
from pipeline.connectors.sources.runtime import Backoff, Health, SourceRuntime

log = logging.getLogger("pipeline.sources")

POST_COLLECTION: Final = "app.bsky.feed.post"
CURSOR_KEY: Final = "jetstream"
_AT_POST_PREFIX: Final = "at://"


def post_mention_id(did: str, rkey: str) -> str:
    """The mention id of a Bluesky post."""
    return f"bsky:{did}/{rkey}"


def post_web_url(did: str, rkey: str) -> str:
    """The post's page on bsky.app (a DID works where a handle would)."""
    return f"https://bsky.app/profile/{did}/post/{rkey}"


def mention_id_of_uri(uri: Any) -> str | None:
    """``at://DID/app.bsky.feed.post/RKEY`` as a mention id; other strings as they are.

    >>> mention_id_of_uri("at://did:plc:abc/app.bsky.feed.post/3kq")
    'bsky:did:plc:abc/3kq'
    """
    if not isinstance(uri, str) or not uri:
        return None
    parts = uri.removeprefix(_AT_POST_PREFIX).split("/")
    if uri.startswith(_AT_POST_PREFIX) and len(parts) == 3 and parts[1] == POST_COLLECTION:
        return post_mention_id(parts[0], parts[2])
    return uri


def decode_event(raw: bytes) -> dict[str, Any]:
    """One Jetstream message as a JSON object, or :class:`UnmappableEvent`."""
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise UnmappableEvent("not_json", str(error)) from None
    if not isinstance(document, dict):
        raise UnmappableEvent("not_an_object", f"top level is {type(document).__name__}")
    return document


def _quoted_uri(embed: Any) -> Any:
    if not isinstance(embed, dict):
        return None
    kind = embed.get("$type")
    record = embed.get("record")
    if kind == "app.bsky.embed.record" and isinstance(record, dict):
        return record.get("uri")
    if kind == "app.bsky.embed.recordWithMedia" and isinstance(record, dict):
        inner = record.get("record")
        return inner.get("uri") if isinstance(inner, dict) else None
    return None


def map_jetstream_event(
    document: dict[str, Any], handles: BoundedCache[str, str] | None = None,
) -> dict[str, Any]:
    """The mention of a Jetstream post creation; :class:`SkipEvent` for any other event.

    Identity events update ``handles`` (DID -> handle) and are skipped.
    """
    kind = document.get("kind")
    did = document.get("did")
    if kind == "identity":
        identity = document.get("identity")
        if handles is not None and isinstance(identity, dict) and isinstance(did, str):
            handle = identity.get("handle")
            if isinstance(handle, str) and handle:
                handles.remember(did, handle)
        raise SkipEvent("not_a_post")
    commit = document.get("commit")
    if kind != "commit" or not isinstance(commit, dict):
        raise SkipEvent("not_a_post")
    if commit.get("collection") != POST_COLLECTION:
        raise SkipEvent("not_a_post")
    if commit.get("operation") != "create":
        raise SkipEvent("not_a_create")
    rkey, record = commit.get("rkey"), commit.get("record")
    if not isinstance(did, str) or not did or not isinstance(rkey, str) or not rkey:
        raise UnmappableEvent("missing_field", "a post creation without did or commit.rkey")
    if not isinstance(record, dict):
        raise UnmappableEvent("missing_field", "a post creation without commit.record")
    text = record.get("text")
    if not isinstance(text, str) or not text.strip():
        raise SkipEvent("no_text")  # an image or a quote alone: nothing to listen to
    created_at = record.get("createdAt")
    time_us = document.get("time_us")
    if not created_at and type(time_us) is int:
        created_at = time_us // 1000  # the server's clock, as epoch milliseconds
    langs = record.get("langs")
    mention: dict[str, Any] = {
        "id": post_mention_id(did, rkey),
        "text": text,
        "created_at": created_at,
        "source": "bluesky",
        "author": {"id": did, "handle": handles.get(did) if handles is not None else None},
        "url": post_web_url(did, rkey),
        "lang_hint": langs[0] if isinstance(langs, list) and langs
        and isinstance(langs[0], str) else None,
    }
    reply = record.get("reply")
    if isinstance(reply, dict) and isinstance(reply.get("parent"), dict):
        mention["reply_to"] = mention_id_of_uri(reply["parent"].get("uri"))
    quoted = mention_id_of_uri(_quoted_uri(record.get("embed")))
    if quoted is not None:
        mention["quote_of"] = quoted
    return mention


def subscribe_url(endpoint: str, *, cursor_us: int | None) -> str:
    """The endpoint's URL asking for post commits only, from ``cursor_us`` when given.

    >>> subscribe_url("wss://js.example/subscribe", cursor_us=1725911162329308)
    'wss://js.example/subscribe?wantedCollections=app.bsky.feed.post&cursor=1725911162329308'
    """
    parts = urlsplit(endpoint)
    query = [("wantedCollections", POST_COLLECTION)]
    if cursor_us is not None:
        query.append(("cursor", str(max(0, cursor_us))))
    joined = "&".join(filter(None, (parts.query, urlencode(query))))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, joined, parts.fragment))


class JetstreamReader:
    """Reads Jetstream into a :class:`SourceRuntime`; reconnects, rotates, resumes."""

    def __init__(self, options: BlueskyOptions, runtime: SourceRuntime,
                 runtime_options: RuntimeOptions, *, cursor_us: int | None = None) -> None:
        self.options = options
        self.runtime = runtime
        self.handles = BoundedCache[str, str](max(1, options.handle_cache))
        self.last_time_us = cursor_us
        self.backoff = Backoff(runtime_options.backoff_initial_s, runtime_options.backoff_max_s)
        self.health = Health(runtime.source, runtime.metrics)
        self.endpoint_index = 0
        runtime.lag_from_mentions = False

    def resume_cursor(self) -> int | None:
        """Where the next connection starts: the last seen time, rewound a little."""
        if self.last_time_us is None:
            return None
        return self.last_time_us - int(self.options.rewind_s * 1_000_000)

    async def run(self) -> None:
        """Read until cancelled."""
        import websockets

        while True:
            endpoint = self.options.endpoints[self.endpoint_index % len(self.options.endpoints)]
            url = subscribe_url(endpoint, cursor_us=self.resume_cursor())
            received = 0
            try:
                # a frame over max_size would close the socket at the same cursor every
                # time: the bound is far above a record's largest size
                async with websockets.connect(url, max_size=8 * 2**20, open_timeout=15,
                                              close_timeout=2) as socket:
                    self.health.ok(endpoint)
                    log.info("bluesky: listening to %s", url)
                    async for message in socket:
                        received += 1
                        await self.accept(message if isinstance(message, bytes)
                                          else message.encode())
                error: BaseException | str = "the server closed the stream"
            except (OSError, TimeoutError, websockets.WebSocketException) as failure:
                error = failure
            if received:
                self.backoff.reset()
            else:  # nothing from this endpoint: try the next one
                self.endpoint_index += 1
            delay = self.backoff.next_delay()
            self.health.failed(endpoint, error, delay)
            await asyncio.sleep(delay)

    async def accept(self, raw: bytes) -> None:
        """Hand one message to the runtime, with the cursor it reaches."""
        try:
            document: dict[str, Any] | UnmappableEvent = decode_event(raw)
        except UnmappableEvent as error:
            document = error
        cursor = None
        if isinstance(document, dict):
            time_us = document.get("time_us")
            if type(time_us) is int and (self.last_time_us is None
                                         or time_us > self.last_time_us):
                self.last_time_us = time_us
                cursor = (CURSOR_KEY, {"time_us": time_us})
                self.runtime.observe_source_time(time_us / 1_000_000)

        def mention() -> dict[str, Any]:
            if isinstance(document, UnmappableEvent):
                raise document
            return map_jetstream_event(document, self.handles)

        await self.runtime.offer(raw, mention, cursor)
