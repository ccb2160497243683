"""CPU cost of the ingest and dedup cores per mention, in-process: no broker, no Faust.

The end-to-end benchmark (``benchmarks/pipeline.py``) measures what a worker achieves; this
one says where a worker's CPU goes, phase by phase, with the same code the worker runs on
each micro-batch and the same synthetic firehose, timed with ``time.process_time`` (CPU
time of this one thread, so other jobs on a shared machine disturb it less than they
disturb wall-clock rates). Phases, per raw mention:

- ``ingest``: :meth:`Ingestor.process_encoded` (parse + validate, language, brand rules,
  each mention encoded with its ingest time; measured again with the sentiment model's token
  ids carried, as on a GPU deployment, with the routed mention's size both ways);
- ``route``: key and group into routed micro-batch records (the ingest service's sends,
  without the sends);
- ``dedup``: :func:`mark_routed` on each routed micro-batch and the partition's
  journal (the dedup agent's core: the fields it needs decoded, verdicts spliced in);
- ``journal``: the batch's delta taken and serialised as Faust's JSON serializer does;
- ``unique encode``: grouped by mention id and joined into records for ``mentions.unique``.

The 20k mentions/s target of one worker process is a budget of 50 us of CPU per mention
for everything: these phases plus Kafka client and Faust code, which this benchmark leaves
out on purpose (the end-to-end one has them).

Run: ``python -m benchmarks.cores [--mentions 40000] [--repeat 3] [--no-worker-gc]``; writes
``benchmarks/results/cores.json``. Each repeat starts from fresh cores (empty caches and
dedup memory) and the best repeat of each phase is reported. The garbage collector is tuned
as a worker tunes it (:func:`pipeline.agents.worker.tune_garbage_collector`) unless
``--no-worker-gc``.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

import orjson

from benchmarks.common import write_results
from benchmarks.pipeline import firehose
from pipeline.agents.worker import tune_garbage_collector
from pipeline.config import Settings, load_settings
from pipeline.stages.dedup_encoded import mark_routed
from pipeline.stages.dedup_journal import PartitionJournal
from pipeline.stages.dedup_partitions import unique_records
from pipeline.stages.ingest import EncodedMention, EncodedOutcome, build_ingestor
from pipeline.stages.routing import Router

PHASES = ("ingest", "route", "dedup", "journal", "unique encode")
# what one routed mention weighs on the wire, with and without carried token ids
WIRE = "wire bytes"
T = TypeVar("T")


def one_pass(settings: Settings, raws: list[bytes], batch_size: int) -> dict[str, float]:
    """CPU seconds per phase for one pass over ``raws`` with fresh cores."""
    ingestor = build_ingestor(settings)
    router = Router(settings)
    window = timedelta(hours=settings.dedup_window_hours)
    journals = {partition: PartitionJournal(partition, window=window)
                for partition in range(settings.partitions)}
    seconds: dict[str, float] = defaultdict(float)

    def timed(phase: str, work: Callable[..., T], *args: Any) -> T:
        started = time.process_time()
        result = work(*args)
        seconds[phase] += time.process_time() - started
        return result

    def ingest(raws: list[bytes]) -> EncodedOutcome:
        return ingestor.process_encoded(raws, ingested_at=time.time())

    def route(mentions: list[EncodedMention]) -> list[tuple[int, bytes]]:
        return [(partition, record)
                for partition, records in router.records(mentions).items()
                for record in records]

    def serialise_deltas(journal: PartitionJournal) -> list[bytes]:
        return [orjson.dumps(delta) for _key, delta in journal.take_deltas()]

    for start in range(0, len(raws), batch_size):
        outcome = timed("ingest", ingest, raws[start:start + batch_size])
        seconds[WIRE] += sum(len(mention.encoded) for mention in outcome.mentions)
        for partition, record in timed("route", route, outcome.mentions):
            journal = journals[partition]
            routed = timed("dedup", mark_routed, journal.deduplicator, record)
            if routed.marked is None or routed.decoded_whole:
                raise RuntimeError("a routed micro-batch did not take the encoded path")
            marked = routed.marked
            timed("journal", serialise_deltas, journal)
            timed("unique encode", unique_records, marked, settings.partitions)
    return dict(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mentions", type=int, default=40_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=None,
                        help="raw mentions per ingest batch (default: the worker's setting)")
    parser.add_argument("--no-worker-gc", dest="worker_gc", action="store_false",
                        help="keep CPython's default garbage collector thresholds")
    args = parser.parse_args()
    settings = load_settings()
    batch_size = args.batch_size or settings.ingest_batch_size
    raws = firehose(args.mentions)
    if args.worker_gc:
        # the collector as a worker sets it: with CPython's default, allocation-heavy lines
        # pay for young collections the worker does not run
        tune_garbage_collector(settings.gc_young_threshold)
    passes = [one_pass(settings, raws, batch_size) for _ in range(args.repeat)]
    best = {phase: min(run.get(phase, 0.0) for run in passes) for phase in PHASES}
    # the ingest phase again with the sentiment token ids carried (what carrying costs)
    carrying_settings = settings.model_copy(update={"sentiment_carry_tokens": True})
    carrying_passes = [one_pass(carrying_settings, raws, batch_size) for _ in range(args.repeat)]
    carrying = {
        "ingest_us_with_ids": min(run["ingest"] for run in carrying_passes) / len(raws) * 1e6,
        "ingest_us_without_ids": best["ingest"] / len(raws) * 1e6,
        "wire_bytes_with_ids": carrying_passes[0][WIRE] / len(raws),
        "wire_bytes_without_ids": passes[0][WIRE] / len(raws),
    }
    per_mention_us = {phase: seconds / len(raws) * 1e6 for phase, seconds in best.items()}
    total_us = sum(per_mention_us.values())
    for phase, micros in per_mention_us.items():
        print(f"{phase:14s} {micros:6.1f} us per raw mention")
    print(f"{'all':14s} {total_us:6.1f} us = {1e6 / total_us:,.0f} mentions per CPU-second "
          "(before Kafka client and Faust code)")
    print("carried sentiment token ids: ingest {ingest_us_without_ids:.1f} -> "
          "{ingest_us_with_ids:.1f} us, routed mention {wire_bytes_without_ids:.0f} -> "
          "{wire_bytes_with_ids:.0f} bytes".format(**carrying))
    path = write_results("cores", {
        "mentions": len(raws), "batch_size": batch_size, "repeats": args.repeat,
        "worker_gc": args.worker_gc,
        "us_per_mention": per_mention_us, "us_per_mention_all": total_us,
        "mentions_per_cpu_s": 1e6 / total_us, "carried_sentiment_tokens": carrying,
        "passes_cpu_s": passes,
    })
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
