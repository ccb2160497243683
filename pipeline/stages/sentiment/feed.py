"""Batches fed to the device: padded on the host, copied in, run, and read back.

:class:`DeviceFeed` owns the buffers a batch passes through, made once when the engine
starts: the host ones of :class:`~.assembly.BatchAssembler` (pinned on CUDA), and on CUDA a
device copy of each and a pinned buffer each batch's probabilities come back into. On CUDA
a batch's inputs go to the device on a side stream, so the copy of batch k+1 runs while
batch k computes; events order the rest:

- ``copied`` (side stream): the compute stream waits for it before running the batch, and
  the host for it before it rewrites the slot's host buffers;
- ``consumed`` (compute stream): the batch has read the slot's device buffers, so the side
  stream may copy the next batch of that slot in;
- ``read`` (compute stream): the probabilities are on the host.

On CPU the same path runs with plain tensors: no copies, no events, the model reads the
assembled buffers themselves, so the CPU tests exercise the assembly and the slot ring.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from pipeline.stages.sentiment.assembly import BatchAssembler
from pipeline.stages.sentiment.planning import _round_up

if TYPE_CHECKING:
    from pipeline.stages.sentiment.cuda_graphs import _CudaGraphs


@dataclass(frozen=True, slots=True)
class HostCopy:
    """Probabilities on their way to the host: ``done`` is recorded after the copy (CUDA)."""

    tensor: torch.Tensor
    done: torch.cuda.Event | None

    def numpy(self) -> np.ndarray:
        """The probabilities once on the host (waits for the copy on CUDA)."""
        if self.done is not None:
            self.done.synchronize()
        return self.tensor.numpy()


@dataclass(frozen=True, slots=True)
class Launched:
    """A batch queued on the device: whose rows, since when, and its probabilities."""

    rows: np.ndarray
    began: float
    probabilities: HostCopy


class _CudaSlots:
    """Per slot: device copies of the inputs, a pinned result buffer, and three events."""

    def __init__(self, device: torch.device, slots: int, capacity: int,
                 result_capacity: int) -> None:
        self.stream = torch.cuda.Stream(device)
        self.device_ids = [torch.empty(capacity, dtype=torch.int64, device=device)
                           for _ in range(slots)]
        self.device_attention = [torch.empty(capacity, dtype=torch.int64, device=device)
                                 for _ in range(slots)]
        self.results = [torch.empty(result_capacity, dtype=torch.float32, pin_memory=True)
                        for _ in range(slots)]
        self.copied = [torch.cuda.Event() for _ in range(slots)]
        self.consumed = [torch.cuda.Event() for _ in range(slots)]
        self.read = [torch.cuda.Event() for _ in range(slots)]
        self.used = [False] * slots


def _fresh_copy_out(probabilities: torch.Tensor) -> HostCopy:
    """On CPU the probabilities themselves; on CUDA a copy into fresh pinned memory."""
    if probabilities.device.type != "cuda":
        return HostCopy(probabilities, None)
    host = torch.empty(probabilities.shape, dtype=probabilities.dtype, pin_memory=True)
    host.copy_(probabilities, non_blocking=True)
    done = torch.cuda.Event()
    done.record()
    return HostCopy(host, done)


def _pinned(elements: int) -> torch.Tensor:
    return torch.empty(elements, dtype=torch.int64, pin_memory=True)


class DeviceFeed:
    """Pads, copies and launches one batch at a time for the engine (see the module doc).

    Args:
        device: where the model runs.
        pad_id: the tokenizer's padding id.
        max_batch_size: most rows of a batch.
        max_batch_tokens: most padded tokens of a batch.
        max_width: the widest padded batch (the engine's ``max_tokens`` rounded up).
        slots: buffers in the ring: more than the batches alive at once.
        labels: classes the model outputs.
        forward: class probabilities (float32, on the device) of device inputs.
        reuse_buffers: off only to measure the feed against the one before it: fresh host
            arrays for every batch, pinned and copied on the compute stream, results into a
            fresh pinned tensor.

    """

    def __init__(self, device: torch.device, *, pad_id: int, max_batch_size: int,
                 max_batch_tokens: int, max_width: int, slots: int, labels: int,
                 forward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 reuse_buffers: bool = True) -> None:
        on_cuda = device.type == "cuda"
        capacity = max(max_batch_tokens, max_width) if reuse_buffers else 0
        self.assembler = BatchAssembler(
            pad_id, capacity, slots, _pinned if on_cuda and reuse_buffers
            else lambda n: torch.empty(n, dtype=torch.int64))
        self._forward = forward
        self._labels = labels
        self._device = device
        self._cuda = (_CudaSlots(device, slots, capacity, max_batch_size * labels)
                      if on_cuda and reuse_buffers else None)

    def launch(self, ids: np.ndarray, starts: np.ndarray, lengths: np.ndarray,
               rows: np.ndarray, graphs: _CudaGraphs | None) -> Launched:
        """Pad one batch and queue its forward pass; its probabilities come back later."""
        began = time.perf_counter()
        width = int(_round_up(int(lengths.max())))
        graph = graphs.for_batch(len(rows), width) if graphs is not None else None
        padded_rows = graph.rows if graph is not None else len(rows)
        cuda = self._cuda
        if cuda is not None and cuda.used[self.assembler.next_slot()]:
            # the slot's last host-to-device copy must be done before its buffers change
            cuda.copied[self.assembler.next_slot()].synchronize()
        batch = self.assembler.assemble(ids, starts, lengths, rows=padded_rows, width=width)
        input_ids, attention = batch.input_ids, batch.attention
        if cuda is not None:
            input_ids, attention = self._copy_in(cuda, batch.slot, input_ids, attention)
        elif self._device.type == "cuda":  # the feed before this one, kept to measure it
            input_ids = input_ids.pin_memory().to(self._device, non_blocking=True)
            attention = attention.pin_memory().to(self._device, non_blocking=True)
        if graph is not None:
            probabilities = graph.replay(input_ids, attention)[: len(rows)]
        else:
            probabilities = self._forward(input_ids, attention)
        if cuda is None:
            return Launched(rows, began, _fresh_copy_out(probabilities))
        cuda.consumed[batch.slot].record()
        return Launched(rows, began, self._copy_out(cuda, batch.slot, probabilities))

    def _copy_in(self, cuda: _CudaSlots, slot: int, input_ids: torch.Tensor,
                 attention: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch's inputs on the device, copied on the side stream."""
        elements = input_ids.numel()
        if elements > cuda.device_ids[slot].numel():  # an oversized batch: its own buffers
            return (input_ids.to(cuda.stream.device, non_blocking=False),
                    attention.to(cuda.stream.device, non_blocking=False))
        device_ids = cuda.device_ids[slot][:elements].view(input_ids.shape)
        device_attention = cuda.device_attention[slot][:elements].view(attention.shape)
        if cuda.used[slot]:
            cuda.stream.wait_event(cuda.consumed[slot])
        with torch.cuda.stream(cuda.stream):
            device_ids.copy_(input_ids, non_blocking=True)
            device_attention.copy_(attention, non_blocking=True)
            cuda.copied[slot].record(cuda.stream)
        cuda.used[slot] = True
        torch.cuda.current_stream(cuda.stream.device).wait_event(cuda.copied[slot])
        return device_ids, device_attention

    def _copy_out(self, cuda: _CudaSlots, slot: int, probabilities: torch.Tensor) -> HostCopy:
        """The probabilities copied into the slot's pinned buffer, behind the batch."""
        rows = probabilities.shape[0]
        if rows * self._labels > cuda.results[slot].numel():
            host = torch.empty(probabilities.shape, dtype=torch.float32, pin_memory=True)
        else:
            host = cuda.results[slot][: rows * self._labels].view(rows, self._labels)
        host.copy_(probabilities, non_blocking=True)
        # the slot's previous batch was read before this one was launched: the engine
        # keeps fewer batches in flight than there are slots
        cuda.read[slot].record()
        return HostCopy(host, cuda.read[slot])


__all__ = [
    "DeviceFeed",
    "HostCopy",
    "Launched",
]
