"""What ``mentions demo`` watches: the output, dead-letter and alerts topics, and the lag.

:class:`Watch` tails those topics from the start, counts what flowed (:class:`Progress`, one
line a second), prints alerts as they arrive, times the injected crisis
(:class:`CrisisTiming`) and remembers the mention ids and alert keys the store is checked
against at the end (:mod:`pipeline.demo_store`).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson

from pipeline.config import Settings
from pipeline.stages.alerts.render import render_text
from pipeline.transport.connection import kafka_client_options
from pipeline.transport.topics import decode_batch, uncommitted_by_partition


def output_topic(settings: Settings) -> str:
    """The topic the last running stage writes mentions to."""
    for stage, topic in (("sentiment", "scored"), ("dedup", "unique")):
        if stage in settings.stages:
            return settings.topic(topic)
    return settings.topic("routed")


class TopicTail:
    """Reads every partition of some topics from the start (``assign()``, no group)."""

    def __init__(self, settings: Settings, topics: list[str]) -> None:
        from kafka import KafkaConsumer, TopicPartition

        self.consumer = KafkaConsumer(
            client_id=f"{settings.app_id}-demo-tail", enable_auto_commit=False,
            auto_offset_reset="earliest", consumer_timeout_ms=200,
            **kafka_client_options(settings),
        )
        partitions = []
        for topic in topics:
            for partition in sorted(self.consumer.partitions_for_topic(topic) or {0}):
                partitions.append(TopicPartition(topic, partition))
        self.consumer.assign(partitions)
        self.consumer.seek_to_beginning()

    def poll(self) -> list[Any]:
        """Records that arrived since the last call."""
        records = []
        for batch in self.consumer.poll(timeout_ms=100, max_records=5000).values():
            records.extend(batch)
        return records

    def close(self) -> None:
        """Close the consumer."""
        self.consumer.close()


def consumer_lag(settings: Settings, admin: Any, consumer: Any, *, stage: str = "ingest",
                 topic: str | None = None) -> int | None:
    """Records of a topic (the raw one) not yet committed by a batched stage's group."""
    try:
        return sum(uncommitted_by_partition(
            admin, consumer, f"{settings.app_id}-{stage}", topic or settings.topic("raw"),
        ).values())
    except Exception:
        return None


class Progress:
    """Counts what flowed, and prints one line per second (in place on a terminal)."""

    def __init__(self, out: Callable[[str], None]) -> None:
        self.out = out
        self.started = time.monotonic()
        self.sent = 0
        self.received = 0
        self.dead = 0
        self.duplicates = 0
        self.alerts = 0
        self._last = (self.started, 0, 0)
        self.tty = sys.stdout.isatty()

    def line(self, lag: int | None) -> str:
        """The progress line, with rates since the previous call."""
        now = time.monotonic()
        last_time, last_sent, last_received = self._last
        elapsed = max(now - last_time, 1e-6)
        self._last = (now, self.sent, self.received)
        return (
            f"[{now - self.started:5.0f}s] in {(self.sent - last_sent) / elapsed:7.0f}/s  "
            f"out {(self.received - last_received) / elapsed:7.0f}/s  "
            f"lag {lag if lag is not None else '?':>6}  sent {self.sent:>7}  "
            f"out {self.received:>7}  dup {self.duplicates:>5}  dead {self.dead:>4}  "
            f"alerts {self.alerts}"
        )

    def show(self, lag: int | None) -> None:
        """Print the line: overwrite in place on a terminal, else one line per call."""
        text = self.line(lag)
        if self.tty:
            sys.stdout.write("\r" + text)
            sys.stdout.flush()
        else:
            self.out(text)


@dataclass
class CrisisTiming:
    """When the injected crisis began and when its incident opened, in both clocks."""

    brand: str | None = None
    began_event: datetime | None = None
    first_sent_wall: float | None = None
    opened_event: datetime | None = None
    opened_wall: float | None = None
    incidents: dict[str, list[str]] = field(default_factory=dict)

    def note_alert(self, alert: dict[str, Any]) -> str | None:
        """Record an alert event; the timing line to print when it opens the crisis."""
        self.incidents.setdefault(f"{alert['brand']} {alert['incident_id']}", []).append(
            alert["status"])
        if (alert["status"] != "open" or alert["brand"] != self.brand or self.opened_wall
                is not None or self.began_event is None or self.first_sent_wall is None):
            return None
        self.opened_wall = time.monotonic()
        self.opened_event = datetime.fromisoformat(alert["window_end"])
        return (f"  -> opened {_minutes(self.opened_event - self.began_event)} of event time "
                f"after the crisis began (window closed), "
                f"{self.opened_wall - self.first_sent_wall:.1f} s of wall time after its first "
                "mention was sent")


def _minutes(span: timedelta) -> str:
    return f"{span.total_seconds() / 60:.0f} min"


class Watch:
    """The demo's view of the pipeline while it runs (see the module docstring)."""

    def __init__(self, settings: Settings, timing: CrisisTiming) -> None:
        from kafka.admin import KafkaAdminClient

        self.settings = settings
        self.timing = timing
        self.progress = Progress(lambda text: print(text, flush=True))
        # the distinct mentions on the output topic, and each incident's alert keys
        self.scored_ids: set[str] = set()
        self.alert_keys: dict[str, set[str]] = {}
        self.tail = TopicTail(settings, [output_topic(settings), settings.topic("deadletter"),
                                         settings.alerts_topic])
        self.admin = KafkaAdminClient(client_id=f"{settings.app_id}-demo",
                                      **kafka_client_options(settings))

    def close(self) -> None:
        """Close the consumer and the admin client."""
        self.tail.close()
        self.admin.close()

    def lag(self, *, stage: str = "ingest", topic: str | None = None) -> int | None:
        """A batched stage's lag on a topic (ingest's on the raw topic by default)."""
        return consumer_lag(self.settings, self.admin, self.tail.consumer, stage=stage,
                            topic=topic)

    def tick(self) -> None:
        """Read what arrived and show the progress line; returns about a second after the last."""
        self.drain()
        self.progress.show(self.lag())
        time.sleep(max(0.0, 1.0 - (time.monotonic() - self.progress._last[0])))

    def settle(self, timeout_s: float = 60.0) -> None:
        """Wait until what is in flight is through, or ``timeout_s`` passed.

        Through: ingest and the store sink have no lag left, and the later stages have
        delivered nothing new for 3 s.
        """
        settings = self.settings
        settle_until = time.monotonic() + timeout_s
        last_count, last_change = -1, time.monotonic()
        while time.monotonic() < settle_until:
            self.drain()
            if self.progress.received != last_count:
                last_count, last_change = self.progress.received, time.monotonic()
            store_lags = [self.lag(stage="store", topic=topic)
                          for topic in (settings.topic("scored"), settings.alerts_topic)]
            if self.lag() == 0 and store_lags == [0, 0] and time.monotonic() - last_change > 3:
                break
            time.sleep(0.5)
        self.drain()

    def summary(self) -> None:
        """Print the last progress line, the totals and each incident's statuses."""
        progress = self.progress
        if progress.tty:
            sys.stdout.write("\n")
        progress.show(self.lag())
        print(f"done: {progress.sent} mentions sent, {progress.received} reached "
              f"{output_topic(self.settings)}, {progress.dead} dead-lettered, "
              f"{progress.alerts} alert events", flush=True)
        for incident, statuses in self.timing.incidents.items():
            print(f"incident {incident}: {' -> '.join(statuses)}", flush=True)

    def drain(self) -> None:
        """Count every record that arrived; print alerts (and the crisis timing) as they come."""
        settings, progress = self.settings, self.progress
        for record in self.tail.poll():
            if record.topic == settings.alerts_topic:
                progress.alerts += 1
                alert = orjson.loads(record.value)
                self.alert_keys.setdefault(alert["incident_id"], set()).add(
                    alert["idempotency_key"])
                if progress.tty:
                    sys.stdout.write("\n")
                print(render_text(alert), flush=True)
                note = self.timing.note_alert(alert)
                if note:
                    print(note, flush=True)
            elif record.topic == settings.topic("deadletter"):
                progress.dead += 1
            else:
                mentions = decode_batch(record.value)
                self.scored_ids.update(str(mention.get("id")) for mention in mentions)
                progress.received += len(mentions)
                progress.duplicates += sum(1 for m in mentions if m.get("duplicate_of"))
