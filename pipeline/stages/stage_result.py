"""One stage's answer to one input record, in a shape any runner can act on.

A stage core takes a batch in and returns a :class:`StageResult`: the records to send (by
topic, key and partition), the mentions it refuses (for the dead letters), the alerts
raised, the metric changes, and the state changes as a callable the runner calls once the
records are on the broker. The worker's agent and the in-process harness
(:mod:`pipeline.in_process`) act on the same result: the agent sends, waits for the acks,
saves and counts; the harness keeps everything in lists. Only the crisis stage answers this
way yet (:func:`pipeline.stages.crisis_partitions.crisis_result`); the others are to follow
(issue #28: one stage contract, one generic runner).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.records import RoutedMention
from pipeline.schema import InvalidMention
from pipeline.stages.alerts.record import Alert


@dataclass(frozen=True, slots=True)
class MetricDelta:
    """A change to one series of the worker's metrics bundle (:class:`PipelineMetrics`).

    ``metric`` names the bundle's attribute; a ``brand`` label is the brand id, which the
    runner bounds as the bundle says (``brand_labels``). A gauge is set, a counter added to.
    """

    metric: str
    labels: tuple[tuple[str, str], ...]
    amount: float
    gauge: bool = False


@dataclass(frozen=True, slots=True)
class OutRecord:
    """A record to send: ``topic`` is the worker's topic name (``alerts``, ``scored``...)."""

    topic: str
    value: bytes
    key: bytes | None = None
    headers: Mapping[str, bytes] = field(default_factory=dict)
    partition: int | None = None


def _nothing_to_save() -> None:
    """No state changed."""


@dataclass(slots=True)
class StageResult:
    """What one input record did (see the module docstring)."""

    records: list[OutRecord] = field(default_factory=list)
    refused: list[tuple[RoutedMention | Mapping[str, Any], InvalidMention]] = field(
        default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    metrics: list[MetricDelta] = field(default_factory=list)
    # the state changes: called only once every record above is on the broker
    save: Callable[[], None] = _nothing_to_save
