"""Sent batches awaiting their acknowledgements, settled one at a time in the order sent.

A consumer that commits a batch's offsets only once the broker has acknowledged everything
the batch produced (at-least-once) idles for a broker round trip per batch if it waits
itself. Instead it hands the sent batch to an :class:`InOrderSettler` and starts on the next
one, while one task settles the handed batches (awaits the acknowledgements, commits the
offsets) strictly in the order they were sent, so a committed offset never passes a batch
that is not settled yet::

    settler = InOrderSettler(settle_batch, limit=2)
    asyncio.create_task(settler.run())
    await settler.put(batch)       # waits while 2 batches are still unsettled
    await settler.drain(30.0)      # before a rebalance or a shutdown: all settled?
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

Batch = TypeVar("Batch")


class SettlingStopped(RuntimeError):
    """A batch could not be settled, so no later batch may be: the consumer must restart."""


class InOrderSettler(Generic[Batch]):
    """Settle handed batches in order with ``settle``; at most ``limit`` wait their turn."""

    def __init__(self, settle: Callable[[Batch], Awaitable[None]], *, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        self._settle = settle
        self._waiting: asyncio.Queue[Batch] = asyncio.Queue(maxsize=limit)
        self._settled_all = asyncio.Event()
        self._settled_all.set()
        self._unsettled = 0
        self.failure: BaseException | None = None

    @property
    def unsettled(self) -> int:
        """Batches handed over and not settled yet (the one being settled included)."""
        return self._unsettled

    async def put(self, batch: Batch) -> None:
        """Hand over a sent batch; waits while ``limit`` batches already wait their turn."""
        if self.failure is not None:
            raise SettlingStopped("an earlier batch was not settled") from self.failure
        self._unsettled += 1
        self._settled_all.clear()
        await self._waiting.put(batch)

    async def run(self) -> None:
        """Settle batches in order, until cancelled; a settlement that raises ends it.

        After a failure nothing later is settled (its offsets would pass the failed batch's):
        the exception propagates, :meth:`put` refuses new batches, and the consumer restarts
        from its last committed offsets.
        """
        while True:
            batch = await self._waiting.get()
            try:
                await self._settle(batch)
            except BaseException as error:
                self.failure = error
                self._settled_all.set()  # wakes drain(), which then reports the failure
                raise
            self._unsettled -= 1
            if not self._unsettled:
                self._settled_all.set()

    async def drain(self, timeout_s: float) -> bool:
        """Wait until every handed batch is settled: True if they were within ``timeout_s``."""
        if self.failure is not None:
            return False
        try:
            await asyncio.wait_for(self._settled_all.wait(), timeout_s)
        except TimeoutError:
            return False
        return self.failure is None
