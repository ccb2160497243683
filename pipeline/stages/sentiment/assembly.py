"""Padded model batches assembled from packed token ids into buffers made once.

A batch is a few numpy operations over :class:`~.tokens.PackedTokens` (no Python per
mention), written into one of a small ring of flat host buffers: a batch of ``rows`` by
``width`` is a contiguous view of a slot's first ``rows * width`` elements, so every shape
the CUDA graphs use (:func:`~.planning._row_buckets`) fits the same buffers. The buffers
come from an allocator the caller gives: plain tensors on CPU, pinned ones on CUDA
(:mod:`.feed`), so a host-to-device copy never pins fresh memory.

>>> assembler = BatchAssembler(pad_id=1, capacity=16, slots=2)
>>> batch = assembler.assemble(np.array([5, 6, 7, 8, 9]), np.array([0, 3]), np.array([3, 2]),
...                            rows=3, width=8)
>>> batch.input_ids.numpy()[:, :4].tolist(), batch.attention.numpy()[:, :4].tolist()
([[5, 6, 7, 1], [8, 9, 1, 1], [1, 1, 1, 1]], [[1, 1, 1, 0], [1, 1, 0, 0], [1, 0, 0, 0]])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch


def _plain(elements: int) -> torch.Tensor:
    return torch.empty(elements, dtype=torch.int64)


@dataclass(frozen=True, slots=True)
class AssembledBatch:
    """One padded batch: views of a slot's buffers, ``rows`` by ``width``."""

    slot: int
    input_ids: torch.Tensor
    attention: torch.Tensor


def pad_into(ids: np.ndarray, starts: np.ndarray, lengths: np.ndarray, pad_id: int,
             input_ids: np.ndarray, attention: np.ndarray) -> None:
    """Write texts' ids, padded, into ``input_ids`` and their mask into ``attention``.

    Text ``i`` (ids ``ids[starts[i] : starts[i] + lengths[i]]``) fills row ``i``; rows past
    the texts only pad, and attend to their first position: a row attending to nothing
    would come out NaN (harmless, but noisy to anyone debugging a graph's spare rows).
    """
    count, width = len(lengths), input_ids.shape[1]
    columns = np.arange(width)
    present = columns[None, :] < lengths[:, None]
    attention[:count] = present
    attention[count:] = 0
    attention[count:, 0] = 1
    input_ids[count:] = pad_id
    texts = input_ids[:count]
    texts[...] = pad_id
    texts[present] = ids[(starts[:, None] + columns[None, :])[present]]


class BatchAssembler:
    """Padded (ids, attention) batches in a ring of reused flat buffers.

    Args:
        pad_id: the tokenizer's padding id.
        capacity: elements per buffer: the most ``rows * width`` of any batch (a larger one
            gets buffers of its own, made for it alone).
        slots: buffers in the ring: more than the batches alive at once (being copied to
            the device or run), so a slot is never rewritten while in use.
        allocate: makes one flat int64 tensor of a number of elements.

    """

    def __init__(self, pad_id: int, capacity: int, slots: int,
                 allocate: Callable[[int], torch.Tensor] = _plain) -> None:
        self.pad_id = pad_id
        self.capacity = capacity
        self._allocate = allocate
        self._ids = [allocate(capacity) for _ in range(slots)]
        self._attention = [allocate(capacity) for _ in range(slots)]
        self._next = 0

    def next_slot(self) -> int:
        """The slot the next :meth:`assemble` writes (callers wait for its last use first)."""
        return self._next

    def assemble(self, ids: np.ndarray, starts: np.ndarray, lengths: np.ndarray, *,
                 rows: int, width: int) -> AssembledBatch:
        """The texts at ``starts``/``lengths`` of ``ids`` padded to ``rows`` x ``width``."""
        slot, elements = self._next, rows * width
        self._next = (slot + 1) % len(self._ids)
        if elements <= self.capacity:
            flat_ids, flat_attention = self._ids[slot], self._attention[slot]
        else:
            flat_ids, flat_attention = self._allocate(elements), self._allocate(elements)
        input_ids = flat_ids[:elements].view(rows, width)
        attention = flat_attention[:elements].view(rows, width)
        pad_into(ids, starts, lengths, self.pad_id, input_ids.numpy(), attention.numpy())
        return AssembledBatch(slot, input_ids, attention)


__all__ = [
    "AssembledBatch",
    "BatchAssembler",
    "pad_into",
]
