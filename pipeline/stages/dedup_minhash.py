"""Dedup's near copies: MinHash signatures of matching texts, and their LSH band keys.

MinHash over character 4-grams of the matching text, 64 permutations in 16 LSH bands of 4
rows; the dedup stage compares a text with the conversations it shares a band with. The
4-grams of a whole batch are hashed at once with NumPy and handed to ``rensa`` (Rust MinHash)
as one flat buffer, so no Python object is built per 4-gram: at the same quality, the fastest
of rensa fed Python 4-gram lists, a pure NumPy MinHash and ``datasketch``; a NumPy SimHash is
fast too, but at the bit agreement that keeps hard negatives out it finds far fewer one-word
edits (``benchmarks/README.md``, Dedup).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from rensa import RMinHash

Signatures = npt.NDArray[np.uint32]

NUM_PERM = 64
BANDS = 16
ROWS = NUM_PERM // BANDS
SEED = 1729
SHINGLE = 4

# odd 64-bit constants (golden ratio and splitmix64's) for multiply-xor mixing
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def _finalise(values: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    # splitmix64's finaliser: every input bit flips about half of the output bits
    values = values ^ (values >> np.uint64(30))
    values = values * _MIX1
    values = values ^ (values >> np.uint64(27))
    values = values * _MIX2
    return values ^ (values >> np.uint64(31))


def shingle_hashes(
    matching_texts: Sequence[str],
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
    """64-bit hashes of the character 4-grams of each text, as one flat array and row offsets.

    Row ``i`` is ``hashes[offsets[i]:offsets[i + 1]]``; a non-empty text shorter than four
    characters is one (NUL-padded) gram, an empty text has none. The hashes are arithmetic on
    code points, so every process (whatever its ``PYTHONHASHSEED``) gets the same ones.
    """
    padded_texts = [
        text.ljust(SHINGLE, "\0") if 0 < len(text) < SHINGLE else text for text in matching_texts
    ]
    lengths = np.fromiter((len(text) for text in padded_texts), dtype=np.int64,
                          count=len(padded_texts))
    points = np.frombuffer("".join(padded_texts).encode("utf-32-le"), dtype=np.uint32)
    total = len(points)
    # padding keeps the grams that start in a text's last three characters in bounds; those
    # grams run into the next text and are dropped below
    extended = np.concatenate([points, np.zeros(SHINGLE - 1, dtype=np.uint32)]).astype(np.uint64)
    mixed = extended[:total].copy()
    for shift in range(1, SHINGLE):
        mixed = (mixed * _GOLDEN) ^ extended[shift: shift + total]
    counts = np.maximum(lengths - (SHINGLE - 1), 0)
    text_starts = np.cumsum(lengths) - lengths
    row_starts = np.cumsum(counts) - counts
    # position of every kept gram: its text's start plus its rank within the text
    keep = np.repeat(text_starts - row_starts, counts) + np.arange(int(counts.sum()))
    hashes = _finalise(mixed[keep])
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.uint64)
    return hashes, offsets


def signatures(matching_texts: Sequence[str]) -> Signatures:
    """MinHash signatures (one row of ``NUM_PERM`` uint32 per text) of normalised texts.

    The same in every process; an empty text gets a row of 0xFFFFFFFF (it matches nothing,
    see ``min_near_chars``).
    """
    if not matching_texts:
        return np.zeros((0, NUM_PERM), dtype=np.uint32)
    hashes, offsets = shingle_hashes(matching_texts)
    matrix = RMinHash.digest_matrix_from_flat_token_hashes(hashes, offsets, NUM_PERM, SEED)
    return np.array(matrix.to_rows(), dtype=np.uint32)


def signature(matching_text: str) -> list[int]:
    """MinHash signature (``NUM_PERM`` values) of one normalised text."""
    return [int(value) for value in signatures([matching_text])[0]]


def similarity(left: Sequence[int] | Signatures, right: Sequence[int] | Signatures) -> float:
    """Estimated Jaccard similarity of two signatures."""
    return float(np.count_nonzero(np.asarray(left) == np.asarray(right))) / NUM_PERM


def band_keys(rows: Signatures) -> npt.NDArray[np.uint64]:
    """LSH band keys (``BANDS`` per signature row); the band number is mixed into the key."""
    grouped = rows.reshape(len(rows), BANDS, ROWS).astype(np.uint64)
    keys = grouped[:, :, 0]
    for row in range(1, ROWS):
        keys = (keys * _GOLDEN) ^ grouped[:, :, row]
    keys = keys ^ (np.arange(BANDS, dtype=np.uint64) << np.uint64(56))
    return _finalise(keys)


def band_keys_of(sig: Sequence[int] | Signatures) -> list[int]:
    """The LSH band keys of one signature."""
    row = np.asarray(sig, dtype=np.uint32).reshape(1, NUM_PERM)
    return [int(key) for key in band_keys(row)[0]]


def encode_signature(sig: Signatures) -> str:
    """Store form of a signature: base64 of its values as big-endian uint32 (344 characters)."""
    return base64.b64encode(sig.astype(">u4").tobytes()).decode("ascii")


def decode_signature(stored: str | Sequence[int]) -> Signatures:
    """A signature back from its store form (base64; hex or a list of ints in older entries)."""
    if isinstance(stored, str):
        raw = bytes.fromhex(stored) if len(stored) == 8 * NUM_PERM else base64.b64decode(stored)
        return np.frombuffer(raw, dtype=">u4").astype(np.uint32)
    return np.asarray(stored, dtype=np.uint32)

