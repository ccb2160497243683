"""The runtime every connector shares: map, filter, queue, send, then move the cursor.

A reader (the network's own loop) hands each event to :meth:`SourceRuntime.offer` with the
cursor that event reaches. ``offer`` maps, filters and validates it at once (pure code), and
puts the outcome on a bounded queue: when the broker is slow, ``offer`` waits, the reader
stops reading its socket and the network's own flow control holds the rest, so memory stays
bounded under any burst. The pump sends records in order and, every ``cursor_interval_s`` (or
when ``max_in_flight`` records are unacknowledged), waits for every acknowledgement and only
then saves the newest cursors: at least once, never a gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge

from pipeline.connectors.sources.config import RuntimeOptions
from pipeline.connectors.sources.cursors import CursorStore
from pipeline.connectors.sources.filtering import QueryPrefilter, SkipEvent, UnmappableEvent
from pipeline.records import dead_letter_record
from pipeline.schema import InvalidMention, validated_record

log = logging.getLogger("pipeline.sources")

# makes the mention of one event (raises SkipEvent or UnmappableEvent); the raw bytes
# travel beside it, for the dead-letter record
Mapper = Callable[[], dict[str, Any]]


class SourceMetrics:
    """The connectors' Prometheus series, on the registry passed in (labelled by source)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.events = Counter("mentions_source_events_total",
                              "Events received from the network", ["source"], registry=registry)
        self.mapped = Counter("mentions_source_mapped_total",
                              "Events mapped to mentions and queued for mentions.raw",
                              ["source"], registry=registry)
        self.delivered = Counter("mentions_source_delivered_total",
                                 "Mentions the broker acknowledged", ["source"], registry=registry)
        self.skipped = Counter("mentions_source_skipped_total",
                               "Events not sent, by reason (filtering.SKIP_REASONS)",
                               ["source", "reason"], registry=registry)
        self.dead_lettered = Counter("mentions_source_deadletter_total",
                                     "Events that reached us but could not be mapped, by reason",
                                     ["source", "reason"], registry=registry)
        self.reconnects = Counter("mentions_source_reconnects_total",
                                  "Connections or polls that failed and were retried",
                                  ["source"], registry=registry)
        self.lag = Gauge("mentions_source_lag_seconds",
                         "Wall clock minus the source's time of the newest event",
                         ["source"], registry=registry)
        self.up = Gauge("mentions_source_up", "1 while the network answers, 0 while it is down",
                        ["source"], registry=registry)
        self.queued = Gauge("mentions_source_queue_depth",
                            "Outcomes waiting between the reader and the producer",
                            ["source"], registry=registry)


@dataclass(frozen=True, slots=True)
class _Outcome:
    topic: str | None
    key: bytes | None
    value: bytes | None
    cursor: tuple[str, Any] | None


_STOP: Final = _Outcome(None, None, None, None)


class SourceRuntime:
    """One connector's pipeline from events to ``mentions.raw``; see the module docstring."""

    def __init__(
        self, source: str, *, producer: Any, cursors: CursorStore, prefilter: QueryPrefilter,
        metrics: SourceMetrics, options: RuntimeOptions, raw_topic: str,
        deadletter_topic: str, max_text_chars: int, clock: Callable[[], float] = time.time,
    ) -> None:
        self.source = source
        self.producer = producer
        self.cursors = cursors
        self.prefilter = prefilter
        self.metrics = metrics
        self.options = options
        self.raw_topic = raw_topic
        self.deadletter_topic = deadletter_topic
        self.max_text_chars = max_text_chars
        self.clock = clock
        self.queue: asyncio.Queue[_Outcome] = asyncio.Queue(maxsize=options.queue_size)
        self.delivered = 0
        # the lag gauge follows created_at unless the reader has a better clock (Jetstream)
        self.lag_from_mentions = True

    def outcome(self, raw: bytes, mapper: Mapper,
                cursor: tuple[str, Any] | None = None) -> _Outcome:
        """Map, filter and validate one event (pure apart from the metrics)."""
        label = self.source
        self.metrics.events.labels(label).inc()
        try:
            mention = mapper()
            if not self.prefilter(mention["text"]):
                raise SkipEvent("no_query_match")
            record = validated_record(mention, max_text_chars=self.max_text_chars)
        except SkipEvent as skip:
            self.metrics.skipped.labels(label, skip.reason).inc()
            return _Outcome(None, None, None, cursor)
        except (UnmappableEvent, InvalidMention) as error:
            return self._dead_letter(raw, error.reason, error.detail, cursor)
        except Exception as error:  # a shape no mapper foresaw: keep it, keep listening
            log.exception("%s: an event broke its mapper", label)
            return self._dead_letter(raw, "bad_value", f"{type(error).__name__}: {error}",
                                     cursor)
        self.metrics.mapped.labels(label).inc()
        if self.lag_from_mentions:
            self._observe_lag(record["created_at"])
        return _Outcome(self.raw_topic, record["id"].encode(), orjson.dumps(record), cursor)

    def _dead_letter(self, raw: bytes, reason: str, detail: str,
                     cursor: tuple[str, Any] | None) -> _Outcome:
        self.metrics.dead_lettered.labels(self.source, reason).inc()
        log.debug("%s: dead-lettered an event: %s: %s", self.source, reason, detail)
        value = dead_letter_record(raw, reason, detail, stage=f"source-{self.source}")
        return _Outcome(self.deadletter_topic, None, value, cursor)

    async def offer(self, raw: bytes, mapper: Mapper,
                    cursor: tuple[str, Any] | None = None) -> None:
        """Queue the outcome of one event; waits while the queue is full (backpressure)."""
        await self.queue.put(self.outcome(raw, mapper, cursor))
        self.metrics.queued.labels(self.source).set(self.queue.qsize())

    async def advance(self, key: str, value: Any) -> None:
        """Queue a cursor move that carries no record (e.g. a feed's new ETag)."""
        await self.queue.put(_Outcome(None, None, None, (key, value)))

    def observe_source_time(self, seconds: float) -> None:
        """Record the source clock of the newest event (for the lag gauge)."""
        self.metrics.lag.labels(self.source).set(max(0.0, self.clock() - seconds))

    def _observe_lag(self, created_at: str) -> None:
        with contextlib.suppress(ValueError):
            self.observe_source_time(datetime.fromisoformat(created_at).timestamp())

    async def stop(self) -> None:
        """Ask the pump to deliver what is queued, save the cursors and return."""
        await self.queue.put(_STOP)

    async def pump(self) -> None:
        """Send queued outcomes in order; settle and save cursors on a cadence."""
        pending: list[asyncio.Future[Any]] = []
        cursors: dict[str, Any] = {}
        next_save = time.monotonic() + self.options.cursor_interval_s
        while True:
            wait = max(0.0, next_save - time.monotonic())
            try:
                outcome = await asyncio.wait_for(self.queue.get(), timeout=wait)
            except TimeoutError:
                outcome = None
            if outcome is _STOP:
                break
            if outcome is not None:
                if outcome.topic is not None:
                    pending.append(await self.producer.send(
                        outcome.topic, key=outcome.key, value=outcome.value))
                if outcome.cursor is not None:
                    cursors[outcome.cursor[0]] = outcome.cursor[1]
            if len(pending) >= self.options.max_in_flight or time.monotonic() >= next_save:
                await self._settle(pending, cursors)
                next_save = time.monotonic() + self.options.cursor_interval_s
        await self._settle(pending, cursors)

    async def _settle(self, pending: list[asyncio.Future[Any]], cursors: dict[str, Any]) -> None:
        if pending:
            await asyncio.gather(*pending)
            self.delivered += len(pending)
            self.metrics.delivered.labels(self.source).inc(len(pending))
            pending.clear()
        if cursors:
            await self.cursors.save(self.source, dict(cursors))
            cursors.clear()
        self.metrics.queued.labels(self.source).set(self.queue.qsize())


class Backoff:
    """Exponential backoff with full jitter, reset after a success.

    >>> backoff = Backoff(1.0, 8.0, rng=random.Random(0))
    >>> [round(backoff.next_delay(), 2) for _ in range(5)]
    [0.92, 1.76, 2.84, 5.04, 6.05]
    """

    def __init__(self, initial_s: float, max_s: float, *,
                 rng: random.Random | None = None) -> None:
        self.initial_s = initial_s
        self.max_s = max_s
        self.failures = 0
        self.rng = rng or random.Random()

    def next_delay(self, at_least_s: float = 0.0) -> float:
        """The pause before the next try (never under ``at_least_s``, e.g. a Retry-After)."""
        ceiling = min(self.max_s, self.initial_s * 2 ** self.failures)
        self.failures += 1
        return max(at_least_s, self.rng.uniform(ceiling / 2, ceiling))

    def reset(self) -> None:
        """Forget the failures (after a connection that delivered events)."""
        self.failures = 0


class Health:
    """Says once, clearly, when a source goes down and when it is back (and sets ``up``)."""

    def __init__(self, source: str, metrics: SourceMetrics) -> None:
        self.source = source
        self.metrics = metrics
        self.down_since: float | None = None

    def failed(self, where: str, error: BaseException | str, retry_in_s: float) -> None:
        """A connection or poll failed; logs a warning only on the first failure in a row."""
        self.metrics.reconnects.labels(self.source).inc()
        self.metrics.up.labels(self.source).set(0)
        if self.down_since is None:
            self.down_since = time.monotonic()
            log.warning("%s source down: %s: %s; retrying with backoff (first retry in %.1fs)",
                        self.source, where, error, retry_in_s)
        else:
            log.info("%s still down: %s: %s; next retry in %.1fs",
                     self.source, where, error, retry_in_s)

    def ok(self, where: str) -> None:
        """The network answered."""
        self.metrics.up.labels(self.source).set(1)
        if self.down_since is not None:
            log.warning("%s source back: %s after %.0fs down", self.source, where,
                        time.monotonic() - self.down_since)
            self.down_since = None
