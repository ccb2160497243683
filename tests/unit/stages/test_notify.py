from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from aiohttp import web

from pipeline.records import ScoredMention, Sentiment
from pipeline.stages.alerts.lifecycle import BrandIncidents, IncidentConfig, WindowObservation
from pipeline.stages.alerts.record import (
    ALERT_DEAD_LETTERS,
    CRISIS,
    OPENED,
    RESOLVED,
    UPDATED,
    Alert,
    Severity,
)
from pipeline.stages.alerts.routing import RoutingRules
from pipeline.stages.notify import (
    DeadLetter,
    WebhookNotifier,
    retry_after_seconds,
    slack_body,
)

START = datetime(2025, 3, 3, 10, 0, tzinfo=UTC)
STEP = timedelta(minutes=5)


def crisis_alerts() -> list[Alert]:
    """Open, update and resolve of one real incident, built by the lifecycle core."""
    incidents = BrandIncidents("acme-mobile", IncidentConfig(calm_windows=1),
                               brand_name="Acme Mobile")
    incidents.observe(ScoredMention(
        id="m1", text="Acme <battery> fire & smoke #AcmeLeak", created_at=START.isoformat(),
        lang="en", url="https://social.example/ann/status/1",
        author={"id": "a1", "handle": "ann", "followers": 5000},
        sentiment=Sentiment("negative", {}), engagement={"likes": 3},
    ), START)

    def window(i: int, negative: int, score: float) -> WindowObservation:
        start = START + i * STEP
        return WindowObservation("acme-mobile", start, start + STEP, 200, negative, 80.0, 8.0,
                                 0.1, 0.5, score, score)

    alerts: list[Alert] = []
    for observation in (window(0, 40, 0.7), window(1, 130, 0.95), window(2, 5, 0.0)):
        alerts.extend(incidents.update(observation))
    assert [a.status for a in alerts] == [OPENED, UPDATED, RESOLVED]
    return alerts


@dataclass
class Hook:
    """A real local webhook receiver whose answers the test scripts."""

    answers: dict[str, list[tuple[int, dict[str, str]]]] = field(default_factory=dict)
    # requests per name held unanswered until the test ends: the sender's timeout must fire
    stalls: dict[str, int] = field(default_factory=dict)
    released: asyncio.Event = field(default_factory=asyncio.Event)
    received: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    keys: dict[str, list[str]] = field(default_factory=dict)
    base: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self.keys.setdefault(name, []).append(request.headers.get("Idempotency-Key", ""))
        if self.stalls.get(name, 0) > 0:
            self.stalls[name] -= 1
            await self.released.wait()
            return web.Response(status=504, text="given up")
        scripted = self.answers.get(name)
        status, headers = scripted.pop(0) if scripted else (200, {})
        if status == 200:
            self.received.setdefault(name, []).append(orjson.loads(await request.read()))
        return web.Response(status=status, headers=headers, text="ok" if status == 200 else "no")

    def url(self, name: str) -> str:
        return f"{self.base}/hook/{name}"


@pytest.fixture
async def hook() -> AsyncIterator[Hook]:
    receiver = Hook()
    app = web.Application()
    app.router.add_post("/hook/{name}", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    receiver.base = f"http://127.0.0.1:{port}"
    yield receiver
    receiver.released.set()
    await runner.cleanup()


def closed_port() -> int:
    """A port nothing listens on (bound, then released): connections are refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def rules(**urls: str) -> RoutingRules:
    """One destination per keyword, each taking every alert from info up."""
    return RoutingRules.from_config({
        "destinations": {name: {"url": url, "style": "json" if name.startswith("json")
                                else "slack"} for name, url in urls.items()},
        "routes": [{"min_severity": "info", "to": list(urls)}],
    })


class Recorder:
    """Captures dead letters, outcomes and the backoff waits (no real waiting)."""

    def __init__(self) -> None:
        self.dead: list[DeadLetter] = []
        self.waits: list[float] = []
        self.outcomes: list[str] = []

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        await asyncio.sleep(0)

    def notifier(self, routes: RoutingRules, **options: Any) -> WebhookNotifier:
        defaults: dict[str, Any] = {
            "max_attempts": 4, "base_delay_s": 0.01, "max_delay_s": 2.0, "timeout_s": 2.0,
            "on_dead_letter": self.dead.append, "on_outcome": self.outcomes.append,
            "sleep": self.sleep, "rng": random.Random(1),
        }
        defaults.update(options)
        return WebhookNotifier(routes, **defaults)


async def test_delivers_slack_and_json_bodies_with_idempotency_key(hook: Hook) -> None:
    recorder = Recorder()
    notifier = recorder.notifier(rules(team=hook.url("team"), json_sre=hook.url("sre")))
    await notifier.start()
    opened = crisis_alerts()[0]
    assert notifier.enqueue(opened) is True
    await notifier.stop(drain_timeout=5.0)
    [slack] = hook.received["team"]
    assert slack["text"].startswith("CRISIS OPENED for Acme Mobile (warning)")
    assert slack["blocks"][0]["type"] == "header"
    assert slack["blocks"][-1]["type"] == "context"
    # mrkdwn control characters are escaped, links use Slack's <url|label> form
    sample_block = slack["blocks"][-2]["text"]["text"]
    assert "&lt;battery&gt; fire &amp; smoke" in sample_block
    assert "<https://social.example/ann/status/1|link>" in sample_block
    [generic] = hook.received["sre"]
    assert generic == orjson.loads(orjson.dumps(opened.to_dict()))
    assert hook.keys["team"] == hook.keys["sre"] == ["acme-mobile/acme-mobile-20250303T1000Z/0"]
    assert recorder.outcomes.count("delivered") == 2 and recorder.dead == []


async def test_retries_5xx_with_growing_jittered_backoff_then_succeeds(hook: Hook) -> None:
    hook.answers["team"] = [(503, {}), (500, {}), (502, {})]
    recorder = Recorder()
    notifier = recorder.notifier(rules(team=hook.url("team")), base_delay_s=0.1)
    await notifier.start()
    notifier.enqueue(crisis_alerts()[0])
    await notifier.stop(drain_timeout=5.0)
    assert len(hook.keys["team"]) == 4 and len(hook.received["team"]) == 1
    assert recorder.dead == []
    # attempt n waits in [base * 2**(n-1) / 2, base * 2**(n-1)]
    assert len(recorder.waits) == 3
    for n, wait in enumerate(recorder.waits, start=1):
        assert 0.1 * 2 ** (n - 1) / 2 <= wait <= 0.1 * 2 ** (n - 1)
    assert recorder.outcomes.count("retried") == 3


async def test_400_is_dead_lettered_at_once(hook: Hook) -> None:
    hook.answers["team"] = [(400, {})]
    recorder = Recorder()
    notifier = recorder.notifier(rules(team=hook.url("team")))
    await notifier.start()
    opened = crisis_alerts()[0]
    notifier.enqueue(opened)
    await notifier.stop(drain_timeout=5.0)
    assert len(hook.keys["team"]) == 1
    [letter] = recorder.dead
    assert (letter.reason, letter.attempts, letter.detail) == ("rejected", 1, "HTTP 400")
    record = letter.to_dict()
    assert record["destination"] == "team" and "url" not in record
    assert record["alert"]["idempotency_key"] == opened.idempotency_key
    # the topic's bytes read back as the typed record, its alert whole
    published = ALERT_DEAD_LETTERS.decode(ALERT_DEAD_LETTERS.encode(letter.to_event()))
    assert Alert.from_event(published.alert) == opened
    assert orjson.loads(ALERT_DEAD_LETTERS.encode(letter.to_event())) == record


async def test_429_waits_for_retry_after(hook: Hook) -> None:
    hook.answers["team"] = [(429, {"Retry-After": "1"}), (429, {"Retry-After": "7"})]
    recorder = Recorder()
    notifier = recorder.notifier(rules(team=hook.url("team")), max_delay_s=5.0)
    await notifier.start()
    notifier.enqueue(crisis_alerts()[0])
    await notifier.stop(drain_timeout=5.0)
    assert len(hook.received["team"]) == 1
    # the header is honoured, and capped at max_delay_s
    assert recorder.waits == [1.0, 5.0]


async def test_timeouts_are_retried(hook: Hook) -> None:
    hook.stalls["team"] = 1
    recorder = Recorder()
    notifier = recorder.notifier(rules(team=hook.url("team")), timeout_s=2.0)
    await notifier.start()
    notifier.enqueue(crisis_alerts()[0])
    await notifier.stop(drain_timeout=10.0)
    assert len(hook.received["team"]) == 1
    assert recorder.outcomes.count("retried") == 1 and recorder.dead == []


async def test_destination_down_is_dead_lettered_after_retries_and_spares_the_others(
        hook: Hook) -> None:
    recorder = Recorder()
    down = f"http://127.0.0.1:{closed_port()}/hook"
    notifier = recorder.notifier(rules(down=down, team=hook.url("team")), max_attempts=3)
    await notifier.start()
    opened = crisis_alerts()[0]
    assert notifier.enqueue(opened) is True
    await notifier.stop(drain_timeout=5.0)
    assert len(hook.received["team"]) == 1
    [letter] = recorder.dead
    assert (letter.reason, letter.attempts, letter.destination.name) == (
        "retries_exhausted", 3, "down")
    assert "ClientConnectorError" in letter.detail
    assert len(recorder.waits) == 2


async def test_async_dead_letter_callback_is_awaited(hook: Hook) -> None:
    published: list[dict[str, Any]] = []

    async def publish(letter: DeadLetter) -> None:
        await asyncio.sleep(0)
        published.append(letter.to_dict())

    hook.answers["team"] = [(404, {})]
    notifier = Recorder().notifier(rules(team=hook.url("team")), on_dead_letter=publish)
    await notifier.start()
    notifier.enqueue(crisis_alerts()[0])
    await notifier.stop(drain_timeout=5.0)
    assert [p["reason"] for p in published] == ["rejected"]


async def test_full_queue_dead_letters_without_blocking() -> None:
    recorder = Recorder()
    notifier = recorder.notifier(rules(team="http://127.0.0.1:9/hook"), queue_size=1)
    opened, updated, _ = crisis_alerts()
    # not started: nothing drains the queue, and enqueue must still return at once
    assert notifier.enqueue(opened) is True
    assert notifier.enqueue(updated) is False
    assert [d.reason for d in recorder.dead] == ["queue_full"]
    assert notifier.queued == 1
    await notifier.stop(drain_timeout=0.1)
    assert [d.reason for d in recorder.dead] == ["queue_full", "shutdown"]


async def test_redelivered_alert_is_sent_once(hook: Hook) -> None:
    recorder = Recorder()
    notifier = recorder.notifier(rules(team=hook.url("team")))
    await notifier.start()
    opened, updated, resolved = crisis_alerts()
    for alert in (opened, opened, updated, Alert.from_dict(updated.to_dict()), resolved):
        notifier.enqueue(alert)
    await notifier.stop(drain_timeout=5.0)
    assert [r["text"].split(" for ")[0] for r in hook.received["team"]] == [
        "CRISIS OPENED", "CRISIS UPDATE", "CRISIS RESOLVED"]
    assert recorder.outcomes.count("deduplicated") == 2


async def test_dead_lettered_alert_may_be_retried_on_redelivery(hook: Hook) -> None:
    hook.answers["team"] = [(400, {})]
    recorder = Recorder()
    notifier = recorder.notifier(rules(team=hook.url("team")))
    await notifier.start()
    opened = crisis_alerts()[0]
    notifier.enqueue(opened)
    for _ in range(500):  # until the 400 has come back (bounded, not a timing assertion)
        if recorder.dead:
            break
        await asyncio.sleep(0.01)
    notifier.enqueue(opened)
    await notifier.stop(drain_timeout=5.0)
    assert len(hook.keys["team"]) == 2 and len(hook.received["team"]) == 1


async def test_same_severity_updates_are_held_to_one_per_cooldown(hook: Hook) -> None:
    now = [0.0]
    recorder = Recorder()
    notifier = recorder.notifier(rules(team=hook.url("team")), update_cooldown_s=60.0,
                                 clock=lambda: now[0])
    await notifier.start()
    opened, updated, resolved = crisis_alerts()
    same = replace(updated, sequence=5, previous_severity=None)
    calmer = replace(same, sequence=6, severity=Severity.WARNING)
    later = replace(same, sequence=7)
    worse = replace(calmer, sequence=8, severity=Severity.CRITICAL)
    notifier.enqueue(opened)
    now[0] = 10.0
    notifier.enqueue(calmer)           # held: within 60 s of the open, not more severe
    notifier.enqueue(worse)            # severity up: sent
    notifier.enqueue(same)             # held: same severity as the last sent
    now[0] = 100.0
    notifier.enqueue(later)            # cooldown over: sent
    notifier.enqueue(resolved)         # resolutions always go through
    await notifier.stop(drain_timeout=5.0)
    sent = [key.rsplit("/", 1)[1] for key in hook.keys["team"]]
    assert sent == ["0", "8", "7", "2"]
    assert recorder.outcomes.count("suppressed") == 2


async def test_stop_dead_letters_what_it_cannot_deliver() -> None:
    recorder = Recorder()
    down = f"http://127.0.0.1:{closed_port()}/hook"

    async def slow_sleep(seconds: float) -> None:
        await asyncio.sleep(10)

    notifier = recorder.notifier(rules(down=down), max_attempts=10, sleep=slow_sleep)
    await notifier.start()
    opened, updated, _ = crisis_alerts()
    notifier.enqueue(opened)
    notifier.enqueue(updated)
    await notifier.stop(drain_timeout=0.2)
    assert sorted((d.alert.sequence, d.reason) for d in recorder.dead) == [
        (0, "shutdown"), (1, "shutdown")]
    assert notifier.enqueue(replace(opened, sequence=9)) is False


def test_routing_decides_who_gets_what() -> None:
    routes = RoutingRules.from_config({
        "destinations": {"pr": {"url": "http://127.0.0.1:9/pr"},
                         "exec": {"url": "http://127.0.0.1:9/exec"}},
        "routes": [{"min_severity": "warning", "to": ["pr"]},
                   {"min_severity": "critical", "kinds": [CRISIS], "to": ["exec"]}],
    })
    recorder = Recorder()
    notifier = recorder.notifier(routes)
    opened, updated, _ = crisis_alerts()
    notifier.enqueue(opened)    # warning
    notifier.enqueue(updated)   # critical
    assert {name: queue.qsize() for name, queue in notifier._queues.items()} == {
        "pr": 2, "exec": 1}


def test_slack_body_header_and_text() -> None:
    body = slack_body(crisis_alerts()[1])
    assert body["blocks"][0]["text"]["text"] == "Crisis update: Acme Mobile (critical)"
    assert body["text"].startswith("CRISIS UPDATE for Acme Mobile (critical, up from warning)")


def test_retry_after_forms() -> None:
    now = datetime(2025, 3, 3, 10, 0, tzinfo=UTC)
    assert retry_after_seconds("120") == 120.0
    assert retry_after_seconds("Mon, 03 Mar 2025 10:00:30 GMT", now) == 30.0
    assert retry_after_seconds("Mon, 03 Mar 2025 09:00:00 GMT", now) == 0.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None
