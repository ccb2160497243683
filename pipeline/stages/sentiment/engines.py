"""Several engine processes behind one batcher: when one Python process cannot feed the device.

A GPU worker's host side (padding, launching, reading back, and the GIL its threads share)
can bound it before the device does (measured: see benchmarks/README.md). With
``sentiment_engines`` above 1 the worker starts that many engine processes, each with its
own :class:`~.engine.SentimentEngine` (its own CUDA context, graphs and buffers, on the same
device), and the batcher keeps one batch in flight per process. The worker itself only
tokenises (:class:`~.encoding.SentimentEncoder`, no weights loaded) and hands each batch over
as two arrays (its packed ids and their lengths), taking one (texts, 3) array of scores
back. Processes rather than CUDA streams in one process: streams would leave the host work
of every stream behind one GIL.

>>> with EngineProcesses(DEFAULT_MODEL_DIR, count=2, device="cpu") as engines:  # doctest: +SKIP
...     engines.score_packed(engines.encode_packed(["great phone"]))[0].label
'positive'
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.config import Settings
from pipeline.stages.sentiment.bundled import DEFAULT_MODEL_DIR
from pipeline.stages.sentiment.encoding import EncoderFront, SentimentEncoder, carrier_of
from pipeline.stages.sentiment.engine import (
    SentimentEngine,
    _model_source,
    batch_size_for,
    build_engine,
    choose_device,
)
from pipeline.stages.sentiment.labels import SentimentResult, label_results
from pipeline.stages.sentiment.tokens import PackedTokens

# seconds an engine process may take to load its model and warm up (CUDA graphs included)
_START_TIMEOUT_S = 600.0


def _serve(options: dict[str, Any], threads: int | None, connection: Connection) -> None:
    """An engine process: load, warm up, then score each batch sent until told to stop."""
    if threads:
        torch.set_num_threads(threads)
    try:
        engine = SentimentEngine(**options, tokenize_threads=1)
        engine.warm_up()
    except Exception as error:  # the parent reports it and refuses to start
        connection.send(("error", f"{type(error).__name__}: {error}"))
        return
    connection.send(("ready", None))
    while True:
        batch = connection.recv()
        if batch is None:
            return
        try:
            connection.send(("scores", engine.label_scores_packed(PackedTokens(*batch))))
        except Exception as error:  # a failed batch fails its requests, not the process
            connection.send(("error", f"{type(error).__name__}: {error}"))


class EngineProcesses(EncoderFront):
    """``count`` engine processes scoring batches side by side, for :class:`SentimentBatcher`.

    Args:
        model_dir, device, max_tokens, max_batch_size, max_batch_tokens: as for
            :class:`~.engine.SentimentEngine`; ``engine_options`` are passed on to it too.
        count: engine processes (each loads the model once).

    Thread-safe: up to ``count`` threads may score at once, each batch going to an idle
    process. An engine process that dies fails the batch it held and is not replaced.

    """

    def __init__(self, model_dir: str | Path = DEFAULT_MODEL_DIR, *, count: int,
                 device: str | None = None, max_tokens: int = 128, max_batch_size: int = 64,
                 max_batch_tokens: int = 8192, **engine_options: Any) -> None:
        source, hub_id = _model_source(model_dir)
        from transformers import AutoConfig

        vocab_size = getattr(AutoConfig.from_pretrained(source), "vocab_size", None)
        self.encoder = SentimentEncoder(
            source, max_tokens=max_tokens, tokenize_threads=None,
            carrier=None if hub_id else carrier_of(Path(model_dir), max_tokens, vocab_size))
        self.model_dir = Path(model_dir)
        self.device = choose_device(device)
        self.max_tokens, self.max_batch_size = max_tokens, max_batch_size
        self.max_batch_tokens = max_batch_tokens
        self.parallel_batches = count
        options = dict(engine_options, model_dir=model_dir, device=str(self.device),
                       max_tokens=max_tokens, max_batch_size=max_batch_size,
                       max_batch_tokens=max_batch_tokens)
        # on CPU the processes share the cores; on a GPU each needs little host compute
        threads = (max(1, (os.cpu_count() or 1) // count) if self.device.type == "cpu"
                   else None)
        context = multiprocessing.get_context("spawn")  # CUDA cannot be forked
        self._processes: list[Any] = []
        self._idle: queue.Queue[Connection] = queue.Queue()
        try:
            for index in range(count):
                ours, theirs = context.Pipe()
                process = context.Process(target=_serve, args=(options, threads, theirs),
                                          name=f"sentiment-engine-{index}", daemon=True)
                process.start()
                self._processes.append((process, ours))
            for _, connection in self._processes:
                self._await_ready(connection)
                self._idle.put(connection)
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _await_ready(connection: Connection) -> None:
        if not connection.poll(_START_TIMEOUT_S):
            raise TimeoutError(f"a sentiment engine process took over {_START_TIMEOUT_S} s")
        kind, detail = connection.recv()
        if kind != "ready":
            raise RuntimeError(f"a sentiment engine process failed to start: {detail}")

    # --- what the batcher and the agent use ----------------------------------------
    @property
    def alive(self) -> bool:
        """Whether every engine process is alive (the agent's readiness check)."""
        return bool(self._processes) and all(p.is_alive() for p, _ in self._processes)

    def warm_up(self) -> None:
        """Nothing: each engine process warmed up before it reported ready."""

    def label_scores_packed(self, packed: PackedTokens) -> np.ndarray:
        """Scores of a batch, from the next idle engine process (see the engine's)."""
        connection = self._idle.get()
        try:
            connection.send((packed.ids, packed.lengths))
            kind, payload = connection.recv()
        except (EOFError, OSError) as error:
            # that process is gone; the others go on (it is not put back)
            raise RuntimeError("a sentiment engine process died") from error
        self._idle.put(connection)
        if kind != "scores":
            raise RuntimeError(f"a sentiment engine process failed a batch: {payload}")
        return np.asarray(payload)

    def score_packed(self, packed: PackedTokens) -> list[SentimentResult]:
        """Results of a batch of already-tokenised texts, in order."""
        return label_results(self.label_scores_packed(packed))

    def close(self) -> None:
        """Stop the engine processes and the tokenising threads."""
        for process, connection in self._processes:
            with contextlib.suppress(OSError, ValueError):  # already gone
                connection.send(None)
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
            connection.close()
        self._processes = []
        self.encoder.close()

    def __enter__(self) -> EngineProcesses:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def build_scorer(settings: Settings) -> SentimentEngine | EngineProcesses:
    """The agent's engine: one in this process, or ``sentiment_engines`` processes."""
    if settings.sentiment_engines <= 1:
        return build_engine(settings)
    device = choose_device(settings.sentiment_device)
    batch_size = batch_size_for(settings, device)
    return EngineProcesses(
        settings.sentiment_model or DEFAULT_MODEL_DIR, count=settings.sentiment_engines,
        device=str(device), max_tokens=settings.sentiment_max_tokens,
        max_batch_size=batch_size, max_batch_tokens=batch_size * settings.sentiment_max_tokens,
        quantize_int8=settings.sentiment_int8,
        label_overrides=settings.sentiment_labels or None,
        compile_model=settings.sentiment_compile)


__all__ = [
    "EngineProcesses",
    "build_scorer",
]
