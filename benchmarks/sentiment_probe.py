"""Where a GPU batch's time goes: host work, device time per padded width, kernels, tokenising.

A diagnostic, not a benchmark of record: it reads the engine's internals. On a random-weight
model of the bundled model's shape (batches of 1024; 32 on CPU, where the device rows are
skipped) it prints:

- tokenising 65,536 val tweets in this process's threads, and the token-length spread;
- host milliseconds per full batch: padding (numpy), pinning, reading results back;
- device milliseconds per batch at widths 16/40/64/128: a captured CUDA graph, eager launches
  with a padding mask and without one (the eager host time beside it), by CUDA events;
- the top kernels of three eager forwards at width 40 (``torch.profiler``);
- scoring the pre-tokenised tweets twice, graphs then eager (the first call per shape pays
  for kernel selection, so the second of each is the steady state).

Run: ``python -m benchmarks.sentiment_probe`` (a GPU machine; ``PIPELINE_SHARED_DATA`` where
the XLM-T val splits are). ``--padding-only`` times only the host padding of a 1,024-row batch
(reused buffers against fresh arrays), with no model: it runs anywhere.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import torch

from benchmarks.sentiment import interleaved_val_tweets, random_weight_checkpoint
from pipeline.stages.sentiment.assembly import BatchAssembler
from pipeline.stages.sentiment.engine import SentimentEngine
from pipeline.stages.sentiment.feed import HostCopy, Launched
from pipeline.stages.sentiment.labels import label_results
from pipeline.stages.sentiment.tokens import PackedTokens

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def device_ms(run: Callable[[], object], repeats: int) -> float:
    """Mean device milliseconds of ``run``, by CUDA events around ``repeats`` calls."""
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeats):
        run()
    end.record()
    end.synchronize()
    return round(start.elapsed_time(end) / repeats, 3)


def host_ms(run: Callable[[], object], repeats: int = 20) -> float:
    started = time.perf_counter()
    for _ in range(repeats):
        run()
    return round((time.perf_counter() - started) / repeats * 1e3, 3)


def probe_device(engine: SentimentEngine, rows: int) -> None:
    assert engine._graphs is not None
    with torch.inference_mode():
        for width in (16, 40, 64, 128):
            ids = torch.full((rows, width), 5, device=engine.device)
            mask = torch.ones((rows, width), dtype=torch.int64, device=engine.device)
            mask[::2, width // 2 :] = 0
            graph = engine._graphs.for_batch(rows, width)
            assert graph is not None
            replay = device_ms(graph.graph.replay, 20)
            with_mask = partial(engine.model, input_ids=ids, attention_mask=mask)
            masked = device_ms(with_mask, 5)
            unmasked = device_ms(partial(engine.model, input_ids=ids), 5)
            issue = host_ms(with_mask, 5)
            torch.cuda.synchronize()
            print(f"width {width}: graph replay {replay} ms, eager+mask {masked} ms, "
                  f"eager no mask {unmasked} ms, eager host-issue {issue:.2f} ms", flush=True)
        ids = torch.full((rows, 40), 5, device=engine.device)
        mask = torch.ones((rows, 40), dtype=torch.int64, device=engine.device)
        mask[::2, 20:] = 0
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as profiled:
            for _ in range(3):
                engine.model(input_ids=ids, attention_mask=mask)
            torch.cuda.synchronize()
        print(profiled.key_averages().table(sort_by="self_cuda_time_total", row_limit=14,
                                            max_name_column_width=60))


def padding_only(rows: int = 1024, width: int = 40, repeats: int = 200) -> None:
    """Host ms per batch: the assembler's reused buffers against fresh arrays, random ids."""
    draw = np.random.default_rng(0)
    lengths = draw.integers(5, width + 1, size=rows).astype(np.int32)
    packed = PackedTokens(draw.integers(3, 250_000, size=int(lengths.sum())).astype(np.int32),
                          lengths)
    assembler = BatchAssembler(1, rows * width, 4)
    starts = packed.starts

    def fresh() -> None:  # the padding before #35: new arrays for every batch
        columns = np.arange(width)
        present = columns[None, :] < lengths[:, None]
        ids = np.full((rows, width), 1, dtype=np.int64)
        ids[present] = packed.ids[(starts[:, None] + columns[None, :])[present]]
        attention = np.zeros((rows, width), dtype=np.int64)
        attention[present] = 1

    reused_ms = host_ms(lambda: assembler.assemble(packed.ids, starts, lengths, rows=rows,
                                                   width=width), repeats)
    print(f"host pad ms, {rows} x {width}: reused buffers {reused_ms}, fresh arrays "
          f"{host_ms(fresh, repeats)}", flush=True)


def main() -> None:
    if "--padding-only" in sys.argv[1:]:
        padding_only()
        return
    cuda = torch.cuda.is_available()
    rows = 1024 if cuda else 32
    tweets = interleaved_val_tweets(65536 if cuda else 2048)
    with tempfile.TemporaryDirectory() as scratch:
        engine = SentimentEngine(random_weight_checkpoint(Path(scratch)),
                                 device="cuda" if cuda else "cpu", max_batch_size=rows,
                                 max_batch_tokens=rows * 128)
        started = time.perf_counter()
        packed = engine.encode_packed(tweets)
        seconds = time.perf_counter() - started
        lengths = packed.lengths
        print(f"threads tokenise {len(tweets) / seconds:.0f}/s; tokens mean "
              f"{lengths.mean():.1f} p50 {np.median(lengths)} p90 "
              f"{np.percentile(lengths, 90)}", flush=True)

        picked = np.arange(rows)
        starts, kept = packed.starts[picked], np.minimum(packed.lengths[picked], 40)
        assembler = BatchAssembler(engine.pad_id, rows * 40, 2)
        ids = np.full((rows, 40), 1, dtype=np.int64)

        def pad() -> None:
            assembler.assemble(packed.ids, starts, kept, rows=rows, width=40)

        def pad_fresh() -> None:  # the padding before #35: new arrays for every batch
            columns = np.arange(40)
            present = columns[None, :] < kept[:, None]
            fresh = np.full((rows, 40), 1, dtype=np.int64)
            fresh[present] = packed.ids[(starts[:, None] + columns[None, :])[present]]
            attention = np.zeros((rows, 40), dtype=np.int64)
            attention[present] = 1

        print(f"host pad ms (reused buffers) {host_ms(pad)}; (fresh arrays, before #35) "
              f"{host_ms(pad_fresh)}", flush=True)
        if cuda:
            print(f"host pin ms (a fresh pinned copy, the feed before #35) "
                  f"{host_ms(lambda: torch.from_numpy(ids).pin_memory())}", flush=True)
        scores = np.zeros((rows, 3))
        done = Launched(picked, time.perf_counter(), HostCopy(torch.rand(rows, 3), None))
        print(f"host collect ms {host_ms(lambda: engine._collect(done, scores))}", flush=True)
        print(f"host results ms {host_ms(lambda: label_results(scores))}", flush=True)
        if cuda:
            probe_device(engine, rows)
            for label, graphs in (("graphs", True), ("eager", False)):
                assert engine._graphs is not None
                engine._graphs.usable = graphs
                for attempt in ("first", "second"):
                    started = time.perf_counter()
                    engine._score_packed(packed)
                    rate = len(packed) / (time.perf_counter() - started)
                    print(f"_score_packed, {label}, {attempt} call: {rate:.0f}/s", flush=True)


if __name__ == "__main__":
    main()
