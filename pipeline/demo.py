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
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from pipeline.config import Settings, load_settings, settings_env
from pipeline.connectors.generator import CrisisPlan, FirehoseGenerator
from pipeline.connectors.replay import produce_records
from pipeline.demo_store import check_store, store_worker_env
from pipeline.demo_watch import CrisisTiming, Watch
from pipeline.desk.demo_login import DemoLogin
from pipeline.transport.broker import PRODUCER_BATCH_BYTES, EmbeddedBroker, free_port
from pipeline.transport.topics import ensure_topics


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


# Feed rates one worker process (all stages) keeps up with: lower when the sentiment model
# shares a CPU's cores with the broker and the other stages, since a backlog makes the crisis
# windows' mentions late (measured with `mentions demo --rate`: see benchmarks/README.md).
CPU_SENTIMENT_RATE_PER_S = 120.0
RATE_PER_S = 400.0


def default_rate(settings: Settings) -> float:
    """The demo's feed rate when none is asked for: lower when sentiment runs on a CPU."""
    if "sentiment" not in settings.stages:
        return RATE_PER_S
    from pipeline.stages.sentiment.engine import choose_device

    on_gpu = choose_device(settings.sentiment_device).type == "cuda"
    return RATE_PER_S if on_gpu else CPU_SENTIMENT_RATE_PER_S


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


def run_demo(options: DemoOptions) -> int:
    """Run the demo (see the module docstring); return the process exit code."""
    workdir = Path(tempfile.mkdtemp(prefix="mentions-demo-"))
    broker: EmbeddedBroker | None = None
    workers: list[subprocess.Popen[bytes]] = []
    if options.broker is None:
        broker = EmbeddedBroker.start(log_path=workdir / "broker.log")
        print(f"embedded Tansu broker on {broker.bootstrap} (pid {broker.pid})", flush=True)
    settings = demo_settings(options, workdir, broker)
    login = DemoLogin.create(workdir)
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        ensure_topics(settings)
        workers += _start_workers(settings, options, workdir, login)
        for index, process in enumerate(workers):
            url = f"http://127.0.0.1:{options.web_port + index}/readyz"
            if not wait_until_ready(url, process, 90):
                print(f"worker {index} did not become ready; log: {workdir}/worker-{index}.log",
                      flush=True)
                return 1
        print(f"stages: {', '.join(settings.stages)}, store; logs in {workdir}", flush=True)
        start = datetime.now(UTC) - HISTORY
        print(login.announce(settings, start, options.duration_s, options.time_scale), flush=True)
        crisis = _announce_crisis(options, start)
        code, watched = _run_loop(settings, options, start, crisis, stop)
        for process in workers:
            _stop(process)
        return code if check_store(settings, *watched) else 1
    finally:
        signal.signal(signal.SIGINT, previous)
        for process in workers:
            _stop(process)
        if broker is not None:
            broker.stop()


def demo_settings(options: DemoOptions, workdir: Path, broker: EmbeddedBroker | None) -> Settings:
    """The settings every process of the demo runs with."""
    overrides = {} if broker is None else {"producer_batch_bytes": PRODUCER_BATCH_BYTES}
    return load_settings(
        broker=options.broker if broker is None else broker.bootstrap,
        crisis_lateness_s=max(120.0, LATENESS_WALL_S * options.time_scale),
        store_url=options.store_url or f"chdb://{workdir / 'store'}",
        desk_port=desk_port_for(options.desk_port),
        **overrides,
    )


def _start_workers(settings: Settings, options: DemoOptions, workdir: Path,
                   login: DemoLogin) -> list[subprocess.Popen[bytes]]:
    workers = []
    for index in range(options.workers):
        port = options.web_port + index
        # one process owns an embedded store: the first worker sinks and serves the desk
        workers.append(_start_worker(
            settings, port, workdir / f"worker-{index}.log",
            {**store_worker_env(settings), **login.env()} if index == 0 else None,
        ))
        print(f"worker {index} (pid {workers[-1].pid}): metrics on "
              f"http://127.0.0.1:{port}/metrics", flush=True)
    return workers


def _announce_crisis(options: DemoOptions, start: datetime) -> CrisisPlan | None:
    """Say how event time runs, and plan the crisis (when asked for) and say when it starts."""
    print(f"event time runs {options.time_scale:.0f}x the wall clock from "
          f"{start:%Y-%m-%d %H:%M} UTC: the detectors' one-day warm-up takes "
          f"{86_400 / options.time_scale:.0f} s", flush=True)
    if not options.crisis:
        return None
    crisis = CrisisPlan(brand_id="acme-mobile", start_after=HISTORY,
                        duration=timedelta(hours=2), intensity=3.0)
    print(f"a crisis about acme-mobile starts at event time "
          f"{start + crisis.start_after:%Y-%m-%d %H:%M} UTC, about "
          f"{crisis.start_after.total_seconds() / options.time_scale:.0f} s from now",
          flush=True)
    return crisis


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


def _run_loop(
    settings: Settings, options: DemoOptions, start: datetime, crisis: CrisisPlan | None,
    stop: threading.Event,
) -> tuple[int, tuple[set[str], dict[str, set[str]]]]:
    """Feed the firehose until the duration ends or Ctrl-C, then let the pipeline settle.

    Returns the exit code, and the mention ids and alert keys seen (for :func:`check_store`).
    """
    rate_per_s = options.rate_per_s or default_rate(settings)
    print(f"feeding up to {rate_per_s:.0f} mentions/s (--rate; the firehose's daily rhythm "
          "makes nights quieter)", flush=True)
    timing = CrisisTiming(
        brand=crisis.brand_id if crisis else None,
        began_event=start + crisis.start_after if crisis else None,
    )
    watch = Watch(settings, timing)
    # the background's event-time rate gives ``rate_per_s`` slots per wall second
    firehose = FirehoseGenerator(
        seed=options.seed, start=start, rate_per_s=rate_per_s / options.time_scale,
        crisis=crisis,
    )
    records = _paced(firehose, start, options.time_scale, stop, watch)
    producer = threading.Thread(target=produce_records, args=(settings, records), daemon=True)
    producer.start()
    deadline = time.monotonic() + options.duration_s if options.duration_s else None
    try:
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            watch.tick()
        stop.set()
        producer.join(timeout=10)
        watch.settle()
        watch.summary()
    finally:
        watch.close()
    return 0, (watch.scored_ids, watch.alert_keys)


def _paced(firehose: FirehoseGenerator, start: datetime, time_scale: float,
           stop: threading.Event, watch: Watch) -> Iterator[bytes]:
    """The firehose's mentions, each when the compressed clock reaches its event time."""
    wall_start = time.monotonic()
    timing = watch.timing
    for mention in firehose.mentions():
        if stop.is_set():
            return
        event_offset = datetime.fromisoformat(mention["created_at"]) - start
        ahead = wall_start + event_offset.total_seconds() / time_scale - time.monotonic()
        if ahead > 0.005:
            time.sleep(ahead)
        if (timing.first_sent_wall is None and timing.began_event is not None
                and start + event_offset >= timing.began_event):
            timing.first_sent_wall = time.monotonic()
        watch.progress.sent += 1
        yield orjson.dumps(mention)
