"""Sentiment inference speed: the engine against a naive per-mention pipeline, in one run.

Real tweets from the XLM-T val splits, the eight languages interleaved. Reported for each
configuration: mentions/s over the whole set (tokenisation included) and p50/p99 latency
of one model batch (padding until its probabilities are on the host; on a GPU that includes
waiting behind the batch launched before it), or of one call for the naive baseline:

- ``naive``: ``transformers.pipeline("text-classification")`` called once per mention;
- ``engine``: :class:`SentimentEngine` (length-sorted batches, padding to a multiple of 8),
  fp32, and on CPU with smoothed dynamic int8 (the CPU default for a calibrated model); on
  CUDA, bf16 with CUDA graphs (the default), and eager launches for comparison;
- ``engine fed with carried ids``: the ids the ingest stage carries on each mention read
  back instead of tokenised (:mod:`pipeline.stages.sentiment.carried`);
- ``engine, no length sorting``, tokenisation, forward passes and reading carried ids
  alone, and the streaming batcher from texts and from carried ids: each in the shipped
  default's precision;
- the batcher's own cost: the streaming row over 65,536 texts with a stand-in that
  tokenises and scores at once (process CPU per text);
- a batch-size sweep of the engine (fp32; on CPU int8 as well);
- the feed (#35): the carried-ids row again with fresh host buffers per batch (the feed
  before the reused, pinned ones and the side-stream copies), with its scores' largest
  difference from the reused feed's;
- ``compile`` (not run by default): the carried-ids row through ``torch.compile``, its
  scores against the plain engine's (in fp32 on CPU, where the engine keeps int8 uncompiled);
- ``engines`` (not run by default): the streaming batcher over 1, 2, 4 engine processes.

Every engine is warmed up first (:meth:`SentimentEngine.warm_up`: each batch shape once on a
GPU), as the sentiment agent does when it starts.

``--random-weights`` scores with a model of the same shape initialised from its config
(same FLOPs, no trained weights needed): the way to time a GPU. Writes
``benchmarks/results/sentiment_<device>.json``.

Run: ``python -m benchmarks.sentiment [--device cpu|cuda] [--n 1024] [--random-weights]
[--groups naive,engine,feed,...|all] [--engines 1,2,4] [--out NAME]``; ``--merge A,B --out C``
joins runs of some groups each (``benchmarks/gpu_run.sh`` does, one timeout per run).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.common import XLMT_LANGUAGES, load_xlmt, write_results
from pipeline.stages.sentiment.carried import CarryingTokenizer
from pipeline.stages.sentiment.engine import (
    AUTO_BATCH_SIZE,
    DEFAULT_MODEL_DIR,
    SentimentEngine,
)
from pipeline.stages.sentiment.labels import SentimentResult
from pipeline.stages.sentiment.tokens import PackedTokens

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def interleaved_val_tweets(count: int) -> list[str]:
    """``count`` val tweets, taking the languages in turn (mixed like a real firehose)."""
    per_language = [load_xlmt(language, "val")[0] for language in XLMT_LANGUAGES]
    tweets: list[str] = []
    for row in range(max(len(texts) for texts in per_language)):
        for texts in per_language:
            if row < len(texts):
                tweets.append(texts[row])
    # Later rounds are marked " (2)", " (3)", ... so that every text is distinct: the engine
    # scores identical inputs once, which would otherwise time a fraction of the forwards.
    rounds = -(-count // len(tweets))
    distinct = [t if r == 0 else f"{t} ({r + 1})" for r in range(rounds) for t in tweets]
    return distinct[:count]


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def summary(name: str, count: int, seconds: float, latencies: Sequence[float],
            **extra: Any) -> dict[str, Any]:
    return {
        "config": name,
        "mentions": count,
        "seconds": round(seconds, 3),
        "mentions_per_s": round(count / seconds, 1),
        "batches": len(latencies),
        "p50_batch_ms": round(1000 * percentile(latencies, 50), 2),
        "p99_batch_ms": round(1000 * percentile(latencies, 99), 2),
        **extra,
    }


def time_engine(name: str, engine: SentimentEngine, tweets: list[str]) -> dict[str, Any]:
    """Score all tweets in one call; time every model batch inside it.

    A batch's time runs from its padding until its probabilities are on the host, so on a
    GPU it includes waiting behind the batch launched before it.
    """
    latencies: list[float] = []
    engine.warm_up()
    engine.score(tweets[: min(len(tweets), 2 * engine.max_batch_size)])
    engine.on_batch = lambda rows, seconds: latencies.append(seconds)
    started = time.perf_counter()
    engine.score(tweets)
    seconds = time.perf_counter() - started
    engine.on_batch = None
    return summary(name, len(tweets), seconds, latencies,
                   batch_size=engine.max_batch_size, sorted=engine.sort_by_length,
                   int8=engine.quantized, cuda_graphs=engine.cuda_graphs)


STAGE_ROWS = ("tokenisation only", "forward passes only (pre-tokenised)",
              "reading carried ids only")
OVERHEAD_ROW = "batcher overhead (a model that answers at once)"


def time_stages(engine: SentimentEngine, tweets: list[str]) -> list[dict[str, Any]]:
    """Tokenisation alone and the forward passes alone, to show which one bounds a run."""
    engine.warm_up()
    started = time.perf_counter()
    packed = engine.encode_packed(tweets)
    tokenize_s = time.perf_counter() - started
    started = time.perf_counter()
    engine._score_packed(packed)
    forward_s = time.perf_counter() - started
    carried = carried_ids(engine, tweets)
    started = time.perf_counter()
    engine.encode_carried(tweets, carried)
    read_s = time.perf_counter() - started
    return [
        summary(STAGE_ROWS[0], len(tweets), tokenize_s, [tokenize_s],
                batch_size=len(tweets)),
        summary(STAGE_ROWS[1], len(tweets), forward_s, [forward_s],
                batch_size=engine.max_batch_size, cuda_graphs=engine.cuda_graphs),
        summary(STAGE_ROWS[2], len(tweets), read_s, [read_s], batch_size=len(tweets)),
    ]


_CARRIED: dict[tuple[str, int, int, int], list[str]] = {}


def carried_ids(engine: SentimentEngine, tweets: list[str]) -> list[str]:
    """The ids the ingest stage would carry on each tweet for this engine's model.

    Made once per model and tweet list (single-threaded, as ingest does it, it takes seconds
    on a GPU run's 65,536 tweets), then shared by every row that reads them.
    """
    key = (str(engine.model_dir), engine.max_tokens, id(tweets), len(tweets))
    if key not in _CARRIED:
        _CARRIED[key] = CarryingTokenizer(engine.model_dir, engine.max_tokens).wire(tweets)
    return _CARRIED[key]


def time_engine_carried(engine: SentimentEngine, tweets: list[str], *,
                        name: str = "engine fed with carried ids",
                        reference: np.ndarray | None = None,
                        keep: list[np.ndarray] | None = None) -> dict[str, Any]:
    """The engine fed with the ids ingest carried: read back instead of tokenised.

    ``keep`` receives the scores; with ``reference`` (another configuration's scores of the
    same tweets) the row says how far its scores are from those, and its labels' agreement.
    """
    latencies: list[float] = []
    carried = carried_ids(engine, tweets)
    engine.warm_up()
    engine.score_packed(engine.encode_carried(tweets[: 2 * engine.max_batch_size],
                                              carried[: 2 * engine.max_batch_size]))
    engine.on_batch = lambda rows, seconds: latencies.append(seconds)
    started = time.perf_counter()
    scores = engine.label_scores_packed(engine.encode_carried(tweets, carried))
    seconds = time.perf_counter() - started
    engine.on_batch = None
    extra: dict[str, Any] = {}
    if reference is not None:
        extra["max_abs_score_diff"] = round(float(np.abs(scores - reference).max()), 6)
        extra["label_agreement"] = round(float(
            (scores.argmax(axis=1) == reference.argmax(axis=1)).mean()), 5)
    if keep is not None:
        keep.append(scores)
    return summary(name, len(tweets), seconds, latencies,
                   batch_size=engine.max_batch_size, sorted=engine.sort_by_length,
                   int8=engine.quantized, cuda_graphs=engine.cuda_graphs,
                   compiled=engine.compiled, **extra)


def time_batcher(engine: SentimentEngine, tweets: list[str], *, request_size: int = 256,
                 concurrency: int = 64, carry: bool = False) -> dict[str, Any]:
    """The streaming path: micro-batch requests through :class:`SentimentBatcher`.

    ``concurrency`` requests are in flight at once, as partitions of a worker would be;
    tokenising runs on its threads while the model thread runs the previous batch.
    Latency here is per request (submit to result). The engine is warmed up first, as the
    sentiment agent does when it starts.
    """
    import asyncio

    from pipeline.stages.sentiment.batcher import SentimentBatcher

    engine.warm_up()
    carried = carried_ids(engine, tweets) if carry else [None] * len(tweets)
    requests = [(tweets[i : i + request_size], carried[i : i + request_size])
                for i in range(0, len(tweets), request_size)]
    latencies: list[float] = []

    async def run() -> float:
        gate = asyncio.Semaphore(concurrency)
        async with SentimentBatcher(engine, max_batch_size=engine.max_batch_size,
                                    max_batch_tokens=engine.max_batch_tokens,
                                    max_wait=0.005) as batcher:
            async def one(texts: list[str], carried: list[Any]) -> None:
                async with gate:
                    began = time.perf_counter()
                    await batcher.submit(texts, carried=carried)
                    latencies.append(time.perf_counter() - began)

            started = time.perf_counter()
            await asyncio.gather(*(one(*r) for r in requests))
            return time.perf_counter() - started

    seconds = asyncio.run(run())
    name = "batcher (streaming, overlapped)" + (", carried ids" if carry else "")
    row = summary(name, len(tweets), seconds, latencies,
                  batch_size=engine.max_batch_size, request_size=request_size,
                  concurrency=concurrency)
    row["p50_request_ms"] = row.pop("p50_batch_ms")
    row["p99_request_ms"] = row.pop("p99_batch_ms")
    row["p50_batch_ms"], row["p99_batch_ms"] = row["p50_request_ms"], row["p99_request_ms"]
    return row


def time_engine_processes(model_dir: Path, device: torch.device, tweets: list[str], *,
                          count: int, batch_size: int, int8: bool | None) -> dict[str, Any]:
    """The streaming batcher, carried ids, over ``count`` engine processes on one device."""
    from pipeline.stages.sentiment.engines import EngineProcesses

    started = time.perf_counter()
    with EngineProcesses(model_dir, count=count, device=str(device), max_batch_size=batch_size,
                         max_batch_tokens=batch_size * 128, quantize_int8=int8) as engines:
        start_s = time.perf_counter() - started
        row = time_batcher(engines, tweets, carry=True)  # type: ignore[arg-type]
    row["config"] = f"batcher, carried ids, {count} engine process(es)"
    row["engine_processes"] = count
    row["start_s"] = round(start_s, 1)
    return row


class _InstantModel:
    """Stands in for the engine: fixed token ids and no model.

    What is left of a streaming run is the batcher's own work on the event loop.
    """

    tokenize_threads = 1

    def __init__(self, batch_size: int) -> None:
        self.max_batch_size = batch_size
        self.max_batch_tokens = batch_size * 128

    def warm_up(self) -> None:
        """Nothing to warm."""

    def encode_carried(self, texts: Sequence[str],
                       carried: Sequence[object] | None = None) -> PackedTokens:
        return PackedTokens.from_rows([(0, 5, 2) + (7,) * (len(text) % 40) for text in texts])

    def score_packed(self, packed: PackedTokens) -> list[SentimentResult]:
        return [SentimentResult("neutral", {"negative": 0.0, "neutral": 1.0,
                                            "positive": 0.0})] * len(packed)


def time_batcher_overhead(tweets: list[str], batch_size: int) -> dict[str, Any]:
    """The batcher's own cost per text: the streaming row with a model that answers at once.

    Reported as texts/s and the process's CPU per text (the stand-in's encoding included,
    ~1 us per text).
    """
    cpu_started = time.process_time()
    row = time_batcher(_InstantModel(batch_size), tweets)  # type: ignore[arg-type]
    row["config"] = OVERHEAD_ROW
    row["process_cpu_us_per_text"] = round(
        (time.process_time() - cpu_started) / len(tweets) * 1e6, 2)
    return row


def time_naive(model_dir: Path, device: torch.device, tweets: list[str]) -> dict[str, Any]:
    """One ``pipeline`` call per mention: what a first implementation would do."""
    from transformers import pipeline

    classifier = pipeline("text-classification", model=str(model_dir), device=device,
                          truncation=True, max_length=128)
    classifier(tweets[:4])  # warm-up
    latencies = []
    started = time.perf_counter()
    for tweet in tweets:
        call_started = time.perf_counter()
        classifier(tweet, top_k=None)
        latencies.append(time.perf_counter() - call_started)
    return summary("naive pipeline, one call per mention", len(tweets),
                   time.perf_counter() - started, latencies, batch_size=1)


def random_weight_checkpoint(folder: Path) -> Path:
    """Same config and tokenizer as the default model, freshly initialised weights."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(0)
    config = AutoConfig.from_pretrained(DEFAULT_MODEL_DIR)
    AutoModelForSequenceClassification.from_config(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(DEFAULT_MODEL_DIR).save_pretrained(folder)
    return folder


def print_table(rows: Sequence[dict[str, Any]], *, header: bool = True) -> None:
    if header:
        print(f"{'configuration':<56} {'batch':>5} {'mentions/s':>11} {'p50 ms':>9} "
              f"{'p99 ms':>9}")
    for row in rows:
        print(f"{row['config']:<56} {row['batch_size']:>5} {row['mentions_per_s']:>11.1f} "
              f"{row['p50_batch_ms']:>9.1f} {row['p99_batch_ms']:>9.1f}", flush=True)


GROUPS = ("naive", "engine", "feed", "stages", "batcher", "overhead", "sweep", "compile",
          "engines")
DEFAULT_GROUPS = "naive,engine,feed,stages,batcher,overhead,sweep"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: auto)")
    parser.add_argument("--n", type=int, default=None,
                        help="tweets per configuration (default: 1024 on CPU, 65536 on CUDA)")
    parser.add_argument("--naive-n", type=int, default=256, help="tweets for the naive run")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="engine batch size (default: the shipped one, 32 on CPU, "
                        "1024 on CUDA)")
    parser.add_argument("--sweep", default=None,
                        help="comma-separated batch sizes (default: 8..128 CPU, 64..2048 CUDA)")
    parser.add_argument("--groups", default=DEFAULT_GROUPS,
                        help=f"rows to measure, comma-separated, of: {', '.join(GROUPS)} "
                        f"(default: {DEFAULT_GROUPS}; 'all' for every group)")
    parser.add_argument("--engines", default="1,2,4",
                        help="engine process counts for the 'engines' group")
    parser.add_argument("--out", default=None,
                        help="results name (default: sentiment_<device>)")
    parser.add_argument("--merge", default=None,
                        help="instead of measuring: join the rows of these comma-separated "
                        "results names (runs of groups apart) into --out")
    parser.add_argument("--random-weights", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    args.groups = GROUPS if args.groups == "all" else tuple(args.groups.split(","))
    unknown = set(args.groups) - set(GROUPS)
    if unknown:
        parser.error(f"unknown groups: {', '.join(sorted(unknown))}")
    return args


def merge_parts(parts: Sequence[str], out: str) -> Path:
    """One results file from several runs' (each measured some groups, maybe on a timeout)."""
    import orjson

    from benchmarks.common import RESULTS_DIR

    merged: dict[str, Any] = {"parts": {}, "rows": []}
    for part in parts:
        path = RESULTS_DIR / f"{part}.json"
        if not path.exists():  # that step ran out of time: its rows are missing
            merged["parts"][part] = "missing"
            continue
        try:
            run = orjson.loads(path.read_bytes())
        except orjson.JSONDecodeError:  # killed while writing it
            merged["parts"][part] = "unreadable"
            continue
        merged["parts"][part] = {"groups": run.get("groups"), "date": run["environment"]["date"],
                                 "unfinished": run.get("unfinished", False)}
        merged["rows"] += [dict(row, part=part) for row in run["rows"]]
        for key in ("device", "random_weights", "tweets", "naive_tweets", "shipped_default"):
            if key in run:
                merged.setdefault(key, run[key])
    naive = next((r["mentions_per_s"] for r in merged["rows"]
                  if r["config"].startswith("naive")), None)
    candidates = [r for r in merged["rows"] if not r["config"].startswith("naive")
                  and r["config"] not in (*STAGE_ROWS, OVERHEAD_ROW)]
    if naive and candidates:
        best = max(candidates, key=lambda r: r["mentions_per_s"])
        merged["best_end_to_end"] = best["config"]
        merged["speedup_vs_naive"] = round(best["mentions_per_s"] / naive, 2)
    merged["cuda"] = torch.version.cuda
    return write_results(out, merged)


def main() -> None:
    args = parse_args()
    if args.merge:
        print(f"wrote {merge_parts(args.merge.split(','), args.out or 'sentiment_cuda')}")
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    on_cuda = device.type == "cuda"
    batch_size = args.batch_size or AUTO_BATCH_SIZE.get(device.type, 64)
    sweep = [int(b) for b in (args.sweep or ("64,256,512,1024,2048" if on_cuda
                                             else "8,16,32,64,128")).split(",")]
    n = args.n if args.n else (65536 if on_cuda else 1024)
    tweets = interleaved_val_tweets(n)
    groups = set(args.groups)

    with tempfile.TemporaryDirectory() as scratch:
        model_dir = (random_weight_checkpoint(Path(scratch)) if args.random_weights
                     else DEFAULT_MODEL_DIR)
        rows, shipped_int8 = measure_groups(model_dir, device, tweets, groups, args,
                                            batch_size=batch_size, sweep=sweep)
    report(rows, args, device, tweets, shipped_int8=shipped_int8, batch_size=batch_size)


class RowRunner:
    """Builds engines on one model and device, times them, and keeps (and saves) the rows."""

    def __init__(self, model_dir: Path, device: torch.device, tweets: list[str],
                 args: argparse.Namespace, batch_size: int) -> None:
        self.model_dir, self.device, self.tweets = model_dir, device, tweets
        self.args, self.batch_size = args, batch_size
        self.rows: list[dict[str, Any]] = []

    def engine(self, size: int, *, sort: bool = True, int8: bool | None = False,
               **options: Any) -> SentimentEngine:
        """An engine on this run's model and device, with batches of ``size``."""
        return SentimentEngine(self.model_dir, device=str(self.device), max_batch_size=size,
                               max_batch_tokens=size * 128, sort_by_length=sort,
                               quantize_int8=int8, **options)

    def add(self, row: dict[str, Any]) -> None:
        """Keep a measured row, print it, and save every row so far."""
        self.rows.append(row)
        print_table([row], header=len(self.rows) == 1)
        # saved as it goes: a run stopped by a timeout keeps the rows it measured
        write_results(self.args.out or f"sentiment_{self.device.type}", {
            "device": str(self.device), "random_weights": self.args.random_weights,
            "groups": list(self.args.groups), "rows": self.rows, "unfinished": True})

    def measure(self, timing: Any, *args: Any, **engine_options: Any) -> None:
        """Build an engine, time it, then stop its tokenising threads."""
        size = engine_options.pop("size", self.batch_size)
        with self.engine(size, **engine_options) as built:
            measured = timing(*args, built, self.tweets)
        for row in measured if isinstance(measured, list) else [measured]:
            self.add(row)


def measure_groups(model_dir: Path, device: torch.device, tweets: list[str], groups: set[str],
                   args: argparse.Namespace, *, batch_size: int, sweep: list[int]
                   ) -> tuple[list[dict[str, Any]], bool]:
    """Every row of the groups asked for, printed as it is measured (the #35 rows first)."""
    runner = RowRunner(model_dir, device, tweets, args, batch_size)
    measure, add = runner.measure, runner.add
    # what the pipeline runs when nothing is configured: int8 on CPU for a calibrated
    # model (the bundled one is), fp32 otherwise; on CUDA, bf16 and CUDA graphs
    with runner.engine(1, int8=None) as probe:
        shipped_int8 = probe.quantized
    if "naive" in groups:
        add(time_naive(model_dir, device, tweets[: min(args.naive_n, len(tweets))]))
    plain: list[np.ndarray] = []
    if groups & {"feed", "compile"}:
        measure(partial(time_engine_carried, keep=plain), int8=shipped_int8)
    if "feed" in groups:
        measure(partial(time_engine_carried, reference=plain[0],
                        name="engine fed with carried ids, fresh buffers per batch"),
                int8=shipped_int8, reuse_buffers=False)
    if "compile" in groups:
        measure_compiled(measure, plain[0], shipped_int8=shipped_int8)
    if "engines" in groups:
        for count in (int(c) for c in args.engines.split(",")):
            add(time_engine_processes(model_dir, device, tweets, count=count,
                                      batch_size=batch_size, int8=shipped_int8))
    measure_earlier_groups(runner, groups, shipped_int8=shipped_int8, sweep=sweep)
    return runner.rows, shipped_int8


def measure_earlier_groups(runner: RowRunner, groups: set[str], *, shipped_int8: bool,
                           sweep: list[int]) -> None:
    """The rows from before #35: text in, stages, the batcher, its overhead, the sweep."""
    on_cuda, measure = runner.device.type == "cuda", runner.measure
    int8_tag = ", int8" if shipped_int8 else ""
    if "engine" in groups:
        measure(time_engine, "engine")
        if not on_cuda:
            measure(time_engine, "engine, int8", int8=True)
        if on_cuda:
            measure(time_engine, "engine, eager launches (no CUDA graphs)", cuda_graphs=False)
        measure(time_engine, "engine, no length sorting" + int8_tag, sort=False,
                int8=shipped_int8)
    if "stages" in groups:
        measure(time_stages, int8=shipped_int8)
    if "batcher" in groups:
        measure(time_batcher, int8=shipped_int8)
        measure(lambda built, texts: time_batcher(built, texts, carry=True), int8=shipped_int8)
    if "overhead" in groups:
        runner.add(time_batcher_overhead(interleaved_val_tweets(65536), runner.batch_size))
    if "sweep" in groups:
        for int8 in (False, True) if not on_cuda else (False,):
            for size in sweep:
                measure(time_engine, "engine sweep" + (", int8" if int8 else ""), size=size,
                        int8=int8)


def measure_compiled(measure: Any, plain: np.ndarray, *, shipped_int8: bool) -> None:
    """The carried-ids row through torch.compile, its scores against the plain engine's.

    The engine does not compile an int8 model (it changed its scores), so where int8 is the
    default (CPU) the comparison is made in fp32.
    """
    name = "engine fed with carried ids, torch.compile"
    if shipped_int8:
        fp32: list[np.ndarray] = []
        measure(partial(time_engine_carried, keep=fp32,
                        name="engine fed with carried ids, fp32"), int8=False)
        plain, name = fp32[0], name + ", fp32"
    started = time.perf_counter()
    measure(partial(time_engine_carried, reference=plain, name=name), int8=False,
            compile_model=True)
    print(f"  (built, warmed up, compiled and measured in {time.perf_counter() - started:.0f} s)",
          flush=True)


def report(rows: list[dict[str, Any]], args: argparse.Namespace, device: torch.device,
           tweets: list[str], *, shipped_int8: bool, batch_size: int) -> None:
    """The table again, the headline against the naive baseline, and the JSON."""
    naive_row = next((r for r in rows if r["config"].startswith("naive")), None)
    naive = naive_row["mentions_per_s"] if naive_row else None
    # the headline counts only configurations that go from text (or carried ids) to labels
    candidates = [r for r in rows if r is not naive_row
                  and r["config"] not in (*STAGE_ROWS, OVERHEAD_ROW)]
    best = max(candidates, key=lambda r: r["mentions_per_s"]) if candidates else None
    shipped = next((r for r in rows if r["config"] == "engine" + (", int8" if shipped_int8
                                                                  else "")), None)
    print()
    print_table(rows)
    results: dict[str, Any] = {
        "device": str(device), "random_weights": args.random_weights,
        "torch_threads": torch.get_num_threads(), "tweets": len(tweets),
        "naive_tweets": naive_row["mentions"] if naive_row else 0,
        "groups": list(args.groups), "rows": rows,
    }
    if shipped is not None and naive:
        print(f"\nshipped default ({'int8' if shipped_int8 else 'fp32'}, batch {batch_size}): "
              f"{shipped['mentions_per_s']:.1f} mentions/s "
              f"= {shipped['mentions_per_s'] / naive:.1f}x the naive pipeline")
        results["shipped_default"] = {
            "int8": shipped_int8, "batch_size": batch_size,
            "mentions_per_s": shipped["mentions_per_s"],
            "speedup_vs_naive": round(shipped["mentions_per_s"] / naive, 2)}
    if best is not None and naive:
        print(f"best configuration: {best['config']}, {best['mentions_per_s']:.1f} mentions/s "
              f"= {best['mentions_per_s'] / naive:.1f}x the naive pipeline "
              f"({statistics.fmean(len(t) for t in tweets):.0f} characters per tweet on average)")
        results["best_end_to_end"] = best["config"]
        results["speedup_vs_naive"] = round(best["mentions_per_s"] / naive, 2)
    path = write_results(args.out or f"sentiment_{device.type}", results)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
