"""The async front of the sentiment engine, for the Faust agent.

:class:`SentimentBatcher`: ``await submit(texts, carried=...)`` returns results in order.
Requests are read (ids carried on the mentions) or tokenised on worker threads as they
arrive; a batching task gathers them up to a size, token and wait budget; one owner thread
holds the model and the device, and collecting the next batch overlaps with the forward pass
of the current one. Ids stay in numpy arrays per request (:class:`PackedTokens`) from reading
to padding: a batch is a few slices of requests, gathered with numpy, with no Python object
per text until the results. Work older than its deadline is dropped before it reaches the
model.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from pipeline.stages.sentiment.labels import _EMPTY_RESULT, SentimentResult
from pipeline.stages.sentiment.planning import _plan
from pipeline.stages.sentiment.tokens import PackedTokens


class PackedScorer(Protocol):
    """What the batcher needs of an engine.

    :class:`~.engine.SentimentEngine`, or :class:`~.engines.EngineProcesses`, which also
    says how many batches it runs at once as ``parallel_batches``.
    """

    def encode_carried(self, texts: Sequence[str],
                       carried: Sequence[object] | None = None) -> PackedTokens:
        """Ids of ``texts``, from carried ids where usable."""

    def score_packed(self, packed: PackedTokens) -> list[SentimentResult]:
        """Results of one batch, in order."""


class SentimentExpiredError(TimeoutError):
    """The request waited longer than its deadline and was not scored."""


@dataclass(eq=False)
class _Request:
    packed: PackedTokens
    deadline: float
    future: asyncio.Future[list[SentimentResult]]
    results: list[SentimentResult | None] = field(default_factory=list)
    pending: int = 0


@dataclass(frozen=True, slots=True)
class _Chunk:
    """Queued positions of one request (all of its texts to score, or what is left of them)."""

    request: _Request
    positions: np.ndarray


# A batch for the model: chunks of one or more requests.
_Batch = list[_Chunk]


class SentimentBatcher:
    """Async front of a sentiment engine for the streaming agent.

    The queue holds requests, not texts: a window takes whole requests (splitting the last
    one that does not fit), and its texts are sorted and cut into batches with numpy: less
    CPU per text than queuing and taking every text on its own (``benchmarks.sentiment``
    reports it as the batcher overhead row).

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
        engine: PackedScorer,
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
        self._ready: deque[_Batch] = deque()
        self._tokenizer_pool: ThreadPoolExecutor | None = None
        self._model_pool: ThreadPoolExecutor | None = None
        self._task: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        # batches run at once: one per engine process (EngineProcesses), else one
        self.parallel_batches = max(1, int(getattr(engine, "parallel_batches", 1)))
        self._tokenizing: set[asyncio.Future[PackedTokens]] = set()
        # the newest batches' sizes, for tests and debugging; bounded, as the worker runs for
        # months
        self.batch_sizes: deque[int] = deque(maxlen=1024)
        self.expired = 0

    async def start(self) -> None:
        """Start the threads and the batching task on the running loop."""
        if self._task is not None:
            return
        # The Rust tokenizer releases the GIL, so requests are tokenised side by side: one
        # thread capped a GPU worker's streaming rate far below what the engine's threads
        # tokenise (measured: see benchmarks/README.md)
        threads = max(1, getattr(self.engine, "tokenize_threads", 1))
        self._tokenizer_pool = ThreadPoolExecutor(threads, thread_name_prefix="sentiment-tokenize")
        # One thread owns the model and the device: forward passes never overlap (with
        # engine processes, one thread hands batches to each)
        self._model_pool = ThreadPoolExecutor(self.parallel_batches,
                                              thread_name_prefix="sentiment-model")
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
        if self._in_flight:
            await asyncio.gather(*self._in_flight)
        for pool in (self._tokenizer_pool, self._model_pool):
            if pool is not None:
                pool.shutdown(wait=True)

    async def __aenter__(self) -> SentimentBatcher:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def submit(self, texts: Sequence[str], *, carried: Sequence[object] | None = None,
                     timeout: float | None = None) -> list[SentimentResult]:
        """Sentiment of ``texts``, in order.

        ``carried``: one value per text, the token ids the ingest stage carried on its
        mention (``sentiment_tokens``) or None; usable ones spare tokenising their text.
        Raises :class:`SentimentExpiredError` when the request is still unscored
        ``timeout`` (default ``max_age``) seconds from now.
        """
        if self._task is None:
            raise RuntimeError("SentimentBatcher.start() was not awaited")
        loop = asyncio.get_running_loop()
        deadline = self._clock() + (self.max_age if timeout is None else timeout)
        tokenizing = loop.run_in_executor(
            self._tokenizer_pool, self.engine.encode_carried, list(texts),
            None if carried is None else list(carried))
        self._tokenizing.add(tokenizing)
        try:
            packed = await tokenizing
        finally:
            self._tokenizing.discard(tokenizing)
        request = _Request(packed, deadline, loop.create_future())
        request.results = [_EMPTY_RESULT if length == 0 else None
                           for length in packed.lengths.tolist()]
        to_score = np.flatnonzero(packed.lengths)
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

    async def _next_batch(self) -> _Batch | None:
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

    def _split(self, window: list[_Chunk]) -> list[_Batch]:
        """Length-sorted batches within the size and padded-token budgets.

        A batch comes back as one chunk per request it takes texts of (the order inside a
        batch does not change its padding).
        """
        requests = [chunk.request for chunk in window]
        owners = np.repeat(np.arange(len(window)), [len(c.positions) for c in window])
        positions = np.concatenate([chunk.positions for chunk in window])
        lengths = np.concatenate([c.request.packed.lengths[c.positions] for c in window])
        batches = []
        for batch in _plan(lengths, self.max_batch_size, self.max_batch_tokens):
            by_owner = np.argsort(owners[batch], kind="stable")
            batch_owners, batch_positions = owners[batch][by_owner], positions[batch][by_owner]
            cuts = np.flatnonzero(np.diff(batch_owners)) + 1
            batches.append([
                _Chunk(requests[int(owner[0])], taken) for owner, taken
                in zip(np.split(batch_owners, cuts), np.split(batch_positions, cuts), strict=True)
            ])
        return batches

    async def _batch_loop(self) -> None:
        while True:
            batch = await self._next_batch()
            if batch is None:
                return
            # The next batch was collected while the previous forward pass ran; wait for
            # it now so only one batch occupies each engine and expiry is checked late.
            if len(self._in_flight) >= self.parallel_batches:
                await asyncio.wait(self._in_flight, return_when=asyncio.FIRST_COMPLETED)
            live = self._drop_expired(batch)
            if live:
                running = asyncio.create_task(self._run(live))
                self._in_flight.add(running)
                running.add_done_callback(self._in_flight.discard)

    def _drop_expired(self, batch: _Batch) -> _Batch:
        now = self._clock()
        live: _Batch = []
        for chunk in batch:
            request = chunk.request
            if request.future.done():
                continue
            if now > request.deadline:
                self.expired += 1
                request.future.set_exception(SentimentExpiredError(
                    f"sentiment request waited more than its deadline "
                    f"({len(request.packed)} texts)"
                ))
                continue
            live.append(chunk)
        return live

    def _score(self, batch: _Batch) -> list[SentimentResult]:
        """The batch's ids gathered from its requests and scored (on the model thread)."""
        return self.engine.score_packed(PackedTokens.concat(
            chunk.request.packed.take(chunk.positions) for chunk in batch))

    async def _run(self, batch: _Batch) -> None:
        loop = asyncio.get_running_loop()
        size = sum(len(chunk.positions) for chunk in batch)
        self.batch_sizes.append(size)
        started = time.perf_counter()
        try:
            results = await loop.run_in_executor(self._model_pool, self._score, batch)
        except Exception as error:  # a failed forward fails its requests, not the loop
            for chunk in batch:
                if not chunk.request.future.done():
                    chunk.request.future.set_exception(error)
            return
        if self.on_batch is not None:
            self.on_batch(size, time.perf_counter() - started)
        offset = 0
        for chunk in batch:
            request, count = chunk.request, len(chunk.positions)
            if not request.future.done():
                for position, result in zip(chunk.positions.tolist(),
                                            results[offset : offset + count], strict=True):
                    request.results[position] = result
                request.pending -= count
                if request.pending == 0:
                    request.future.set_result([r for r in request.results if r is not None])
            offset += count


__all__ = [
    "SentimentBatcher",
    "SentimentExpiredError",
]
