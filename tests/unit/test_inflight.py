"""In-order settling of sent batches (pipeline.transport.inflight), without a broker: each
batch's "acknowledgement" is a future the test resolves, its "commit" a list append."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from pipeline.transport.inflight import InOrderSettler, SettlingStopped


class Batches:
    """Batches 0, 1, 2... whose acks the test resolves; settling one records its number."""

    def __init__(self) -> None:
        self.acks: dict[int, asyncio.Future[None]] = {}
        self.committed: list[int] = []

    def ack_of(self, batch: int) -> asyncio.Future[None]:
        return self.acks.setdefault(batch, asyncio.get_running_loop().create_future())

    async def settle(self, batch: int) -> None:
        await self.ack_of(batch)
        self.committed.append(batch)


async def let_settle() -> None:
    """Let the settling task run until nothing it waits for is ready."""
    for _ in range(5):
        await asyncio.sleep(0)


@pytest.fixture
async def batches() -> Batches:
    return Batches()


Running = tuple[InOrderSettler[int], "asyncio.Task[None]"]


@pytest.fixture
async def running(batches: Batches) -> AsyncIterator[Running]:
    settler: InOrderSettler[int] = InOrderSettler(batches.settle, limit=2)
    task = asyncio.create_task(settler.run())
    yield settler, task
    task.cancel()


async def test_later_acks_wait_for_earlier_batches(batches: Batches, running: Running) -> None:
    settler, _ = running
    for batch in (0, 1, 2):
        await settler.put(batch)
    batches.ack_of(2).set_result(None)
    batches.ack_of(1).set_result(None)
    await let_settle()
    assert batches.committed == []  # batch 0 is not acknowledged: nothing may commit
    assert settler.unsettled == 3
    batches.ack_of(0).set_result(None)
    assert await settler.drain(1.0)
    assert batches.committed == [0, 1, 2]
    assert settler.unsettled == 0


async def test_put_waits_while_the_limit_is_reached(batches: Batches, running: Running) -> None:
    settler, _ = running
    await settler.put(0)  # being settled
    await settler.put(1)  # waiting
    await settler.put(2)  # waiting: the limit of 2
    fourth = asyncio.create_task(settler.put(3))
    await let_settle()
    assert not fourth.done()
    batches.ack_of(0).set_result(None)
    await asyncio.wait_for(fourth, 1.0)
    assert batches.committed == [0]


async def test_drain_reports_a_timeout_then_success(batches: Batches, running: Running) -> None:
    settler, _ = running
    assert await settler.drain(0.01)  # nothing handed over yet
    await settler.put(0)
    assert not await settler.drain(0.01)
    batches.ack_of(0).set_result(None)
    assert await settler.drain(1.0)


async def test_a_failed_batch_stops_every_later_one(batches: Batches, running: Running) -> None:
    settler, task = running
    await settler.put(0)
    await settler.put(1)
    batches.ack_of(1).set_result(None)
    batches.ack_of(0).set_exception(ConnectionError("broker gone"))
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(task, 1.0)
    assert batches.committed == []
    assert not await settler.drain(1.0)
    with pytest.raises(SettlingStopped):
        await settler.put(2)


def test_the_limit_must_allow_one_batch() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        InOrderSettler(Batches().settle, limit=0)
