"""Batch planning: texts' token counts cut into batches, and the shapes a batch is padded to.

Pure numpy over lengths, so the engine and the batcher plan the same way and the plans are
tested without a model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

_PAD_MULTIPLE = 8


def _row_buckets(max_batch_size: int, max_batch_tokens: int, width: int) -> list[int]:
    """The row counts a batch of ``width`` is padded up to: the most that fit, 1/4, 1/16.

    >>> _row_buckets(1024, 1024 * 128, 40)
    [64, 256, 1024]
    """
    capacity = max(1, min(max_batch_size, max_batch_tokens // width))
    return sorted({max(1, capacity // 16), max(1, capacity // 4), capacity})


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


__all__ = [
    "plan_batches",
]
