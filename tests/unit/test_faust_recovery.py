"""The recovery service hands partitions back to the agents without losing queued records.

A stand-in consumer plays Faust's fetcher: whenever the event loop turns, it delivers one
record of every resumed stream partition into an agent queue managed by the app's flow
control (the queue ``flow_control.resume()`` clears). Every record it delivered must still
be queued when recovery is done. Faust 0.15.3's own recovery fails this: it resumes the
partitions, awaits the seek (the fetcher delivers meanwhile), then clears the queues.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from faust.types import TP
from mode.utils.queues import FlowControlQueue

from pipeline.agents.app import build_app
from pipeline.config import load_settings
from pipeline.transport.faust_recovery import SeekFirstRecovery


class FetchingConsumer:
    """What recovery touches of Faust's consumer, with a fetcher that never stops reading."""

    def __init__(self, partitions: set[TP], queue: FlowControlQueue[Any]) -> None:
        self.partitions = partitions
        self.paused = set(partitions)
        self.queue = queue
        self.delivered: list[TP] = []

    def assignment(self) -> set[TP]:
        return set(self.partitions)

    def resume_partitions(self, partitions: set[TP]) -> None:
        self.paused -= set(partitions)

    def resume_flow(self) -> None:
        return None

    def fetch(self) -> None:
        for partition in sorted(self.partitions - self.paused):
            self.queue.put_nowait(partition)
            self.delivered.append(partition)

    async def perform_seek(self) -> None:
        # the round trip for the committed offsets: the fetcher keeps reading meanwhile
        for _ in range(3):
            await asyncio.sleep(0)
            self.fetch()


class Fetcher:
    def __init__(self, consumer: FetchingConsumer) -> None:
        self.consumer = consumer

    async def maybe_start(self) -> None:
        self.consumer.fetch()


def recover(step: Callable[[SeekFirstRecovery, int], Awaitable[None]]) -> FetchingConsumer:
    """Run one hand-back step of the app's recovery against the stand-in consumer."""
    settings = load_settings(broker="127.0.0.1:1", stages="dedup", partitions=2)

    async def run() -> FetchingConsumer:
        app, _context = build_app(settings)
        recovery = app.tables.recovery
        assert isinstance(recovery, SeekFirstRecovery)
        queue: FlowControlQueue[Any] = FlowControlQueue(
            flow_control=app.flow_control, clear_on_resume=True,
        )
        partitions = {TP(settings.topic("routed"), 0), TP(settings.topic("routed"), 1)}
        consumer = FetchingConsumer(partitions, queue)
        app.consumer = consumer
        app._fetcher = Fetcher(consumer)
        await step(recovery, app.consumer_generation_id)
        return consumer

    return asyncio.run(run())


@pytest.mark.parametrize("step", [
    SeekFirstRecovery.on_recovery_completed,  # an app with tables (dedup, crisis)
    SeekFirstRecovery._resume_streams,  # an app without (sentiment)
])
def test_no_record_read_during_the_hand_back_is_thrown_away(
    step: Callable[[SeekFirstRecovery, int], Awaitable[None]],
) -> None:
    consumer = recover(step)
    assert consumer.delivered, "the partitions were never resumed"
    assert consumer.queue.qsize() == len(consumer.delivered)
    assert consumer.paused == set()
