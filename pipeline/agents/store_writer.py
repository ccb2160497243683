"""The store sink's write step: inserts that wait out store outages and find refused rows.

The runner (:mod:`pipeline.agents.runner`) calls :meth:`StoreWriter.write` with a batch's
:class:`~pipeline.stages.stage_result.Insert` s before it sends, acks or commits anything:

- A store that is down makes the write wait and retry with backoff, one log line per outage;
  the batch is not committed meanwhile, so lag grows and nothing is dropped. A worker that is
  stopping gives the batch up uncommitted instead (its next owner replays it).
- A refused insert is split in halves until the refused rows are found; those come back as
  rejects (``store_rejected``) for the dead letters, so one bad row never holds the rest back.
- After a write, every ``store_settle_s`` it settles the leaders' echoes table
  (:func:`~pipeline.store.echoes.settle`), between two inserts.

The store opens on first use; with ``PIPELINE_DESK_IN_WORKER`` the desk starts with it
(:class:`~pipeline.desk.server.DeskThread`), as this worker is then the store's only process.
The in-process harness (:mod:`pipeline.in_process`, so ``mentions store load`` too) writes
through the same class over a store it opened, with :meth:`StoreWriter.write_now`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from pipeline.config import Settings
from pipeline.metrics import PipelineMetrics
from pipeline.records import ScoredMention
from pipeline.stages.stage_result import BadRecord, Insert
from pipeline.store.client import ListeningStore, StoreRejected, StoreUnavailable
from pipeline.store.rows import RowBatch, RowEncoder, rows_payload

log = logging.getLogger(__name__)
_T = TypeVar("_T")


def _running() -> bool:
    return False


class StoreWriter:
    """The sink's handle on the store: opened lazily, written with the outage wait."""

    def __init__(self, settings: Settings, metrics: PipelineMetrics, encoder: RowEncoder,
                 *, store: ListeningStore | None = None) -> None:
        self.settings, self.metrics, self.encoder = settings, metrics, encoder
        self.store: ListeningStore | None = None
        if store is not None:
            self._attach(store)
        self.reachable = True
        self.desk: Any = None
        self.settled_at = -math.inf
        # True once the worker is stopping: an outage then gives the batch up uncommitted
        self.stopping: Callable[[], bool] = _running

    async def start(self) -> None:
        """Open the store, or leave that to the first batch if it is down."""
        try:
            await self._open()
        except StoreUnavailable as error:
            self._down(error)

    async def close(self) -> None:
        """Stop the desk, release the store."""
        if self.desk is not None:
            self.desk.stop()
        if self.store is not None:
            self.store.close()

    async def encode(self, mentions: Sequence[ScoredMention]) -> RowBatch:
        """The mentions as rows; the originals' authors not yet seen are read from the store."""
        return await self.call(lambda _: self.encoder.encode(mentions))

    async def write(self, inserts: Sequence[Insert]) -> list[BadRecord]:
        """Insert each, then settle the echoes if due; the rows the store refused."""
        refused: list[BadRecord] = []
        for insert in inserts:
            refused += await self._insert(insert.rows, insert.table)
        await self._settle()
        return refused

    def write_now(self, inserts: Sequence[Insert]) -> list[BadRecord]:
        """:meth:`write` for a caller without an event loop (the in-process harness)."""
        return asyncio.run(self.write(inserts))

    async def call(self, work: Callable[[ListeningStore], _T]) -> _T:
        """Run ``work`` on the store in a thread, waiting out outages with backoff."""
        delay = 0.5
        while True:
            try:
                store = await self._open()
                done = await asyncio.to_thread(work, store)
            except StoreUnavailable as error:
                self.metrics.store_errors.labels(reason="unavailable").inc()
                self._down(error)
                if self.stopping():
                    # shutting down: leave the batch uncommitted, the next owner replays it
                    raise asyncio.CancelledError from error
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.settings.store_retry_max_s)
                continue
            if not self.reachable:
                log.warning("store: reachable again")
            self.reachable = True
            return done

    async def _insert(self, rows: list[bytes], table: str) -> list[BadRecord]:
        """Insert ``rows``, halving a refused insert down to the rows the store refuses."""
        if not rows:
            return []
        started = time.perf_counter()
        try:
            await self.call(lambda store: store.insert(rows_payload(rows), table))
        except StoreRejected as error:
            self.metrics.store_errors.labels(reason="rejected").inc()
            if len(rows) == 1:
                log.warning("store refused a row of %s: %s", table, error)
                return [BadRecord(rows[0], "store_rejected", str(error))]
            middle = len(rows) // 2
            return (await self._insert(rows[:middle], table)
                    + await self._insert(rows[middle:], table))
        self.metrics.store_insert_seconds.observe(time.perf_counter() - started)
        self.metrics.store_rows.labels(table=table).inc(len(rows))
        return []

    async def _settle(self) -> None:
        """Settle the leaders' echoes table if ``store_settle_s`` passed since the last time."""
        if time.monotonic() - self.settled_at < self.settings.store_settle_s:
            return
        self.settled_at = time.monotonic()
        try:
            settled = await self.call(lambda store: store.settle_echoes())
        except StoreRejected as error:
            # the leaders then read more from the mentions, nothing is lost: try next time
            log.warning("store: settling the leaders' echoes failed: %s", error)
            return
        if settled.built_hours:
            log.info("store: leaders' echoes built for %d hours, frontier %s",
                     settled.built_hours, settled.frontier)

    async def _open(self) -> ListeningStore:
        """The store, opened on first use; with ``desk_in_worker`` the desk starts with it."""
        if self.store is None:
            store = self._attach(await asyncio.to_thread(ListeningStore.open, self.settings))
            log.warning("store sink writing %s", store.location)
            if self.settings.desk_in_worker:
                from pipeline.desk.server import DeskThread

                self.desk = DeskThread(self.settings, store)
                log.warning("desk on %s", await asyncio.to_thread(self.desk.start))
            return store
        return self.store

    def _attach(self, store: ListeningStore) -> ListeningStore:
        """Write into ``store``; the encoder asks it for the originals' authors it lacks."""
        self.store = store
        self.encoder.find_originals = store.original_authors
        return store

    def _down(self, error: StoreUnavailable) -> None:
        """Say once per outage that the store is down and what the sink does about it."""
        if self.reachable:
            log.error("store: %s; retrying with backoff until it is back, nothing after the "
                      "last write is acknowledged meanwhile", error)
        self.reachable = False
