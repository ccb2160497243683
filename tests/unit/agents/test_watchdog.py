"""The consumer watchdog: a consumer whose group coordination died stops the worker, once."""

from __future__ import annotations

import asyncio
import inspect
import logging
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.consumer.group_coordinator import GroupCoordinator
from kafka.errors import KafkaError
from prometheus_client import CollectorRegistry

from pipeline.agents.app import build_app
from pipeline.agents.watchdog import ConsumerWatchdog, WatchdogService
from pipeline.config import load_settings
from pipeline.metrics import PipelineMetrics
from pipeline.transport.coordination import coordinator_failure, faust_group_consumer


async def ended_task(error: BaseException | None = None, *, cancel: bool = False) -> Any:
    """A finished coordination task: failed with ``error``, ended cleanly, or cancelled."""

    async def routine() -> None:
        if error is not None:
            raise error
        if cancel:
            await asyncio.sleep(3600)

    task = asyncio.ensure_future(routine())
    if cancel:
        await asyncio.sleep(0)
        task.cancel()
    await asyncio.wait([task])
    return task


def consumer_with(task: Any) -> Any:
    """An object shaped like an aiokafka consumer where the watchdog looks."""
    return SimpleNamespace(_coordinator=SimpleNamespace(_coordination_task=task))


def dead_coordination() -> KafkaError:
    """What aiokafka's coordinator routine raises after an unexpected error (its cause)."""
    error = KafkaError("Unexpected error during coordination AssertionError()")
    error.__cause__ = AssertionError("[('t-changelog', [0])] != [('t-changelog', [0, 1])]")
    return error


async def test_a_running_closing_or_group_less_consumer_is_not_a_failure() -> None:
    running = asyncio.ensure_future(asyncio.sleep(3600))
    try:
        assert coordinator_failure(consumer_with(running)) is None
    finally:
        running.cancel()
    assert coordinator_failure(consumer_with(await ended_task())) is None
    assert coordinator_failure(consumer_with(await ended_task(cancel=True))) is None
    assert coordinator_failure(None) is None  # not started yet
    assert coordinator_failure(SimpleNamespace(_coordinator=object())) is None  # assign()


async def test_the_error_that_ended_the_coordination_is_reported() -> None:
    error = dead_coordination()
    assert coordinator_failure(consumer_with(await ended_task(error))) is error


async def test_a_dead_consumer_is_logged_counted_and_stops_the_worker_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = CollectorRegistry()
    stopped: list[BaseException] = []

    async def stop_worker(error: BaseException) -> None:
        stopped.append(error)

    healthy = asyncio.ensure_future(asyncio.sleep(3600))
    dead = consumer_with(await ended_task(dead_coordination()))
    watchdog = ConsumerWatchdog(PipelineMetrics(registry), stop_worker, {
        "faust": lambda: consumer_with(healthy), "ingest": lambda: dead,
    })
    try:
        with caplog.at_level(logging.CRITICAL, logger="pipeline.agents.watchdog"):
            assert await watchdog.check() == "ingest"
            assert await watchdog.check() is None  # already stopping: not again
    finally:
        healthy.cancel()
    assert len(stopped) == 1 and isinstance(stopped[0].__cause__, AssertionError)
    [line] = [r.getMessage() for r in caplog.records]
    assert line.startswith("ingest consumer: group coordination died (AssertionError(")
    assert registry.get_sample_value(
        "mentions_consumer_coordination_failures_total", {"consumer": "ingest"}) == 1
    assert registry.get_sample_value(
        "mentions_consumer_coordination_failures_total", {"consumer": "faust"}) is None


async def test_healthy_consumers_leave_the_worker_alone() -> None:
    registry = CollectorRegistry()
    stopped: list[BaseException] = []

    async def stop_worker(error: BaseException) -> None:
        stopped.append(error)

    watchdog = ConsumerWatchdog(PipelineMetrics(registry), stop_worker, {
        "faust": lambda: None, "store": lambda: consumer_with(asyncio.ensure_future(
            asyncio.sleep(0))),
    })
    assert await watchdog.check() is None
    assert stopped == []


def test_the_worker_watches_its_faust_consumer_and_every_batch_consumer() -> None:
    settings = load_settings(broker="127.0.0.1:1", stages="ingest,dedup")

    async def build() -> tuple[Any, Any]:
        return build_app(settings)

    app, context = asyncio.run(build())
    assert set(context.consumers) == {"faust", "ingest"}
    assert context.consumers["faust"]() is faust_group_consumer(app) is None  # not started
    # a dependency of the app, not a Faust timer: those wait for the tables' recovery
    assert [child for child in app._children if isinstance(child, WatchdogService)]


def test_aiokafka_still_keeps_the_coordination_in_that_task() -> None:
    # the watchdog reads a private attribute: if aiokafka renames it, this fails instead of
    # the watchdog silently finding nothing to watch
    source = inspect.getsource(GroupCoordinator.__init__)
    assert "self._coordination_task = create_task(self._coordination_routine())" in source
