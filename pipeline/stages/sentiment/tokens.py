"""Sentiment tokenisation: cleaning, and a call's token ids packed in two numpy arrays.

On a GPU host, the Rust unigram tokenizer of the bundled model is the larger part of a
mention's cost (measured: see benchmarks/README.md). Past the tokenizer a call's ids travel
as :class:`PackedTokens` (all ids one after another, and each text's count) rather than as
a Python list per text, so padding a batch is a few numpy operations.

>>> packed = PackedTokens.from_rows([(0, 7, 2), (), (0, 9, 9, 2)])
>>> packed.lengths.tolist(), packed.row(2)
([3, 0, 4], (0, 9, 9, 2))
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# Handles are replaced the way XLM-T's training data was anonymised.
_HANDLE = re.compile(r"(?<![\w@])@\w+")
# Control and zero-width/format characters: the tokenizer drops or blanks them anyway, and
# a post made only of them has nothing to score.
_INVISIBLE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2064\ufeff]")
# Cheap guard on pathological inputs before tokenising: enough characters for any
# realistic max_tokens, so a 100k-character post costs no more than a long tweet.
CHARS_PER_TOKEN_BOUND = 32
# ASCII control characters (the whitespace ones too) to spaces, for one bytes.translate
_ASCII_CONTROLS_TO_SPACE = bytes(32 if byte < 32 or byte == 127 else byte for byte in range(256))


def clean_for_sentiment(text: str) -> str:
    """Anonymise handles to ``@user`` (as in the training data); drop invisible characters.

    Invisible characters become spaces before handles are replaced; neither is a word
    character nor ``@``, so the order changes nothing. ASCII text (about half of the XLM-T
    tweets) is cleared of controls by a byte translation instead of the Unicode class, and
    text without ``@`` skips the handle pattern: cleaning holds the GIL that the tokenising
    threads of a GPU worker share, so its time per text counts.

    >>> clean_for_sentiment("RT  @acme_help   thanks!!\u200b")
    'RT @user thanks!!'
    """
    if text.isascii():
        text = text.encode().translate(_ASCII_CONTROLS_TO_SPACE).decode()
    else:
        text = _INVISIBLE.sub(" ", text)
    if "@" in text:
        text = _HANDLE.sub("@user", text)
    return " ".join(text.split())


@dataclass(frozen=True, slots=True)
class PackedTokens:
    """Token ids of many texts: all ids one after another, and each text's count.

    A text with nothing left to score after cleaning has length 0.
    """

    ids: np.ndarray  # int32, concatenated
    lengths: np.ndarray  # int32, one per text

    def __len__(self) -> int:
        return len(self.lengths)

    @property
    def starts(self) -> np.ndarray:
        """Where each text's ids begin in :attr:`ids`."""
        starts = np.zeros(len(self.lengths), dtype=np.int64)
        np.cumsum(self.lengths[:-1], out=starts[1:])
        return starts

    def row(self, index: int) -> tuple[int, ...]:
        """One text's ids."""
        start = int(self.lengths[:index].sum())
        return tuple(self.ids[start : start + int(self.lengths[index])].tolist())

    def rows(self) -> list[tuple[int, ...]]:
        """Every text's ids as a tuple (for callers that key or inspect single texts)."""
        bounds = np.cumsum(self.lengths).tolist()
        flat = self.ids.tolist()
        return [tuple(flat[end - length : end])
                for end, length in zip(bounds, self.lengths.tolist(), strict=True)]

    def take(self, rows: np.ndarray) -> PackedTokens:
        """The texts at ``rows`` (indices, any order, repeats allowed), in that order.

        >>> PackedTokens.from_rows([(1,), (2, 2), (3, 3, 3)]).take(np.array([2, 0])).rows()
        [(3, 3, 3), (1,)]
        """
        lengths = self.lengths[rows]
        ends = np.cumsum(lengths, dtype=np.int64)
        # each taken id's index in self.ids: its row's start, plus its place in the row
        shift = np.repeat(self.starts[rows] - (ends - lengths), lengths)
        return PackedTokens(self.ids[shift + np.arange(int(ends[-1]) if len(ends) else 0)],
                            lengths)

    @classmethod
    def from_rows(cls, rows: Sequence[Sequence[int]]) -> PackedTokens:
        """Pack per-text id sequences."""
        lengths = np.fromiter((len(r) for r in rows), dtype=np.int32, count=len(rows))
        ids = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.int32,
                          count=int(lengths.sum()))
        return cls(ids, lengths)

    @classmethod
    def concat(cls, parts: Iterable[PackedTokens]) -> PackedTokens:
        """The texts of several packs, in order, as one."""
        parts = list(parts)
        if not parts:
            return cls(np.zeros(0, np.int32), np.zeros(0, np.int32))
        return cls(np.concatenate([p.ids for p in parts]),
                   np.concatenate([p.lengths for p in parts]))


def encode_packed(tokenizer: Any, texts: Sequence[str], max_tokens: int) -> PackedTokens:
    """Clean and tokenise with a ``tokenizers.Tokenizer`` already set to truncate."""
    return pack_token_ids(texts, max_tokens,
                          lambda present: [e.ids for e in tokenizer.encode_batch_fast(present)])


def pack_token_ids(texts: Sequence[str], max_tokens: int,
                   ids_of: Callable[[list[str]], list[list[int]]]) -> PackedTokens:
    """Clean ``texts`` and pack the ids ``ids_of`` gives for those with something left.

    Texts with nothing left after cleaning are not tokenised: they get length 0.
    """
    cleaned = [clean_for_sentiment(t[: max_tokens * CHARS_PER_TOKEN_BOUND]) for t in texts]
    present = [index for index, text in enumerate(cleaned) if text]
    rows = ids_of([cleaned[index] for index in present]) if present else []
    lengths = np.zeros(len(texts), dtype=np.int32)
    lengths[present] = [len(row) for row in rows]
    ids = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.int32,
                      count=int(lengths.sum()))
    return PackedTokens(ids, lengths)


def truncating_tokenizer(tokenizer_json: str, max_tokens: int) -> Any:
    """A ``tokenizers.Tokenizer`` from its JSON, without padding, truncating to ``max_tokens``."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_str(tokenizer_json)
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_tokens)
    return tokenizer


__all__ = [
    "CHARS_PER_TOKEN_BOUND",
    "PackedTokens",
    "clean_for_sentiment",
    "encode_packed",
    "pack_token_ids",
    "truncating_tokenizer",
]
