"""The worker's garbage-collector tuning (pipeline.agents.worker.tune_garbage_collector)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from pipeline.agents.worker import MIDDLE_THRESHOLD, OLD_THRESHOLD, tune_garbage_collector
from pipeline.config import Settings


@pytest.fixture
def restored_collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored_collector")
def test_tuning_raises_thresholds_and_freezes_what_exists() -> None:
    survivor = [object() for _ in range(10)]  # container alive at start-up
    gc.unfreeze()
    tune_garbage_collector(50_000)
    assert gc.get_threshold() == (50_000, MIDDLE_THRESHOLD, OLD_THRESHOLD)
    assert gc.get_freeze_count() > 0
    assert not any(survivor is tracked for tracked in gc.get_objects())


@pytest.mark.usefixtures("restored_collector")
def test_zero_keeps_the_interpreter_defaults() -> None:
    gc.unfreeze()
    before = gc.get_threshold()
    tune_garbage_collector(0)
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_the_setting_defaults_to_a_high_young_threshold() -> None:
    assert Settings().gc_young_threshold == 50_000
