"""Webhook notifier: alert events to the teams' channels, without ever slowing the pipeline.

:meth:`WebhookNotifier.enqueue` is synchronous and never waits: it routes the alert
(:class:`~pipeline.stages.alerts.routing.RoutingRules`), drops what a destination already
got, and puts one job per destination on that destination's bounded queue; a full queue
dead-letters the job (reason ``queue_full``) instead of blocking the caller. One background
sender task per destination delivers its queue in order, so a slow or dead webhook delays
only itself.

Delivery (aiohttp): a 2xx is success. 5xx answers, timeouts and connection errors are retried
with exponential backoff and jitter (``base_delay_s * 2**(attempt-1)``, capped at
``max_delay_s``, then a random point in its upper half so that many workers do not retry in
step). A 429 is retried after its ``Retry-After`` (seconds or an HTTP date, capped at
``max_delay_s``). Any other 4xx is final (the body or the URL is wrong; retrying will not
help). A job that fails for good is handed to ``on_dead_letter`` with a bounded ``reason``
(:data:`DEAD_LETTER_REASONS`); the agent publishes it on ``alerts.crisis.deadletter``.

Bodies: ``slack`` destinations get ``{"text": ..., "blocks": [...]}`` (Slack's incoming
webhooks; Mattermost and Rocket.Chat read ``text``), ``json`` ones the alert's own dict.
Every request carries an ``Idempotency-Key`` header (``brand/incident/sequence``).

Deduplication: a (destination, idempotency key) pair is sent at most once while remembered
(``dedupe_capacity`` most recent), so at-least-once redelivery of the alerts topic does not
double-post; a dead-lettered pair is forgotten so that a redelivery may try again. Updates of
one incident to one destination are further held to one per ``update_cooldown_s`` unless
severity or kind rises (opens and resolutions always go through; the core already emits
updates only when an incident materially grows, so this guards chat channels against a
fast-growing incident).

    notifier = WebhookNotifier(rules, on_dead_letter=publish_dead_letter)
    await notifier.start()
    notifier.enqueue(alert)              # from the spike agent, per alert event
    await notifier.stop(drain_timeout=5.0)
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC
from typing import Any, Final

import aiohttp
import msgspec
import orjson

from pipeline.http_retry import retry_after_seconds
from pipeline.stages.alerts.record import (
    CRISIS,
    OPENED,
    RESOLVED,
    UPDATED,
    Alert,
    AlertDeadLetterEvent,
    Severity,
)
from pipeline.stages.alerts.render import render_text
from pipeline.stages.alerts.routing import Destination, RoutingRules

log = logging.getLogger(__name__)

DEAD_LETTER_REASONS: Final = ("queue_full", "rejected", "retries_exhausted", "shutdown")
OUTCOMES: Final = ("delivered", "retried", "dead_lettered", "deduplicated", "suppressed")


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An alert a destination did not get; ``reason`` is one of :data:`DEAD_LETTER_REASONS`."""

    alert: Alert
    destination: Destination
    reason: str
    attempts: int
    detail: str

    def to_event(self) -> AlertDeadLetterEvent:
        """The record for the dead-letter topic (the webhook URL stays out)."""
        return AlertDeadLetterEvent(
            reason=self.reason, detail=self.detail, attempts=self.attempts,
            destination=self.destination.name, host=self.destination.host,
            alert=self.alert.to_event())

    def to_dict(self) -> dict[str, Any]:
        """:meth:`to_event` as a JSON-ready dict."""
        record: dict[str, Any] = msgspec.to_builtins(self.to_event())
        return record


DeadLetterCallback = Callable[[DeadLetter], Awaitable[None] | None]


# --------------------------------------------------------------------------------------------
# Bodies
# --------------------------------------------------------------------------------------------


def _mrkdwn(text: str) -> str:
    """Escape the three characters Slack's mrkdwn treats as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_body(alert: Alert) -> dict[str, Any]:
    """Slack incoming-webhook body: the plain-words text plus Block Kit blocks.

    ``text`` is the whole :func:`~pipeline.stages.alerts.render.render_text` rendering, so a
    receiver that ignores blocks (or a phone notification) still says everything.
    """
    text = render_text(alert)
    lines = text.splitlines()
    headline, _, summary = lines[0].partition(": ")
    kind = "Crisis" if alert.kind == CRISIS else "Volume spike"
    verb = {OPENED: "opened", UPDATED: "update", RESOLVED: "resolved"}.get(alert.status,
                                                                          alert.status)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "emoji": False,
                                    "text": f"{kind} {verb}: {alert.brand_name} "
                                            f"({alert.severity.label})"[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _mrkdwn(summary or headline)}},
    ]
    context = alert.context
    details = []
    if context.top_terms or context.top_hashtags:
        terms = ", ".join(t for t, _ in context.top_terms) or "-"
        hashtags = ", ".join(h for h, _ in context.top_hashtags) or "-"
        details.append(f"*Talking about:* {_mrkdwn(terms)}   *Hashtags:* {_mrkdwn(hashtags)}")
    if context.top_voices:
        voices = ", ".join(_mrkdwn(f"@{v.handle}" if v.handle else v.author_id)
                           + f" ({v.followers:,} followers)" for v in context.top_voices)
        details.append(f"*Top voices:* {voices}")
    if context.languages:
        details.append("*Languages:* " + ", ".join(f"{lang} {share:.0%}"
                                                   for lang, share in context.languages))
    if details:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(details)}})
    samples = []
    for sample in context.samples:
        said = _mrkdwn(" ".join(sample.text.split())[:200])
        who = _mrkdwn(f"@{sample.handle}" if sample.handle else "someone")
        link = f" <{sample.url}|link>" if sample.url else ""
        samples.append(f"\u2022 {who}: \u201c{said}\u201d{link}")
    if samples:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(samples)}})
    blocks.append({"type": "context", "elements": [{
        "type": "mrkdwn",
        "text": _mrkdwn(f"incident {alert.incident_id} #{alert.sequence} · started "
                        f"{alert.started_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"),
    }]})
    return {"text": text, "blocks": blocks}


def webhook_body(destination: Destination, alert: Alert) -> dict[str, Any]:
    """The body a destination gets: Slack-compatible or the alert's generic JSON dict."""
    return slack_body(alert) if destination.style == "slack" else alert.to_dict()


# --------------------------------------------------------------------------------------------
# The notifier
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Job:
    destination: Destination
    alert: Alert


class WebhookNotifier:
    """Bounded, non-blocking webhook delivery with retries, dead letters and dedupe.

    Args:
        routes: which destinations get which alerts.
        max_attempts: tries per (alert, destination), the first included.
        base_delay_s, max_delay_s: exponential backoff base and cap (also caps Retry-After).
        timeout_s: total time for one HTTP attempt.
        queue_size: jobs waiting per destination; beyond it jobs are dead-lettered.
        on_dead_letter: called (sync or async) with each :class:`DeadLetter`.
        on_outcome: called with each outcome of :data:`OUTCOMES` (for a metrics counter).
        update_cooldown_s: least time between two same-severity updates of one incident to
            one destination.
        dedupe_capacity: (destination, idempotency key) pairs remembered.
        clock: monotonic seconds, injectable for tests.
        sleep: the coroutine used to wait between attempts, injectable for tests.
        rng: jitter source.

    """

    def __init__(
        self,
        routes: RoutingRules,
        *,
        max_attempts: int = 5,
        base_delay_s: float = 0.5,
        max_delay_s: float = 30.0,
        timeout_s: float = 5.0,
        queue_size: int = 1000,
        on_dead_letter: DeadLetterCallback | None = None,
        on_outcome: Callable[[str], None] | None = None,
        update_cooldown_s: float = 120.0,
        dedupe_capacity: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if max_attempts < 1 or queue_size < 1 or timeout_s <= 0:
            raise ValueError("max_attempts and queue_size must be >= 1, timeout_s > 0")
        self.routes = routes
        self.max_attempts = max_attempts
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.timeout_s = timeout_s
        self.on_dead_letter = on_dead_letter
        self.on_outcome = on_outcome
        self.update_cooldown_s = update_cooldown_s
        self.dedupe_capacity = dedupe_capacity
        self.clock = clock
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.outcomes: dict[str, int] = dict.fromkeys(OUTCOMES, 0)
        self._queues: dict[str, asyncio.Queue[_Job]] = {
            name: asyncio.Queue(queue_size) for name in routes.destinations
        }
        self._in_flight: dict[str, _Job | None] = dict.fromkeys(routes.destinations)
        self._senders: list[asyncio.Task[None]] = []
        self._callbacks: set[asyncio.Task[Any]] = set()
        self._session: aiohttp.ClientSession | None = None
        self._sent: OrderedDict[tuple[str, str], None] = OrderedDict()
        # (destination, brand/incident) -> (clock, severity, kind) of the last job queued
        self._last_update: OrderedDict[tuple[str, str], tuple[float, Severity, str]] = (
            OrderedDict())
        self._stopping = False

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the HTTP session and start one sender task per destination."""
        if self._senders:
            return
        self._stopping = False
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        self._senders = [asyncio.create_task(self._send_loop(name), name=f"webhook:{name}")
                         for name in self._queues]

    async def stop(self, drain_timeout: float = 5.0) -> None:
        """Deliver what is queued for up to ``drain_timeout`` s, then dead-letter the rest."""
        self._stopping = True
        if self._senders:
            joins = [asyncio.create_task(queue.join()) for queue in self._queues.values()]
            _, pending = await asyncio.wait(joins, timeout=drain_timeout)
            for join in pending:
                join.cancel()
            for sender in self._senders:
                sender.cancel()
            await asyncio.gather(*self._senders, return_exceptions=True)
            self._senders = []
        for name, queue in self._queues.items():
            job = self._in_flight.get(name)
            if job is not None:
                self._in_flight[name] = None
                self._dead_letter(job, "shutdown", 0, "stopped while delivering")
            while not queue.empty():
                self._dead_letter(queue.get_nowait(), "shutdown", 0, "stopped before delivery")
                queue.task_done()
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._callbacks:
            await asyncio.gather(*self._callbacks, return_exceptions=True)

    # -- intake --------------------------------------------------------------------------------

    def enqueue(self, alert: Alert) -> bool:
        """Queue ``alert`` for every destination its routes name; never waits.

        False when some destination's job could not be queued (dead-lettered as
        ``queue_full`` or ``shutdown``); deduplicated and held-back updates count as handled.
        """
        accepted = True
        for destination in self.routes.destinations_for(alert):
            job = _Job(destination, alert)
            if self._stopping:
                self._dead_letter(job, "shutdown", 0, "notifier stopping")
                accepted = False
                continue
            sent_key = (destination.name, alert.idempotency_key)
            if sent_key in self._sent:
                self._outcome("deduplicated")
                continue
            if self._held_back(destination, alert):
                self._outcome("suppressed")
                continue
            try:
                self._queues[destination.name].put_nowait(job)
            except asyncio.QueueFull:
                self._dead_letter(job, "queue_full", 0, "destination queue is full")
                accepted = False
                continue
            self._sent[sent_key] = None
            while len(self._sent) > self.dedupe_capacity:
                self._sent.popitem(last=False)
            self._note_update(destination, alert)
        return accepted

    def _incident_key(self, destination: Destination, alert: Alert) -> tuple[str, str]:
        return destination.name, f"{alert.brand}/{alert.incident_id}"

    def _held_back(self, destination: Destination, alert: Alert) -> bool:
        if alert.status != UPDATED:
            return False
        last = self._last_update.get(self._incident_key(destination, alert))
        if last is None:
            return False
        at, severity, kind = last
        return (self.clock() - at < self.update_cooldown_s and alert.severity <= severity
                and alert.kind == kind)

    def _note_update(self, destination: Destination, alert: Alert) -> None:
        key = self._incident_key(destination, alert)
        if alert.status == RESOLVED:
            self._last_update.pop(key, None)
            return
        self._last_update[key] = (self.clock(), alert.severity, alert.kind)
        self._last_update.move_to_end(key)
        while len(self._last_update) > self.dedupe_capacity:
            self._last_update.popitem(last=False)

    # -- delivery ------------------------------------------------------------------------------

    async def _send_loop(self, name: str) -> None:
        queue = self._queues[name]
        while True:
            job = await queue.get()
            self._in_flight[name] = job
            try:
                await self._deliver(job)
            except asyncio.CancelledError:
                # the job stays in flight: stop() dead-letters it
                raise
            except Exception as error:  # one bad job must not stop the sender
                log.exception("webhook %s: unexpected failure", name)
                self._dead_letter(job, "retries_exhausted", 0, type(error).__name__)
            self._in_flight[name] = None
            queue.task_done()

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1))
        return ceiling / 2 + self.rng.uniform(0.0, ceiling / 2)

    async def _deliver(self, job: _Job) -> None:
        session = self._session
        assert session is not None, "start() the notifier first"
        destination, alert = job.destination, job.alert
        body = orjson.dumps(webhook_body(destination, alert))
        headers = {"Content-Type": "application/json",
                   "Idempotency-Key": alert.idempotency_key}
        detail = ""
        for attempt in range(1, self.max_attempts + 1):
            try:
                async with session.post(destination.url, data=body, headers=headers) as response:
                    status = response.status
                    if 200 <= status < 300:
                        self._outcome("delivered")
                        return
                    detail = f"HTTP {status}"
                    if status == 429:
                        wait = retry_after_seconds(response.headers.get("Retry-After"))
                        delay = min(wait, self.max_delay_s) if wait is not None \
                            else self._backoff(attempt)
                    elif status >= 500:
                        delay = self._backoff(attempt)
                    else:
                        self._dead_letter(job, "rejected", attempt, detail)
                        return
            except (TimeoutError, aiohttp.ClientError) as error:
                detail = "timeout" if isinstance(error, TimeoutError) \
                    else f"{type(error).__name__}: {error}"
                delay = self._backoff(attempt)
            if attempt < self.max_attempts:
                self._outcome("retried")
                log.info("webhook %s (%s): %s, retry %d in %.2fs", destination.name,
                         destination.host, detail, attempt, delay)
                await self.sleep(delay)
        self._dead_letter(job, "retries_exhausted", self.max_attempts, detail)

    # -- outcomes ------------------------------------------------------------------------------

    def _outcome(self, outcome: str) -> None:
        self.outcomes[outcome] += 1
        if self.on_outcome is not None:
            self.on_outcome(outcome)

    def _dead_letter(self, job: _Job, reason: str, attempts: int, detail: str) -> None:
        self._outcome("dead_lettered")
        # forget the pair so that a redelivered alert may try this destination again
        self._sent.pop((job.destination.name, job.alert.idempotency_key), None)
        log.warning("webhook %s (%s): dead-lettered %s: %s (%s)", job.destination.name,
                    job.destination.host, job.alert.idempotency_key, reason, detail)
        if self.on_dead_letter is None:
            return
        letter = DeadLetter(job.alert, job.destination, reason, attempts, detail)
        try:
            result = self.on_dead_letter(letter)
        except Exception:  # a failing sink must not stop the notifier
            log.exception("dead-letter callback failed")
            return
        if result is not None:
            task = asyncio.ensure_future(result)
            self._callbacks.add(task)
            task.add_done_callback(self._callbacks.discard)

    @property
    def queued(self) -> int:
        """Jobs waiting in all destination queues."""
        return sum(queue.qsize() for queue in self._queues.values())


__all__ = [
    "DEAD_LETTER_REASONS",
    "OUTCOMES",
    "DeadLetter",
    "WebhookNotifier",
    "retry_after_seconds",
    "slack_body",
    "webhook_body",
]
