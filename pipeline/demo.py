"""``mentions demo``: the whole pipeline on an embedded broker, with a live progress line.

It starts Tansu (unless ``--broker`` is given), creates the topics, starts the Faust
worker process(es) (the same ``mentions worker`` production runs), feeds the synthetic
multilingual firehose (with an injected crisis) into ``mentions.raw`` and shows, once a
second, mentions/s in and out and the consumer lag; alerts are printed in plain words as they
fire. Each worker serves ``/metrics`` while it runs. The first worker also runs the store
sink into an embedded listening store (in the demo's folder unless ``--store-url`` says
otherwise) and serves the desk from it; at the end the demo checks that the store holds
exactly the distinct mentions that reached ``mentions.scored`` and the alert events that
reached the alerts topic. Everything it started is stopped by pid at the end.

Event time is compressed: the crisis detector learns each brand's normal level and daily
rhythm for a day of event time before it may alert, so the firehose's ``created_at`` runs
``time_scale`` times faster than the wall clock (default 2400: a day in 36 s) and the feeder
paces on it. The history starts 30 event-hours before the demo started, so the crisis begins
about 45 s in, at the demo's own wall-clock start time in event time. The crisis stage's
allowed lateness is scaled with it (1.5 s of wall-clock jitter between upstream partitions
and batches is an hour of event time).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from pipeline.config import Settings, load_settings, settings_env
from pipeline.connectors.generator import CrisisPlan, FirehoseGenerator
from pipeline.connectors.replay import produce_records
from pipeline.desk.demo_login import DemoLogin
from pipeline.stages.alerts.render import render_text
from pipeline.transport.broker import PRODUCER_BATCH_BYTES, EmbeddedBroker, free_port
from pipeline.transport.connection import kafka_client_options
from pipeline.transport.topics import (
    decode_batch,
    ensure_topics,
    uncommitted_by_partition,
)

if TYPE_CHECKING:
    from pipeline.store.client import ListeningStore


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """What ``mentions demo`` was asked to do."""

    duration_s: float = 150.0
    # None: what one worker keeps up with on this machine (see ``default_rate``)
    rate_per_s: float | None = None
    workers: int = 1
    web_port: int = 6066
    crisis: bool = True
    seed: int = 7
    broker: str | None = None
    # event seconds per wall second (see the module docstring)
    time_scale: float = 2400.0
    desk_port: int = 8080
    # None: an embedded store in the demo's own folder
    store_url: str | None = None


# event-time history before the crisis: the detector's one-day warm-up, and some margin
HISTORY = timedelta(hours=30)
# wall-clock jitter between upstream partitions that the crisis windows wait for
LATENESS_WALL_S = 1.5


# Feed rates one worker process (all stages) keeps up with. About a fifth of the firehose
# needs the sentiment model (the rest are copies that inherit a result); on this 2-core CPU
# the model scores ~90 distinct mentions/s alone and shares the cores with the broker and the
# other stages: 120 mentions/s kept the lag near zero, 400 built a backlog that made the
# crisis windows' mentions late (measured with `mentions demo --rate`).
CPU_SENTIMENT_RATE_PER_S = 120.0
RATE_PER_S = 400.0


def default_rate(settings: Settings) -> float:
    """The demo's feed rate when none is asked for: lower when sentiment runs on a CPU."""
    if "sentiment" not in settings.stages:
        return RATE_PER_S
    from pipeline.stages.sentiment.engine import choose_device

    on_gpu = choose_device(settings.sentiment_device).type == "cuda"
    return RATE_PER_S if on_gpu else CPU_SENTIMENT_RATE_PER_S


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


def wait_until_ready(url: str, process: subprocess.Popen[bytes], timeout_s: float) -> bool:
    """Poll a worker's /readyz until it answers 200; False if it exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


def _start_worker(settings: Settings, web_port: int, log_path: Path,
                  extra_env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        **settings_env(settings),
        **(extra_env or {}),
        "PIPELINE_WEB_PORT": str(web_port),
        "PIPELINE_DATA_DIR": str(log_path.parent / f"worker-{web_port}"),
        "PYTHONUNBUFFERED": "1",
    }
    log = log_path.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "worker", "--loglevel", "warning"],
        env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def _stop(process: subprocess.Popen[bytes], timeout_s: float = 15.0) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout_s)


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


def run_demo(options: DemoOptions) -> int:
    """Run the demo (see the module docstring); return the process exit code."""
    workdir = Path(tempfile.mkdtemp(prefix="mentions-demo-"))
    broker: EmbeddedBroker | None = None
    workers: list[subprocess.Popen[bytes]] = []
    if options.broker is None:
        broker = EmbeddedBroker.start(log_path=workdir / "broker.log")
        bootstrap = broker.bootstrap
        print(f"embedded Tansu broker on {bootstrap} (pid {broker.pid})", flush=True)
    else:
        bootstrap = options.broker
    overrides = {} if broker is None else {"producer_batch_bytes": PRODUCER_BATCH_BYTES}
    settings = load_settings(
        broker=bootstrap, crisis_lateness_s=max(120.0, LATENESS_WALL_S * options.time_scale),
        store_url=options.store_url or f"chdb://{workdir / 'store'}",
        desk_port=desk_port_for(options.desk_port),
        **overrides,
    )
    login = DemoLogin.create(workdir)
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        ensure_topics(settings)
        for index in range(options.workers):
            port = options.web_port + index
            # one process owns an embedded store: the first worker sinks and serves the desk
            workers.append(_start_worker(
                settings, port, workdir / f"worker-{index}.log",
                {**store_worker_env(settings), **login.env()} if index == 0 else None,
            ))
            print(f"worker {index} (pid {workers[-1].pid}): metrics on "
                  f"http://127.0.0.1:{port}/metrics", flush=True)
        for index, process in enumerate(workers):
            url = f"http://127.0.0.1:{options.web_port + index}/readyz"
            if not wait_until_ready(url, process, 90):
                print(f"worker {index} did not become ready; log: {workdir}/worker-{index}.log",
                      flush=True)
                return 1
        print(f"stages: {', '.join(settings.stages)}, store; logs in {workdir}", flush=True)
        start = datetime.now(UTC) - HISTORY
        print(login.announce(settings, start, options.duration_s, options.time_scale), flush=True)
        crisis = None
        print(f"event time runs {options.time_scale:.0f}x the wall clock from "
              f"{start:%Y-%m-%d %H:%M} UTC: the detectors' one-day warm-up takes "
              f"{86_400 / options.time_scale:.0f} s", flush=True)
        if options.crisis:
            crisis = CrisisPlan(
                brand_id="acme-mobile", start_after=HISTORY, duration=timedelta(hours=2),
                intensity=3.0,
            )
            print(f"a crisis about acme-mobile starts at event time "
                  f"{start + crisis.start_after:%Y-%m-%d %H:%M} UTC, about "
                  f"{crisis.start_after.total_seconds() / options.time_scale:.0f} s from now",
                  flush=True)
        scored_ids: set[str] = set()
        alert_keys: dict[str, set[str]] = {}
        code = _run_loop(settings, options, start, crisis, stop, scored_ids, alert_keys)
        for process in workers:
            _stop(process)
        return code if check_store(settings, scored_ids, alert_keys) else 1
    finally:
        signal.signal(signal.SIGINT, previous)
        for process in workers:
            _stop(process)
        if broker is not None:
            broker.stop()


def desk_port_for(port: int) -> int:
    """``port`` if this process may listen on it, else a free one (0 gets one too).

    Chosen here, so that the address the demo prints is the one the desk serves.
    """
    return port if port and port_is_free(port) else free_port()


def port_is_free(port: int) -> bool:
    """True when this process can listen on ``port`` of the loopback interface."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def store_worker_env(settings: Settings) -> dict[str, str]:
    """What makes a worker also the store's sink and the desk's server."""
    return {
        **settings_env(settings, ("store_url", "desk_port", "desk_host")),
        "PIPELINE_STAGES": ",".join((*settings.stages, "store")),
        "PIPELINE_DESK_IN_WORKER": "true",
    }


def check_store(settings: Settings, scored_ids: set[str],
                alert_keys: dict[str, set[str]]) -> bool:
    """True when the store holds exactly the mentions and alerts seen on their topics.

    ``alert_keys``: the idempotency keys of each incident's alerts on the alerts topic. Run
    once the store's worker has stopped: an embedded store opens in one process at a time.
    """
    from pipeline.store.client import ListeningStore, StoreUnavailable

    try:
        store = ListeningStore.open(settings)
    except StoreUnavailable as error:
        print(f"store: not readable ({error})", flush=True)
        return False
    try:
        mentions_kept = _check_stored_mentions(settings, store.mention_ids(), scored_ids)
        alerts_kept = _check_stored_alerts(settings, store, alert_keys)
    finally:
        store.close()
    return mentions_kept and alerts_kept


def _check_stored_alerts(settings: Settings, store: ListeningStore,
                         alert_keys: dict[str, set[str]]) -> bool:
    """True when the store holds exactly the alerts seen on the alerts topic, by incident."""
    seen = set().union(*alert_keys.values())
    stored = {alert["idempotency_key"] for incident_id in alert_keys
              for alert in (store.incident(incident_id) or {"history": []})["history"]}
    count = store.alert_count()
    if stored == seen and count == len(seen):
        print(f"store: {count} alert events of {len(alert_keys)} incident(s), exactly those "
              f"on {settings.alerts_topic}", flush=True)
        return True
    print(f"store: {count} alert events against {len(seen)} on {settings.alerts_topic}: "
          f"{len(seen - stored)} missing, {count - len(seen & stored)} unexpected", flush=True)
    return False


def _check_stored_mentions(settings: Settings, stored: set[str], scored_ids: set[str]) -> bool:
    """True when the store holds exactly the distinct mentions seen on the scored topic."""
    if stored == scored_ids:
        print(f"store: {len(stored)} distinct mentions, exactly the distinct ids on "
              f"{settings.topic('scored')}; browse them with: mentions desk --store-url "
              f"{settings.store_url}", flush=True)
        return True
    print(f"store: {len(stored)} distinct mentions against {len(scored_ids)} distinct ids on "
          f"{settings.topic('scored')}: {len(scored_ids - stored)} missing, "
          f"{len(stored - scored_ids)} unexpected", flush=True)
    return False


def _run_loop(
    settings: Settings, options: DemoOptions, start: datetime, crisis: CrisisPlan | None,
    stop: threading.Event, scored_ids: set[str], alert_keys: dict[str, set[str]],
) -> int:
    from kafka.admin import KafkaAdminClient

    rate_per_s = options.rate_per_s or default_rate(settings)
    print(f"feeding up to {rate_per_s:.0f} mentions/s (--rate; the firehose's daily rhythm "
          "makes nights quieter)", flush=True)
    # the background's event-time rate gives ``rate_per_s`` slots per wall second
    firehose = FirehoseGenerator(
        seed=options.seed, start=start, rate_per_s=rate_per_s / options.time_scale,
        crisis=crisis,
    )
    progress = Progress(lambda text: print(text, flush=True))
    timing = CrisisTiming(
        brand=crisis.brand_id if crisis else None,
        began_event=start + crisis.start_after if crisis else None,
    )
    wall_start = time.monotonic()

    def records() -> Any:
        for mention in firehose.mentions():
            if stop.is_set():
                return
            # pace on event time: the mention is sent when the compressed clock reaches it
            event_offset = datetime.fromisoformat(mention["created_at"]) - start
            ahead = wall_start + event_offset.total_seconds() / options.time_scale \
                - time.monotonic()
            if ahead > 0.005:
                time.sleep(ahead)
            if (timing.first_sent_wall is None and timing.began_event is not None
                    and start + event_offset >= timing.began_event):
                timing.first_sent_wall = time.monotonic()
            progress.sent += 1
            yield orjson.dumps(mention)

    producer = threading.Thread(target=produce_records, args=(settings, records()), daemon=True)
    producer.start()
    tail = TopicTail(settings, [output_topic(settings), settings.topic("deadletter"),
                                settings.alerts_topic])
    admin = KafkaAdminClient(client_id=f"{settings.app_id}-demo", **kafka_client_options(settings))
    deadline = time.monotonic() + options.duration_s if options.duration_s else None
    try:
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            _drain(tail, settings, progress, timing, scored_ids, alert_keys)
            progress.show(consumer_lag(settings, admin, tail.consumer))
            time.sleep(max(0.0, 1.0 - (time.monotonic() - progress._last[0])))
        stop.set()
        producer.join(timeout=10)
        # let the pipeline finish what is in flight: ingest and the store sink have no lag
        # left and the later stages have delivered nothing new for 3 s
        settle_until = time.monotonic() + 60
        last_count, last_change = -1, time.monotonic()
        while time.monotonic() < settle_until:
            _drain(tail, settings, progress, timing, scored_ids, alert_keys)
            if progress.received != last_count:
                last_count, last_change = progress.received, time.monotonic()
            lag = consumer_lag(settings, admin, tail.consumer)
            store_lags = [consumer_lag(settings, admin, tail.consumer, stage="store", topic=topic)
                          for topic in (settings.topic("scored"), settings.alerts_topic)]
            if lag == 0 and store_lags == [0, 0] and time.monotonic() - last_change > 3:
                break
            time.sleep(0.5)
        _drain(tail, settings, progress, timing, scored_ids, alert_keys)
        if progress.tty:
            sys.stdout.write("\n")
        progress.show(consumer_lag(settings, admin, tail.consumer))
        print(
            f"done: {progress.sent} mentions sent, {progress.received} reached "
            f"{output_topic(settings)}, {progress.dead} dead-lettered, "
            f"{progress.alerts} alert events",
            flush=True,
        )
        for incident, statuses in timing.incidents.items():
            print(f"incident {incident}: {' -> '.join(statuses)}", flush=True)
    finally:
        tail.close()
        admin.close()
    return 0


def _drain(tail: TopicTail, settings: Settings, progress: Progress, timing: CrisisTiming,
           scored_ids: set[str], alert_keys: dict[str, set[str]]) -> None:
    for record in tail.poll():
        if record.topic == settings.alerts_topic:
            progress.alerts += 1
            alert = orjson.loads(record.value)
            alert_keys.setdefault(alert["incident_id"], set()).add(alert["idempotency_key"])
            if progress.tty:
                sys.stdout.write("\n")
            print(render_text(alert), flush=True)
            note = timing.note_alert(alert)
            if note:
                print(note, flush=True)
        elif record.topic == settings.topic("deadletter"):
            progress.dead += 1
        else:
            mentions = decode_batch(record.value)
            scored_ids.update(str(mention.get("id")) for mention in mentions)
            progress.received += len(mentions)
            progress.duplicates += sum(1 for m in mentions if m.get("duplicate_of"))
