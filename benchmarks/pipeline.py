"""End-to-end benchmark: the real pipeline on the embedded broker, against its ceilings.

In one run, on one fresh Tansu broker:

1. the transport ceiling: a raw aiokafka consume-and-produce loop;
2. the per-event Faust ceiling: an agent over ``stream.take(500, 0.05)`` that does nothing,
   and the same with one ``send`` per event (benchmarks/faust_baseline.py);
3. the pipeline: ``N`` synthetic firehose mentions pre-loaded into ``mentions.raw``, then
   1 and 2 ``mentions worker`` processes drain them; sustained mentions/s per stage is
   measured from the consumer groups' committed offsets (the stage's own progress);
4. the ingest batch size swept (1 worker), for the throughput-vs-batch-size plot;
5. latency at a sustained rate below capacity: per mention, from its raw record's timestamp
   to its record's timestamp on the stage's output topic (p50/p99, and the CDF plot).

Run: ``python -m benchmarks.pipeline [--mentions 60000]``. Writes
benchmarks/results/pipeline.json and two PNG plots next to it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from benchmarks.common import RESULTS_DIR, write_results
from pipeline.config import Settings, load_settings
from pipeline.connectors.generator import FirehoseGenerator
from pipeline.connectors.replay import produce_records
from pipeline.transport.broker import EmbeddedBroker, free_port
from pipeline.transport.topics import decode_batch, ensure_topics, kafka_client_options

# stage -> (consumer group suffix, input topic, output topic)
# dedup is not measured yet: draining a pre-loaded backlog, its Faust table changelog writes
# filled Faust's producer buffer ("producer buffer full") and the worker stopped making
# progress on this broker (benchmarks/README.md). At the demo's steady 400/s it keeps up.
STAGES: dict[str, tuple[str, str, str]] = {
    "ingest": ("-ingest", "raw", "routed"),
}


def firehose(count: int, seed: int = 1) -> list[bytes]:
    """``count`` synthetic mentions as raw records (the benchmarks' load)."""
    start = datetime(2026, 11, 2, 12, tzinfo=UTC)
    return [orjson.dumps(m) for m in FirehoseGenerator(seed=seed, start=start).mentions(count)]


def fresh_settings(bootstrap: str, partitions: int, **overrides: Any) -> Settings:
    """Settings with unique topic and group names, topics created."""
    tag = f"b{os.getpid()}{time.monotonic_ns() % 1_000_000}"
    settings = load_settings(
        broker=bootstrap, app_id=tag, topic_prefix=tag, alerts_topic=f"{tag}.alerts",
        partitions=partitions, **overrides,
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


def transport_ceiling(bootstrap: str, records: list[bytes]) -> dict[str, float]:
    """Raw aiokafka consume-and-produce, records/s."""
    settings = fresh_settings(bootstrap, 4)
    produce_records(settings, records)
    rate = asyncio.run(_aiokafka_passthrough(bootstrap, settings.topic("raw"), len(records)))
    return {"records_per_s": rate}


def faust_ceiling(bootstrap: str, records: list[bytes], *, send: bool) -> dict[str, float]:
    """A per-event Faust agent that does nothing (or one send per event), events/s."""
    settings = fresh_settings(bootstrap, 4)
    produce_records(settings, records)
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


def start_workers(
    settings: Settings, workers: int, stages: str, workdir: Path, **env: str,
) -> list[subprocess.Popen[bytes]]:
    """``mentions worker`` processes for ``stages`` (stopped by the caller, by pid)."""
    processes = []
    for index in range(workers):
        process_env = {
            **os.environ,
            "PIPELINE_BROKER": settings.broker, "PIPELINE_APP_ID": settings.app_id,
            "PIPELINE_TOPIC_PREFIX": settings.topic_prefix,
            "PIPELINE_ALERTS_TOPIC": settings.alerts_topic,
            "PIPELINE_PARTITIONS": str(settings.partitions), "PIPELINE_STAGES": stages,
            "PIPELINE_WEB_PORT": str(free_port()),
            "PIPELINE_DATA_DIR": str(workdir / f"data-{settings.app_id}-{index}"),
            "HF_HUB_OFFLINE": "1", **env,
        }
        log = (workdir / f"{settings.app_id}-{index}.log").open("wb")
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli", "worker"], env=process_env,
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        ))
    return processes


def stop_workers(processes: list[subprocess.Popen[bytes]]) -> None:
    """Stop the worker processes we started, by pid."""
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def committed(settings: Settings, admin: Any, group: str, topic: str) -> int:
    """Records of ``topic`` committed by ``group``, summed over partitions."""
    offsets = admin.list_group_offsets(group).get(group, {})
    return sum(max(0, meta.offset) for tp, meta in offsets.items() if tp.topic == topic)


def drain_rate(
    settings: Settings, stage: str, total: int, *, timeout_s: float = 600,
) -> dict[str, float]:
    """Sustained records/s of one stage: committed progress from first to last commit."""
    from kafka.admin import KafkaAdminClient

    suffix, source, _out = STAGES[stage]
    admin = KafkaAdminClient(**kafka_client_options(settings))
    group, topic = settings.app_id + suffix, settings.topic(source)
    first: tuple[float, int] | None = None
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            done = committed(settings, admin, group, topic)
            now = time.perf_counter()
            if done > 0 and first is None:
                first = (now, done)
            if done >= total and first is not None:
                if now - first[0] < 1e-3:
                    break
                return {"records_per_s": (done - first[1]) / (now - first[0]),
                        "records": float(done)}
            time.sleep(0.05)
    finally:
        admin.close()
    raise RuntimeError(f"{stage} did not finish {total} records in {timeout_s}s")


def pipeline_throughput(
    bootstrap: str, records: list[bytes], workers: int, workdir: Path, **env: str,
) -> dict[str, Any]:
    """Pre-load the raw topic, start ``workers`` workers, measure each stage's drain rate."""
    settings = fresh_settings(bootstrap, 4)
    produce_records(settings, records)
    processes = start_workers(settings, workers, ",".join(STAGES), workdir, **env)
    try:
        rates = {stage: drain_rate(settings, stage, len(records)) for stage in STAGES}
    finally:
        stop_workers(processes)
    whole = min(rate["records_per_s"] for rate in rates.values())
    return {"workers": workers, "stages": rates, "mentions_per_s": whole, "env": env}


def latency_run(
    bootstrap: str, rate_per_s: float, seconds: float, workdir: Path,
) -> dict[str, Any]:
    """Feed at a steady rate; per mention, raw record time -> output record time."""
    from kafka import KafkaConsumer, TopicPartition

    settings = fresh_settings(bootstrap, 4)
    processes = start_workers(settings, 1, ",".join(STAGES), workdir)
    try:
        time.sleep(12)  # joining the group: measured latency must not include start-up
        records = firehose(int(rate_per_s * seconds), seed=5)
        sender = threading.Thread(target=produce_records, args=(settings, records),
                                  kwargs={"rate_per_s": rate_per_s})
        sender.start()
        sender.join()
        consumer = KafkaConsumer(enable_auto_commit=False, auto_offset_reset="earliest",
                                 **kafka_client_options(settings))
        sent_at: dict[str, int] = {}
        per_stage: dict[str, list[float]] = {stage: [] for stage in STAGES}
        raw_topic = settings.topic("raw")
        topics = [raw_topic] + [settings.topic(out) for _g, _i, out in STAGES.values()]
        consumer.assign([
            TopicPartition(topic, p) for topic in topics
            for p in consumer.partitions_for_topic(topic) or ()
        ])
        consumer.seek_to_beginning()
        deadline = time.monotonic() + 90
        arrived: dict[str, list[tuple[str, int]]] = {stage: [] for stage in STAGES}
        last_new = time.monotonic()
        while time.monotonic() < deadline:
            polled = consumer.poll(timeout_ms=500, max_records=20000)
            for batch in polled.values():
                last_new = time.monotonic()
                for record in batch:
                    if record.topic == raw_topic:
                        sent_at[orjson.loads(record.value)["id"]] = record.timestamp
                        continue
                    for stage, (_g, _i, out) in STAGES.items():
                        if record.topic == settings.topic(out):
                            arrived[stage] += [(m["id"], record.timestamp)
                                               for m in decode_batch(record.value)]
            # everything sent is read back and the pipeline has gone quiet
            if len(sent_at) >= len(records) and time.monotonic() - last_new > 3:
                break
        consumer.close()
        for stage, pairs in arrived.items():
            per_stage[stage] = [(ts - sent_at[i]) / 1000 for i, ts in pairs if i in sent_at]
    finally:
        stop_workers(processes)
    summary = {}
    for stage, latencies in per_stage.items():
        ordered = sorted(latencies)
        summary[stage] = {
            "mentions": len(ordered),
            "p50_s": statistics.median(ordered) if ordered else None,
            "p99_s": ordered[int(0.99 * (len(ordered) - 1))] if ordered else None,
            "cdf_s": [ordered[int(q / 100 * (len(ordered) - 1))] for q in range(101)]
            if ordered else [],
        }
    return {"rate_per_s": rate_per_s, "seconds": seconds, "stages": summary}


def plot(results: dict[str, Any]) -> list[str]:
    """Throughput vs batch size and the latency CDF, as PNGs next to the JSON."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    sweep = results["batch_size_sweep"]
    figure, axis = plt.subplots(figsize=(6, 4))
    axis.plot([row["batch_size"] for row in sweep], [row["mentions_per_s"] for row in sweep],
              marker="o", label="pipeline, 1 worker")
    axis.axhline(results["ceilings"]["faust_noop"]["events_per_s"], color="grey", ls="--",
                 label="per-event Faust agent (no-op)")
    axis.set_xscale("log", base=2)
    axis.set_xlabel("ingest batch size (records)")
    axis.set_ylabel("mentions/s")
    axis.set_title("Throughput vs batch size")
    axis.legend()
    figure.tight_layout()
    path = RESULTS_DIR / "pipeline_throughput_vs_batch.png"
    figure.savefig(path, dpi=110)
    written.append(str(path))
    figure, axis = plt.subplots(figsize=(6, 4))
    for stage, summary in results["latency"]["stages"].items():
        if summary["cdf_s"]:
            axis.plot([v * 1000 for v in summary["cdf_s"]], range(101), label=stage)
    axis.set_xlabel("latency from raw record (ms)")
    axis.set_ylabel("percentile")
    axis.set_title(f"Latency CDF at {results['latency']['rate_per_s']:.0f} mentions/s")
    axis.legend()
    figure.tight_layout()
    path = RESULTS_DIR / "pipeline_latency_cdf.png"
    figure.savefig(path, dpi=110)
    written.append(str(path))
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mentions", type=int, default=60_000)
    parser.add_argument("--latency-rate", type=float, default=2000.0)
    parser.add_argument("--latency-seconds", type=float, default=20.0)
    args = parser.parse_args()
    records = firehose(args.mentions)
    workdir = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    results: dict[str, Any] = {"mentions": args.mentions, "stages": list(STAGES)}
    with EmbeddedBroker.start(log_path=workdir / "broker.log") as broker:
        log: Callable[[str], None] = lambda text: print(text, flush=True)  # noqa: E731
        results["ceilings"] = {
            "aiokafka_passthrough": transport_ceiling(broker.bootstrap, records),
            "faust_noop": faust_ceiling(broker.bootstrap, records, send=False),
            "faust_send_per_event": faust_ceiling(broker.bootstrap, records, send=True),
        }
        log(f"ceilings: {results['ceilings']}")
        results["workers"] = [
            pipeline_throughput(broker.bootstrap, records, workers, workdir)
            for workers in (1, 2)
        ]
        for row in results["workers"]:
            log(f"{row['workers']} worker(s): {row['mentions_per_s']:.0f} mentions/s")
        results["batch_size_sweep"] = []
        for batch_size in (64, 256, 1024, 4096):
            row = pipeline_throughput(
                broker.bootstrap, records, 1, workdir,
                PIPELINE_INGEST_BATCH_SIZE=str(batch_size),
            )
            results["batch_size_sweep"].append(
                {"batch_size": batch_size, "mentions_per_s": row["mentions_per_s"]}
            )
            log(f"batch {batch_size}: {row['mentions_per_s']:.0f} mentions/s")
        results["latency"] = latency_run(
            broker.bootstrap, args.latency_rate, args.latency_seconds, workdir,
        )
        for stage, summary in results["latency"]["stages"].items():
            log(f"latency {stage}: p50 {summary['p50_s']} s, p99 {summary['p99_s']} s")
    ceilings = results["ceilings"]
    one = results["workers"][0]["mentions_per_s"]
    results["ratios"] = {
        "pipeline_1_worker_vs_aiokafka": one / ceilings["aiokafka_passthrough"]["records_per_s"],
        "pipeline_1_worker_vs_faust_noop": one / ceilings["faust_noop"]["events_per_s"],
        "pipeline_2_workers_vs_1": results["workers"][1]["mentions_per_s"] / one,
    }
    results["plots"] = plot(results)
    path = write_results("pipeline", results)
    log(f"ratios: {results['ratios']}\nwrote {path}")


if __name__ == "__main__":
    main()
