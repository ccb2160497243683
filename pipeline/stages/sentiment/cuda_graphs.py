"""On CUDA, each batch shape's forward pass captured once as a CUDA graph and replayed.

The engine (:class:`~pipeline.stages.sentiment.engine.SentimentEngine`) asks
:class:`_CudaGraphs` for the graph of each batch; nothing here runs without a GPU.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import torch

from pipeline.stages.sentiment.planning import _row_buckets

if TYPE_CHECKING:
    from pipeline.stages.sentiment.engine import SentimentEngine

logger = logging.getLogger(__name__)


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
                engine._forward(self.input_ids, self.attention)
        torch.cuda.current_stream(device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph, pool=pool):
            self.probabilities = engine._forward(self.input_ids, self.attention)

    def replay(self, input_ids: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
        """Run on new inputs; the result is overwritten by the next replay of this graph.

        The inputs (on the device, or pinned on the host) are copied into the graph's own;
        those copies, the replay and the caller's copy out are all queued on one stream, so
        a later replay never overwrites a result before it was read.
        """
        self.input_ids.copy_(input_ids, non_blocking=True)
        self.attention.copy_(attention, non_blocking=True)
        self.graph.replay()
        return self.probabilities


class _CudaGraphs:
    """Captured forward passes, one per padded width and row bucket, made on first use.

    A batch runs in the smallest row bucket that holds it (see :func:`_row_buckets`), its
    spare rows padding, so every batch has one of a few shapes; a partial batch costs at
    most four times its rows. Replaying a full batch's graph was faster on the device than
    launching the same forward eagerly, and left the host free, where eager launching took
    as long as the device's work (measured: see benchmarks/README.md). If a capture fails (a
    model that synchronises inside its forward, say), the engine logs it once and runs
    eagerly.
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
