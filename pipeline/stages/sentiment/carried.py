"""Token ids carried on the mention: tokenised once where the cores are, scored on the GPU.

A GPU worker that tokenises its own mentions is bound by one Python process's tokenizer
(measured: see benchmarks/README.md). The ingest workers, many and on CPU, tokenise each
mention once with the sentiment model's own tokenizer and write the ids on it as
``sentiment_tokens``; the sentiment worker reads them back with one base64 call and a few
numpy operations per micro-batch instead of tokenising.

The wire form is one string, ``"<fingerprint>.<payload>"``: the fingerprint names the
tokenizer, the truncation and the cleaning that made the ids (a worker with another model or
``max_tokens`` tokenises the text itself instead of trusting them), and the payload is the
ids as little-endian 3-byte integers in base64. Three bytes are exactly four base64
characters, so payloads never pad, and a batch's payloads decode as one joined string.

>>> carrier = TokenCarrier(vocab_size=250_002, max_tokens=128, fingerprint="ab12cd34")
>>> wire = carrier.wire(PackedTokens.from_rows([(0, 9, 250_001, 2), ()]))
>>> wire
['ab12cd34.AAAACQAAkdADAgAA', 'ab12cd34.']
>>> carrier.read(wire + [None, "other.AAAA"]).rows.tolist()
[0, 1]
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.config import Settings
from pipeline.stages.sentiment.bundled import DEFAULT_MODEL_DIR
from pipeline.stages.sentiment.tokens import PackedTokens, encode_packed, truncating_tokenizer

# The mention key the ids travel in.
CARRIED_KEY = "sentiment_tokens"
# Bump when clean_for_sentiment changes what a text tokenises to: old ids then stop matching.
_CLEANING_VERSION = "1"
_ID_BYTES = 3
# the largest vocabulary whose ids fit the wire form
LARGEST_CARRIED_VOCAB = 2 ** (8 * _ID_BYTES)
_SEPARATOR = "."


def tokenizer_fingerprint(tokenizer_json: str, max_tokens: int) -> str:
    """Eight hex digits naming a tokenizer, its truncation and the cleaning before it."""
    digest = hashlib.sha256()
    for part in (tokenizer_json, str(max_tokens), _CLEANING_VERSION):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:8]


@dataclass(frozen=True, slots=True)
class CarriedRead:
    """What a batch of carried values held: the usable ids, and whose they are."""

    # positions (in the values read) whose ids are usable, in order
    rows: np.ndarray
    packed: PackedTokens


class TokenCarrier:
    """Writes and reads one tokenizer's ids on mentions (see the module docstring).

    Args:
        vocab_size: ids at or above it are refused on reading (another producer's, or
            corrupt), so the model never sees an id it has no embedding for.
        max_tokens: the truncation the ids were made with; longer rows are refused.
        fingerprint: :func:`tokenizer_fingerprint` of the tokenizer and truncation.

    """

    def __init__(self, *, vocab_size: int, max_tokens: int, fingerprint: str) -> None:
        if vocab_size > LARGEST_CARRIED_VOCAB:
            raise ValueError(f"a vocabulary of {vocab_size} does not fit {_ID_BYTES}-byte ids")
        self.vocab_size = vocab_size
        self.max_tokens = max_tokens
        self.fingerprint = fingerprint
        self._prefix = fingerprint + _SEPARATOR

    def wire(self, packed: PackedTokens) -> list[str]:
        """Each text's ids of ``packed`` in the wire form, in order."""
        ids = packed.ids.astype("<u4", copy=False)
        payload = ids.view(np.uint8).reshape(-1, 4)[:, :_ID_BYTES].tobytes()
        encoded = base64.b64encode(payload).decode("ascii")
        chars = (packed.lengths * 4).tolist()
        values: list[str] = []
        start = 0
        for count in chars:
            values.append(self._prefix + encoded[start : start + count])
            start += count
        return values

    def read(self, values: Sequence[object]) -> CarriedRead:
        """The usable ids among ``values`` (one per mention; None or anything else skipped).

        A value is usable when it has this carrier's fingerprint, a whole number of ids, no
        id outside the vocabulary and no more than ``max_tokens`` of them; the rest are
        left out of :attr:`CarriedRead.rows`, and their mentions are tokenised from text.
        """
        prefix = self._prefix
        rows = [position for position, value in enumerate(values)
                if isinstance(value, str) and value.startswith(prefix)]
        payloads = [values[position][len(prefix):] for position in rows]  # type: ignore[index]
        packed = self._decode(payloads)
        if packed is None:  # something in the batch is broken: find what, one by one
            kept = [(row, one) for row, payload in zip(rows, payloads, strict=True)
                    if (one := self._decode([payload])) is not None]
            rows = [row for row, _ in kept]
            packed = PackedTokens.concat(one for _, one in kept)
        return CarriedRead(np.asarray(rows, dtype=np.int64), packed)

    def _decode(self, payloads: Sequence[str]) -> PackedTokens | None:
        """The payloads' ids, or None when any of them is not usable."""
        lengths = np.fromiter((len(p) for p in payloads), dtype=np.int64, count=len(payloads))
        if (lengths % 4).any() or (lengths > 4 * self.max_tokens).any():
            return None
        try:
            raw = base64.b64decode("".join(payloads), validate=True)
        except (binascii.Error, ValueError):
            return None
        triples = np.frombuffer(raw, dtype=np.uint8).reshape(-1, _ID_BYTES).astype(np.int32)
        ids = triples[:, 0] | (triples[:, 1] << 8) | (triples[:, 2] << 16)
        if len(ids) and int(ids.max()) >= self.vocab_size:
            return None
        return PackedTokens(ids, (lengths // 4).astype(np.int32))


class CarryingTokenizer:
    """The sentiment model's tokenizer at ingest: texts in, wire values out.

    Loads only the tokenizer file of the model folder (no weights, no torch), so an ingest
    worker stays small.
    """

    def __init__(self, model_dir: Path, max_tokens: int) -> None:
        tokenizer_json = (model_dir / "tokenizer.json").read_text(encoding="utf-8")
        self._tokenizer = truncating_tokenizer(tokenizer_json, max_tokens)
        self.max_tokens = max_tokens
        self.carrier = TokenCarrier(
            vocab_size=self._tokenizer.get_vocab_size(with_added_tokens=True),
            max_tokens=max_tokens,
            fingerprint=tokenizer_fingerprint(tokenizer_json, max_tokens),
        )

    def wire(self, texts: Sequence[str]) -> list[str]:
        """Each text's ids (after the sentiment cleaning) in the wire form."""
        return self.carrier.wire(encode_packed(self._tokenizer, texts, self.max_tokens))


def model_tokenizer_file(settings: Settings) -> Path | None:
    """The configured model's ``tokenizer.json``, when the model is a local folder with one."""
    folder = Path(settings.sentiment_model) if settings.sentiment_model else DEFAULT_MODEL_DIR
    tokenizer_file = folder / "tokenizer.json"
    return tokenizer_file if tokenizer_file.is_file() else None


def build_carrying_tokenizer(settings: Settings) -> CarryingTokenizer | None:
    """The ingest side's tokenizer when carrying is on (``sentiment_carry_tokens``).

    Raises :class:`FileNotFoundError` when carrying is on and the model has no tokenizer
    file here: a worker that cannot do what it was configured for fails at start.
    """
    if not settings.sentiment_carry_tokens:
        return None
    tokenizer_file = model_tokenizer_file(settings)
    if tokenizer_file is None:
        raise FileNotFoundError(
            "PIPELINE_SENTIMENT_CARRY_TOKENS is on, but the sentiment model is no local "
            "folder with a tokenizer.json")
    return CarryingTokenizer(tokenizer_file.parent, settings.sentiment_max_tokens)


__all__ = [
    "CARRIED_KEY",
    "LARGEST_CARRIED_VOCAB",
    "CarriedRead",
    "CarryingTokenizer",
    "TokenCarrier",
    "build_carrying_tokenizer",
    "model_tokenizer_file",
    "tokenizer_fingerprint",
]
