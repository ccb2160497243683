"""A consumer whose group coordination dies takes its worker down instead of stalling it.

In the five-stage SIGKILL test a restarted dedup worker failed Faust's own check of the
assignment its group leader sent; the error ended aiokafka's coordination task and the worker
stayed up consuming nothing (#37). Here the same kind of failure is caused on purpose: once
in-process, by an assignor that rejects its assignment, against the real broker; and once
in real worker processes, by the misconfiguration that caused it there (workers with
different tables in one Faust group), where the worker must exit non-zero.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from prometheus_client import CollectorRegistry

from pipeline.agents.watchdog import ConsumerWatchdog
from pipeline.config import Settings
from pipeline.metrics import PipelineMetrics
from pipeline.transport.connection import aiokafka_options
from pipeline.transport.coordination import coordinator_failure
from tests.integration.conftest import RunningWorker
from tests.integration.test_scaling import quick_failover

pytestmark = pytest.mark.integration


class RejectingAssignor(RoundRobinPartitionAssignor):
    """Assigns as round robin does, then rejects what it was given, as Faust's assignor does
    when the leader's view of the changelogs differs from this member's."""

    name = "rejecting"

    @classmethod
    def on_assignment(cls, assignment: Any) -> None:
        raise AssertionError("[('t-changelog', [0])] != [('t-changelog', [0, 1])]")


async def watched_consumer(
    settings: Settings, assignor: type[RoundRobinPartitionAssignor],
) -> tuple[AIOKafkaConsumer, ConsumerWatchdog, list[BaseException], CollectorRegistry]:
    registry = CollectorRegistry()
    stopped: list[BaseException] = []

    async def stop_worker(error: BaseException) -> None:
        stopped.append(error)

    consumer = AIOKafkaConsumer(
        settings.topic("raw"), group_id=f"{settings.app_id}-{uuid.uuid4().hex[:6]}",
        partition_assignment_strategy=(assignor,), **aiokafka_options(settings),
    )
    await consumer.start()
    watchdog = ConsumerWatchdog(PipelineMetrics(registry), stop_worker,
                                {"ingest": lambda: consumer})
    return consumer, watchdog, stopped, registry


async def test_a_rejected_assignment_stops_the_worker_and_a_good_one_does_not(
    pipeline_settings: Settings,
) -> None:
    consumer, watchdog, stopped, registry = await watched_consumer(
        pipeline_settings, RejectingAssignor)
    try:
        deadline = time.monotonic() + 60
        while await watchdog.check() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
    finally:
        await consumer.stop()
    assert len(stopped) == 1 and isinstance(stopped[0].__cause__, AssertionError)
    assert registry.get_sample_value(
        "mentions_consumer_coordination_failures_total", {"consumer": "ingest"}) == 1

    consumer, watchdog, stopped, _ = await watched_consumer(
        pipeline_settings, RoundRobinPartitionAssignor)
    try:
        deadline = time.monotonic() + 60
        while not consumer.assignment() and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert consumer.assignment(), "the healthy consumer never got its partitions"
        assert coordinator_failure(consumer) is None
        assert await watchdog.check() is None
    finally:
        await consumer.stop()
    assert stopped == []


def test_a_worker_whose_group_leader_knows_other_tables_exits_non_zero(
    pipeline_settings: Settings, start_worker: Callable[..., RunningWorker],
) -> None:
    # two dedup and two crisis workers in ONE Faust group: whichever leads it, the other
    # kind's members are handed changelog partitions without their standbys, and Faust's
    # check of the assignment fails on them (deploy/k8s gives each kind its own app id)
    settings = quick_failover(pipeline_settings)
    workers = [start_worker(settings, stage, wait_ready=False)
               for stage in ("dedup", "crisis", "dedup", "crisis")]
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline and all(w.process.poll() is None for w in workers):
        time.sleep(1)
    exited = [w for w in workers if w.process.poll() is not None]
    assert exited, "no worker exited: a stalled worker stays up"
    for worker in exited:
        log = worker.log()
        assert worker.process.returncode != 0, log[-3000:]
        assert "consumer: group coordination died (AssertionError(" in log, log[-3000:]
    print(f"\nexited: {len(exited)} of {len(workers)}, codes "
          f"{[w.process.returncode for w in exited]}")
