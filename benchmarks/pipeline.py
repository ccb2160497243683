"""End-to-end benchmark: the real pipeline on the embedded broker, against its ceilings.

In one run, on one fresh Tansu broker:

1. the transport ceiling: a raw aiokafka consume-and-produce loop;
2. the per-event Faust ceiling: an agent over ``stream.take(500, 0.05)`` that does nothing,
   and the same with one ``send`` per event (benchmarks/faust_baseline.py);
3. the pipeline (every stage in ``--stages``, default ingest + dedup, with brand rules and
   language identification inside ingest): ``N`` synthetic firehose mentions pre-loaded
   into ``mentions.raw``, then 1 and 2 ``mentions worker`` processes drain them (and 1
   worker without language identification, to show its cost). Sustained mentions/s per
   stage comes from the timestamps of the stage's output records, counted from the moment
   every worker is ready to the stage's last output; each stage's own cost (seconds inside
   its batches) from the workers' /metrics; the workers' CPU time and the machine's load
   average are recorded beside them, because this box is shared;
4. the ingest batch size swept (1 worker, every stage), for the throughput-vs-batch plot;
5. latency at a sustained rate below capacity, with 1 and 2 workers: per mention, from its
   raw record's timestamp to the timestamp of the record that carries it out of each stage
   (p50/p99, CDF plot).

Run: ``python -m benchmarks.pipeline [--mentions 100000] [--stages ingest,dedup]``
(``--quick``: the 1-worker run only, nothing written). Writes
benchmarks/results/pipeline.json and two PNG plots next to it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from benchmarks.common import RESULTS_DIR, write_results
from pipeline.config import Settings, load_settings, settings_env
from pipeline.connectors.generator import FirehoseGenerator
from pipeline.connectors.replay import WIDE_BATCH_BYTES, produce_records
from pipeline.transport.broker import (
    PRODUCER_BATCH_BYTES,
    EmbeddedBroker,
    free_port,
    wait_for_port,
)
from pipeline.transport.connection import kafka_client_options
from pipeline.transport.topics import decode_batch, ensure_topics


@dataclass(frozen=True, slots=True)
class StageSpec:
    """Where a stage reads and writes, and the consumer group whose commits show its progress.

    A new stage joins the benchmark with one entry here (and in ``pipeline.config``'s stage
    list); ``--stages`` picks the ones a run measures, in data-flow order.
    """

    name: str
    source: str
    output: str
    # consumer group = app id + this suffix ("" for the app's Faust agents)
    group_suffix: str


STAGES: dict[str, StageSpec] = {
    spec.name: spec for spec in (
        StageSpec("ingest", "raw", "routed", "-ingest"),
        StageSpec("dedup", "routed", "unique", ""),
        StageSpec("sentiment", "unique", "scored", ""),
    )
}
# the CPU stages: the default of ``--stages`` (sentiment has its own benchmark and wants a GPU)
CPU_STAGES = ("ingest", "dedup")
# The raw topic is fed as an upstream producer feeds it: one mention per record, records
# batched per partition (kafka-python's batch_size; Kafka's producers batch by default). The
# workers' own producers still send one record per batch (PRODUCER_BATCH_BYTES, which the
# embedded broker's end offsets need); the raw topic needs no exact end offsets, because the
# benchmark knows how many records it fed. Runs before 2026-11-29 20:00 UTC fed the raw topic
# one record per batch too; ``--raw-batch-bytes 1`` does that again (benchmarks/README.md).
RAW_BATCH_BYTES = WIDE_BATCH_BYTES
# seconds the latency run with several workers waits after they are all ready
REBALANCE_SETTLE_S = 5.0


# the row of the target (all CPU stages, one worker process)
ONE_WORKER = "pipeline, 1 worker"


def firehose(count: int, seed: int = 1) -> list[bytes]:
    """``count`` synthetic mentions as raw records (the benchmarks' load)."""
    start = datetime(2026, 11, 2, 12, tzinfo=UTC)
    return [orjson.dumps(m) for m in FirehoseGenerator(seed=seed, start=start).mentions(count)]


def fresh_settings(bootstrap: str, partitions: int, **overrides: Any) -> Settings:
    """Settings with unique topic and group names, topics created."""
    tag = f"b{os.getpid()}{time.monotonic_ns() % 1_000_000}"
    settings = load_settings(
        broker=bootstrap, app_id=tag, topic_prefix=tag, alerts_topic=f"{tag}.alerts",
        partitions=partitions, **{"producer_batch_bytes": PRODUCER_BATCH_BYTES, **overrides},
    )
    ensure_topics(settings)
    return settings


# --------------------------------------------------------------------------------------------
# ceilings
# --------------------------------------------------------------------------------------------


async def _aiokafka_passthrough(bootstrap: str, topic: str, count: int) -> float:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5,
                                max_batch_size=512 * 1024)
    await consumer.start()
    await producer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        consumer.assign([TopicPartition(topic, p) for p in partitions])
        await consumer.seek_to_beginning()
        moved = 0
        started = time.perf_counter()
        while moved < count:
            batches = await consumer.getmany(timeout_ms=100, max_records=5000)
            for records in batches.values():
                for record in records:
                    await producer.send(f"{topic}.copy", record.value)
                moved += len(records)
        await producer.flush()
        return moved / (time.perf_counter() - started)
    finally:
        await consumer.stop()
        await producer.stop()


def transport_ceiling(
    bootstrap: str, records: list[bytes], *, raw_batch_bytes: int = RAW_BATCH_BYTES,
) -> dict[str, float]:
    """Raw aiokafka consume-and-produce, records/s."""
    settings = fresh_settings(bootstrap, 4)
    produce_records(settings, records, batch_bytes=raw_batch_bytes)
    rate = asyncio.run(_aiokafka_passthrough(bootstrap, settings.topic("raw"), len(records)))
    return {"records_per_s": rate}


def faust_ceiling(
    bootstrap: str, records: list[bytes], *, send: bool,
    raw_batch_bytes: int = RAW_BATCH_BYTES,
) -> dict[str, float]:
    """A per-event Faust agent that does nothing (or one send per event), events/s."""
    settings = fresh_settings(bootstrap, 4)
    produce_records(settings, records, batch_bytes=raw_batch_bytes)
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks.faust_baseline", "--broker", bootstrap,
         "--topic", settings.topic("raw"), "--count", str(len(records)),
         "--web-port", str(free_port()), *(["--send"] if send else [])],
        capture_output=True, text=True, timeout=600, check=False,
    )
    # the worker's terminal control codes may precede the JSON on the same line
    lines = [line[line.index("{"):] for line in run.stdout.splitlines() if "{" in line]
    if not lines:
        raise RuntimeError(f"faust baseline failed:\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}")
    return {"events_per_s": float(orjson.loads(lines[-1])["events_per_s"])}


# --------------------------------------------------------------------------------------------
# the pipeline
# --------------------------------------------------------------------------------------------


@dataclass
class Worker:
    """A ``mentions worker`` process started by the benchmark, and where it serves /metrics."""

    process: subprocess.Popen[bytes]
    web_port: int
    log_path: Path

    def url(self, page: str) -> str:
        """Address of one of the worker's web pages."""
        return f"http://127.0.0.1:{self.web_port}/{page}"


def start_workers(
    settings: Settings, workers: int, stages: Sequence[str], workdir: Path, **env: str,
) -> list[Worker]:
    """``mentions worker`` processes for ``stages`` (stopped by :func:`stop_workers`)."""
    started = []
    for index in range(workers):
        web_port = free_port()
        process_env = {
            **os.environ, **settings_env(settings),
            "PIPELINE_STAGES": ",".join(stages), "PIPELINE_WEB_PORT": str(web_port),
            "PIPELINE_DATA_DIR": str(workdir / f"data-{settings.app_id}-{index}"),
            "HF_HUB_OFFLINE": "1", **env,
        }
        log_path = workdir / f"{settings.app_id}-{index}.log"
        process = subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli", "worker", "--loglevel", "info"],
            env=process_env, stdout=log_path.open("wb"), stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        started.append(Worker(process, web_port, log_path))
    return started


def stop_workers(workers: list[Worker]) -> None:
    """Stop the worker processes we started, by pid."""
    for worker in workers:
        worker.process.terminate()
    for worker in workers:
        try:
            worker.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.process.kill()
            worker.process.wait()


def wait_all_ready(workers: list[Worker], timeout_s: float = 180) -> float:
    """Wait until every worker's /readyz says ready (partitions assigned); the Unix time."""
    from pipeline.demo import wait_until_ready

    for worker in workers:
        if not wait_until_ready(worker.url("readyz"), worker.process, timeout_s):
            raise RuntimeError(f"worker not ready:\n{worker.log_path.read_text()[-3000:]}")
    return time.time()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stage_metrics(workers: list[Worker], stages: Sequence[str]) -> dict[str, dict[str, float]]:
    """Per stage, summed over workers: mentions in and out, seconds spent in its batches."""
    from prometheus_client.parser import text_string_to_metric_families

    wanted = {
        "mentions_stage_in_total": "in", "mentions_stage_out_total": "out",
        "mentions_stage_batch_duration_seconds_sum": "busy_s",
    }
    totals = {stage: dict.fromkeys(wanted.values(), 0.0) for stage in stages}
    for worker in workers:
        with urllib.request.urlopen(worker.url("metrics"), timeout=10) as response:
            text = response.read().decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                stage = sample.labels.get("stage")
                if sample.name in wanted and stage in totals:
                    totals[stage][wanted[sample.name]] += sample.value
    return totals


def _topic_partitions(consumer: Any, topic: str) -> list[Any]:
    from kafka import TopicPartition

    return [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]


def wait_drained(
    settings: Settings, stages: Sequence[str], *, timeout_s: float = 900,
    raw_records: int | None = None,
) -> None:
    """Wait until each stage, in order, has committed everything on its input topic.

    ``raw_records``: how many records the raw topic holds, when it was fed in multi-record
    batches, whose end offsets the embedded broker reports short (see :func:`latency_run`).
    """
    from kafka import KafkaConsumer
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(**kafka_client_options(settings))
    consumer = KafkaConsumer(**kafka_client_options(settings))
    deadline = time.monotonic() + timeout_s
    try:
        for stage in stages:
            spec = STAGES[stage]
            group, topic = settings.app_id + spec.group_suffix, settings.topic(spec.source)
            # the upstream stage is done, so the input topic is complete
            if spec.source == "raw" and raw_records is not None:
                end = raw_records
            else:
                end = sum(consumer.end_offsets(_topic_partitions(consumer, topic)).values())
            while committed(admin, group, topic) < end:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{stage} did not drain {topic} in {timeout_s}s")
                time.sleep(0.2)
    finally:
        consumer.close()
        admin.close()


def committed(admin: Any, group: str, topic: str) -> int:
    """Records of ``topic`` committed by ``group``, summed over partitions."""
    offsets = admin.list_group_offsets(group).get(group, {})
    return sum(max(0, meta.offset) for tp, meta in offsets.items() if tp.topic == topic)


def read_topics(
    settings: Settings, topics: Sequence[str], *, known_counts: dict[str, int] | None = None,
) -> dict[str, list[Any]]:
    """Every record of the given (complete) topics, by topic.

    A topic in ``known_counts`` is read until it gave that many records instead of up to its
    end offsets (which the embedded broker reports short for multi-record batches).
    """
    known_counts = known_counts or {}
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(enable_auto_commit=False, auto_offset_reset="earliest",
                             **kafka_client_options(settings))
    partitions = [tp for topic in topics for tp in _topic_partitions(consumer, topic)]
    consumer.assign(partitions)
    consumer.seek_to_beginning()
    ends = {tp: end for tp, end in consumer.end_offsets(partitions).items()
            if tp.topic not in known_counts}
    records: dict[str, list[Any]] = {topic: [] for topic in topics}
    deadline = time.monotonic() + 300

    def incomplete() -> bool:
        return (any(consumer.position(tp) < end for tp, end in ends.items())
                or any(len(records[topic]) < count for topic, count in known_counts.items()))

    try:
        while incomplete():
            if time.monotonic() > deadline:
                raise RuntimeError("reading the output topics timed out")
            for batch in consumer.poll(timeout_ms=500, max_records=20000).values():
                for record in batch:
                    records[record.topic].append(record)
    finally:
        consumer.close()
    return records


def sustained_rate(arrivals: list[tuple[int, int]], since_ms: int) -> dict[str, float]:
    """Mentions/s between ``since_ms`` (or the first output, if later) and the last output.

    ``arrivals`` are (output record time in ms, mentions in the record).
    """
    if not arrivals:
        return {"mentions": 0.0, "mentions_per_s": 0.0, "seconds": 0.0}
    arrivals = sorted(arrivals)
    start = max(arrivals[0][0], since_ms)
    counted = sum(count for at, count in arrivals if at > start)
    seconds = (arrivals[-1][0] - start) / 1000
    return {
        "mentions": float(sum(count for _at, count in arrivals)),
        "mentions_per_s": counted / seconds if seconds > 0 else 0.0,
        "seconds": seconds,
    }


def pipeline_throughput(
    bootstrap: str, records: list[bytes], workers: int, workdir: Path, stages: Sequence[str],
    *, upstream: Sequence[str] = (), raw_batch_bytes: int = RAW_BATCH_BYTES, **env: str,
) -> dict[str, Any]:
    """Pre-load the raw topic, start ``workers`` workers, measure the drain of every stage.

    Rates are counted from the moment every worker is ready (so the 2-worker figure does not
    include the rebalance when the second one joins) to each stage's last output record,
    from the output records' own timestamps. Per stage, ``busy_s`` is the time the workers
    spent inside that stage's batches (core + sends), from their /metrics. With
    ``upstream`` stages, a worker running those fills the measured stages' input first and
    is stopped: the measured stages then drain a backlog on their own.

    ``raw_batch_bytes`` is the producer batch size the raw topic is fed with (see
    :data:`RAW_BATCH_BYTES`).
    """
    settings = fresh_settings(bootstrap, 4)
    produce_records(settings, records, batch_bytes=raw_batch_bytes)
    if upstream:
        feeders = start_workers(settings, 1, upstream, workdir, **env)
        try:
            wait_all_ready(feeders)
            wait_drained(settings, upstream, raw_records=len(records))
        finally:
            stop_workers(feeders)
    load_before = os.getloadavg()
    started = start_workers(settings, workers, stages, workdir, **env)
    try:
        ready_at = wait_all_ready(started)
        cpu_at_ready = sum(cpu_seconds(worker.process.pid) for worker in started)
        wait_drained(settings, stages, raw_records=len(records))
        drained_at = time.time()
        cpu = sum(cpu_seconds(worker.process.pid) for worker in started) - cpu_at_ready
        metrics = stage_metrics(started, stages)
    finally:
        stop_workers(started)
    outputs = read_topics(settings, [settings.topic(STAGES[stage].output) for stage in stages])
    since_ms = int(ready_at * 1000)
    rates: dict[str, Any] = {}
    for stage in stages:
        arrivals = [(record.timestamp, len(decode_batch(record.value)))
                    for record in outputs[settings.topic(STAGES[stage].output)]]
        rates[stage] = {**sustained_rate(arrivals, since_ms), **metrics[stage]}
        busy = metrics[stage]["busy_s"]
        rates[stage]["mentions_per_busy_s"] = metrics[stage]["in"] / busy if busy else None
    last = rates[stages[-1]]
    first_out = min((record.timestamp for record in outputs[settings.topic(
        STAGES[stages[0]].output)]), default=since_ms)
    window_s = max(1e-3, drained_at - max(first_out, since_ms) / 1000)
    return {
        "workers": workers, "stages": rates, "env": env, "raw_batch_bytes": raw_batch_bytes,
        # the whole pipeline: what leaves the last stage, per second of the steady window
        "mentions_per_s": last["mentions_per_s"],
        "raw_records": len(records),
        "worker_cpu_s": cpu,
        "worker_cpu_share": cpu / window_s,
        "load_avg_before": load_before, "load_avg_after": os.getloadavg(),
    }


def latency_run(
    bootstrap: str, stages: Sequence[str], rate_per_s: float, seconds: float, workdir: Path,
    *, workers: int = 1,
) -> dict[str, Any]:
    """Feed at a steady rate; per mention and stage, raw record time -> output record time."""
    settings = fresh_settings(bootstrap, 4)
    started = start_workers(settings, workers, stages, workdir)
    try:
        wait_all_ready(started)
        if workers > 1:
            # the consumer groups rebalance as each worker joins: settle before the feed, so
            # that the start-up rebalance is not measured as latency
            time.sleep(REBALANCE_SETTLE_S)
            wait_all_ready(started)
        records = firehose(int(rate_per_s * seconds), seed=5)
        # The feeder batches like an upstream connector would. With one record per batch
        # (what the embedded broker needs for exact end offsets, hence the raw-topic counts
        # below) kafka-python sent at most ~2,450 records/s here, so a 2,000/s feed queued in
        # the feeder itself, and that queue was measured as pipeline latency.
        produce_records(settings, records, rate_per_s=rate_per_s, batch_bytes=WIDE_BATCH_BYTES)
        wait_drained(settings, stages, timeout_s=120, raw_records=len(records))
    finally:
        stop_workers(started)
    raw_topic = settings.topic("raw")
    outputs = {stage: settings.topic(STAGES[stage].output) for stage in stages}
    read = read_topics(settings, [raw_topic, *outputs.values()],
                       known_counts={raw_topic: len(records)})
    sent_at = {orjson.loads(record.value)["id"]: record.timestamp for record in read[raw_topic]}
    summary = {}
    for stage, topic in outputs.items():
        ordered = sorted(
            (record.timestamp - sent_at[mention["id"]]) / 1000
            for record in read[topic] for mention in decode_batch(record.value)
            if mention["id"] in sent_at
        )
        summary[stage] = {
            "mentions": len(ordered),
            "p50_s": statistics.median(ordered) if ordered else None,
            "p99_s": ordered[int(0.99 * (len(ordered) - 1))] if ordered else None,
            "cdf_s": [ordered[int(q / 100 * (len(ordered) - 1))] for q in range(101)]
            if ordered else [],
        }
    return {"workers": workers, "rate_per_s": rate_per_s, "seconds": seconds, "stages": summary}


def plot(results: dict[str, Any]) -> list[str]:
    """Throughput vs batch size and the latency CDF, as PNGs next to the JSON."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    sweep = results["batch_size_sweep"]
    figure, axis = plt.subplots(figsize=(6, 4))
    axis.plot([row["batch_size"] for row in sweep], [row["mentions_per_s"] for row in sweep],
              marker="o", label=f"pipeline ({'+'.join(results['stages'])}), 1 worker")
    axis.axhline(results["ceilings"]["faust_noop"]["events_per_s"], color="grey", ls="--",
                 label="per-event Faust agent (no-op)")
    axis.set_xscale("log", base=2)
    axis.set_xlabel("ingest batch size (raw records)")
    axis.set_ylabel("mentions/s")
    axis.set_ylim(bottom=0)
    axis.set_title("Throughput vs batch size")
    axis.legend()
    figure.tight_layout()
    path = RESULTS_DIR / "pipeline_throughput_vs_batch.png"
    figure.savefig(path, dpi=110)
    written.append(str(path.relative_to(RESULTS_DIR.parent.parent)))
    figure, axis = plt.subplots(figsize=(6, 4))
    for run in results["latency"]:
        for stage, summary in run["stages"].items():
            if summary["cdf_s"]:
                axis.plot([v * 1000 for v in summary["cdf_s"]], range(101),
                          ls="-" if run["workers"] == 1 else "--",
                          label=f"to {stage} out, {run['workers']} worker(s)")
    axis.set_xlabel("latency from the raw record (ms)")
    axis.set_ylabel("percentile")
    axis.set_title(f"Latency CDF at {results['latency'][0]['rate_per_s']:.0f} mentions/s")
    axis.legend()
    figure.tight_layout()
    path = RESULTS_DIR / "pipeline_latency_cdf.png"
    figure.savefig(path, dpi=110)
    written.append(str(path.relative_to(RESULTS_DIR.parent.parent)))
    return written


def _describe(row: dict[str, Any]) -> str:
    stages = ", ".join(
        f"{stage} {rate['mentions_per_s']:,.0f}/s ({rate['mentions_per_busy_s'] or 0:,.0f}/busy-s)"
        for stage, rate in row["stages"].items()
    )
    cpu_us = row["worker_cpu_s"] / row["raw_records"] * 1e6
    return (f"{row['label']}: {row['mentions_per_s']:,.0f} mentions/s [{stages}], "
            f"worker CPU {row['worker_cpu_share']:.2f} cores ({cpu_us:.0f} us per raw mention), "
            f"load {row['load_avg_before'][0]:.2f}")


@contextlib.contextmanager
def broker_for(delay_ms: float, workdir: Path) -> Iterator[str]:
    """A fresh embedded broker, behind a slow link when ``delay_ms``; yields its bootstrap."""
    if not delay_ms:
        with EmbeddedBroker.start(log_path=workdir / "broker.log") as broker:
            yield broker.bootstrap
        return
    relay_port = free_port()
    with EmbeddedBroker.start(
        log_path=workdir / "broker.log", advertised_port=relay_port,
    ) as broker:
        relay = subprocess.Popen([
            sys.executable, "-m", "benchmarks.slow_link", "--listen", f"127.0.0.1:{relay_port}",
            "--target", broker.bootstrap, "--delay-ms", str(delay_ms),
        ])
        try:
            if not wait_for_port("127.0.0.1", relay_port, 20):
                raise RuntimeError("the slow link did not start")
            yield f"127.0.0.1:{relay_port}"
        finally:
            relay.terminate()
            relay.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mentions", type=int, default=100_000)
    parser.add_argument("--stages", default=",".join(CPU_STAGES),
                        help="stages to run, in order (default: %(default)s)")
    parser.add_argument("--latency-rate", type=float, default=2000.0)
    parser.add_argument("--latency-seconds", type=float, default=20.0)
    parser.add_argument("--batch-sizes", default="64,256,500,1024,4096")
    parser.add_argument("--quick", action="store_true",
                        help="only the 1-worker pipeline run (no ceilings, sweep or latency)")
    parser.add_argument("--raw-batch-bytes", type=int, default=RAW_BATCH_BYTES,
                        help="producer batch size the raw topic is fed with (default "
                        "%(default)s; 1: one record per batch, as before 2026-11-29 20:00 UTC)")
    parser.add_argument("--broker-delay-ms", type=float, default=0.0,
                        help="put benchmarks/slow_link.py in front of the broker: every byte "
                        "waits this long each way (a broker across a network)")
    parser.add_argument("--one-worker-runs", type=int, default=None,
                        help="how many times the 1-worker pipeline row runs, spread over the "
                        "run; its median is the headline (default: 3, 1 with --quick)")
    args = parser.parse_args()
    one_worker_runs = args.one_worker_runs or (1 if args.quick else 3)
    stages = [stage.strip() for stage in args.stages.split(",") if stage.strip()]
    records = firehose(args.mentions)
    workdir = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    results: dict[str, Any] = {
        "mentions": args.mentions, "stages": stages, "workdir": str(workdir),
        "broker_delay_ms": args.broker_delay_ms, "raw_batch_bytes": args.raw_batch_bytes,
    }
    raw_batches = {"raw_batch_bytes": args.raw_batch_bytes}
    log: Callable[[str], None] = lambda text: print(text, flush=True)  # noqa: E731
    with broker_for(args.broker_delay_ms, workdir) as bootstrap:
        others: list[tuple[str, int, dict[str, Any]]] = [
            ("pipeline, 2 workers", 2, {}),
            ("pipeline without language ID, 1 worker", 1, {"PIPELINE_DETECT_LANGUAGE": "false"}),
        ]
        if args.raw_batch_bytes != 1:
            # the raw topic as runs before 2026-11-29 fed it, for comparison with them
            others.append(("pipeline, 1 worker, raw topic in one-record batches", 1,
                           {"raw_batch_bytes": 1}))
        # The 1-worker row is the target and this machine's noise moves one run by
        # +-20 %: it runs several times, the others' runs between its runs, so that a slow
        # or a fast stretch of the machine does not decide the headline alone.
        runs: list[tuple[str, int, dict[str, Any]]] = []
        for index in range(max(one_worker_runs, len(others))):
            if index < one_worker_runs:
                runs.append((ONE_WORKER, 1, {}))
            if index < len(others):
                runs.append(others[index])
        # each stage alone, draining the backlog its upstream stages left
        alone = [] if args.quick else [
            (f"{stage} alone, {workers} worker(s)", workers, stages[:index], [stage])
            for index, stage in enumerate(stages) for workers in (1, 2)
        ]
        if args.quick:
            runs = [run for run in runs if run[0] == ONE_WORKER]
        else:
            results["ceilings"] = {
                "aiokafka_passthrough": transport_ceiling(bootstrap, records, **raw_batches),
                "faust_noop": faust_ceiling(bootstrap, records, send=False, **raw_batches),
                "faust_send_per_event": faust_ceiling(
                    bootstrap, records, send=True, **raw_batches),
            }
            log(f"ceilings: {results['ceilings']}")
        results["runs"] = []
        for label, workers, options in runs:
            row = {"label": label, **pipeline_throughput(
                bootstrap, records, workers, workdir, stages, **{**raw_batches, **options})}
            results["runs"].append(row)
            log(_describe(row))
        results["stage_alone"] = []
        for label, workers, upstream, measured in alone:
            row = {"label": label, **pipeline_throughput(
                bootstrap, records, workers, workdir, measured, upstream=upstream,
                **raw_batches)}
            results["stage_alone"].append(row)
            log(_describe(row))
        if not args.quick:
            results["batch_size_sweep"] = []
            for batch_size in (int(size) for size in args.batch_sizes.split(",")):
                row = {"label": f"ingest batch {batch_size}", **pipeline_throughput(
                    bootstrap, records, 1, workdir, stages,
                    PIPELINE_INGEST_BATCH_SIZE=str(batch_size), **raw_batches,
                )}
                results["batch_size_sweep"].append({"batch_size": batch_size, **row})
                log(_describe(row))
            results["latency"] = [
                latency_run(bootstrap, stages, args.latency_rate, args.latency_seconds, workdir,
                            workers=workers)
                for workers in (1, 2)
            ]
            for run in results["latency"]:
                for stage, summary in run["stages"].items():
                    log(f"latency to {stage} out, {run['workers']} worker(s): "
                        f"p50 {summary['p50_s']} s, p99 {summary['p99_s']} s")
    one_worker = [row for row in results["runs"] if row["label"] == ONE_WORKER]
    results["one_worker"] = {
        "mentions_per_s": [row["mentions_per_s"] for row in one_worker],
        "worker_cpu_us_per_mention": [row["worker_cpu_s"] / row["raw_records"] * 1e6
                                      for row in one_worker],
        "median_mentions_per_s": statistics.median(row["mentions_per_s"] for row in one_worker),
    }
    if len(one_worker) > 1:
        log(f"{ONE_WORKER}, median of {len(one_worker)} runs: "
            f"{results['one_worker']['median_mentions_per_s']:,.0f} mentions/s")
    if args.quick:
        log(f"quick run, results not written (workdir {workdir})")
        return
    ceilings = results["ceilings"]
    one = results["one_worker"]["median_mentions_per_s"]
    two = next(row["mentions_per_s"] for row in results["runs"] if row["workers"] == 2)
    results["ratios"] = {
        "pipeline_1_worker_vs_aiokafka": one / ceilings["aiokafka_passthrough"]["records_per_s"],
        "pipeline_1_worker_vs_faust_noop": one / ceilings["faust_noop"]["events_per_s"],
        "pipeline_2_workers_vs_aiokafka": two / ceilings["aiokafka_passthrough"]["records_per_s"],
        "pipeline_2_workers_vs_faust_noop": two / ceilings["faust_noop"]["events_per_s"],
        "pipeline_2_workers_vs_1": two / one,
    }
    results["target_1_worker_20k"] = one >= 20_000
    results["plots"] = plot(results)
    path = write_results("pipeline", results)
    log(f"ratios: {results['ratios']}\nwrote {path}")


if __name__ == "__main__":
    main()
