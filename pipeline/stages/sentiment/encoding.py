"""Sentiment tokenisation for a checkpoint: texts, or ids carried on mentions, to packed ids.

:class:`SentimentEncoder` is the engine's tokenising half (any thread may call it), apart
from the model so that a process that only hands batches to engine processes
(:mod:`.engines`) tokenises without loading the weights.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.stages.sentiment.carried import (
    LARGEST_CARRIED_VOCAB,
    TokenCarrier,
    tokenizer_fingerprint,
)
from pipeline.stages.sentiment.tokens import (
    PackedTokens,
    encode_packed,
    pack_token_ids,
    truncating_tokenizer,
)

# texts per tokenizer call when a large call is spread over threads
_TOKENIZE_CHUNK = 1024


class SentimentEncoder:
    """A checkpoint's tokenizer, and the carried ids it accepts.

    Args:
        source: the model folder (or Hub id) whose tokenizer to load.
        max_tokens: texts are truncated to this many tokens (special tokens included).
        tokenize_threads: threads tokenising one large call (default: cores, at most 8).
        carrier: reads ids carried on mentions for this tokenizer (None: always tokenise).

    ``on_inputs``, when set, is called from :meth:`encode_carried` (on a tokenising thread)
    with how many texts came with usable carried ids and how many were tokenised.

    """

    def __init__(self, source: str | Path, *, max_tokens: int, tokenize_threads: int | None,
                 carrier: TokenCarrier | None) -> None:
        self.max_tokens = max_tokens
        self.carrier = carrier
        self.on_inputs: Callable[[int, int], None] | None = None
        self._load_tokenizer(source)
        self._tokenize_threads = tokenize_threads or min(8, os.cpu_count() or 1)
        self._tokenize_thread_pool: ThreadPoolExecutor | None = None

    def _load_tokenizer(self, source: str | Path) -> None:
        """The checkpoint's tokenizer and padding id, and its Rust backend when it has one."""
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(source)
        if self.tokenizer.pad_token_id is None:
            raise ValueError(f"{source}: the tokenizer has no padding token")
        self.pad_id = int(self.tokenizer.pad_token_id)
        self._backend: Any = None
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        if backend is not None and hasattr(backend, "encode_batch_fast"):
            # The Rust tokenizer straight (no offsets, no BatchEncoding).
            self._backend = truncating_tokenizer(backend.to_str(), self.max_tokens)

    @property
    def tokenize_threads(self) -> int:
        """Threads that may tokenise at once (one large call, or the batcher's requests)."""
        return self._tokenize_threads

    def close(self) -> None:
        """Stop the tokenising threads (a later large call starts them again)."""
        if self._tokenize_thread_pool is not None:
            self._tokenize_thread_pool.shutdown(wait=True)
            self._tokenize_thread_pool = None

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

    def encode_carried(self, texts: Sequence[str],
                       carried: Sequence[object] | None = None) -> PackedTokens:
        """Ids of ``texts``: from ``carried`` (one value per text) where usable, else tokenised.

        Carried values are those the ingest stage wrote (:mod:`.carried`); one made by
        another tokenizer or truncation, or unreadable, is ignored and its text tokenised.
        """
        if carried is None or self.carrier is None:
            self._count_inputs(0, len(texts))
            return self.encode_packed(texts)
        read = self.carrier.read(carried)
        self._count_inputs(len(read.rows), len(texts) - len(read.rows))
        if len(read.rows) == len(texts):
            return read.packed
        missing = np.setdiff1d(np.arange(len(texts)), read.rows)
        fresh = self.encode_packed([texts[i] for i in missing.tolist()])
        both = PackedTokens.concat([read.packed, fresh])
        return both.take(np.argsort(np.concatenate([read.rows, missing]), kind="stable"))

    def _count_inputs(self, carried: int, tokenised: int) -> None:
        if self.on_inputs is not None:
            self.on_inputs(carried, tokenised)

    def _encode_slow(self, texts: Sequence[str]) -> PackedTokens:
        """A tokenizer without a Rust backend: its own batch call."""
        return pack_token_ids(texts, self.max_tokens, lambda present: self.tokenizer(
            present, truncation=True, max_length=self.max_tokens,
            return_attention_mask=False, return_token_type_ids=False,
        )["input_ids"])


class EncoderFront:
    """The tokenising calls of an engine, answered by its :attr:`encoder`.

    Shared by :class:`~.engine.SentimentEngine` and :class:`~.engines.EngineProcesses`, which
    the batcher and the agent use alike.
    """

    encoder: SentimentEncoder

    @property
    def on_inputs(self) -> Callable[[int, int], None] | None:
        """See :attr:`SentimentEncoder.on_inputs`."""
        return self.encoder.on_inputs

    @on_inputs.setter
    def on_inputs(self, count: Callable[[int, int], None] | None) -> None:
        self.encoder.on_inputs = count

    @property
    def tokenize_threads(self) -> int:
        """Threads that may tokenise at once (one large call, or the batcher's requests)."""
        return self.encoder.tokenize_threads

    def encode_packed(self, texts: Sequence[str]) -> PackedTokens:
        """Clean and tokenise into flat arrays (see :class:`PackedTokens`)."""
        return self.encoder.encode_packed(texts)

    def encode_carried(self, texts: Sequence[str],
                       carried: Sequence[object] | None = None) -> PackedTokens:
        """See :meth:`SentimentEncoder.encode_carried`."""
        return self.encoder.encode_carried(texts, carried)


def carrier_of(model_path: Path, max_tokens: int, vocab_size: int | None) -> TokenCarrier | None:
    """What reads ids carried for this model folder's tokenizer, when it has its file."""
    tokenizer_file = model_path / "tokenizer.json"
    vocab_size = int(vocab_size or 0)
    if not tokenizer_file.is_file() or not 0 < vocab_size <= LARGEST_CARRIED_VOCAB:
        return None
    fingerprint = tokenizer_fingerprint(tokenizer_file.read_text(encoding="utf-8"), max_tokens)
    return TokenCarrier(vocab_size=vocab_size, max_tokens=max_tokens, fingerprint=fingerprint)


__all__ = [
    "EncoderFront",
    "SentimentEncoder",
    "carrier_of",
]
