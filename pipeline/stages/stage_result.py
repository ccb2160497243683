"""One stage's answer to one input batch, in a shape any runner can act on.

A stage core takes a batch in and returns a :class:`StageResult`: the records to send (by
topic, key and partition), what it refuses (for the dead letters), the alerts raised, the
metric changes, the mentions it took in and their times, and the state changes as a callable
the runner calls at the point its delivery rule says (:mod:`pipeline.agents.runner`). The
worker's runner and the in-process harness (:mod:`pipeline.in_process`) act on the same
result: the runner sends, waits for the acks, saves and counts; the harness keeps everything
in lists. A sink's answer also carries :class:`Insert` s, rows its runner writes (waiting
out store outages) before anything is acked. The stages' answers:
:func:`~pipeline.stages.ingest_result.ingest_result`,
:func:`~pipeline.stages.dedup_partitions.dedup_result`,
:func:`~pipeline.stages.sentiment.stage.scored_result`,
:func:`~pipeline.stages.crisis_partitions.crisis_result` and the store sink's
:func:`~pipeline.store.rows.stored_result`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

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


@dataclass(frozen=True, slots=True)
class Insert:
    """Rows for one table of the store (``JSONEachRow`` lines), written as one insert."""

    table: str
    rows: list[bytes]


class Rejected(Protocol):
    """An input record a stage refuses whole: its bytes, the bounded reason, the detail."""

    @property
    def raw(self) -> bytes: ...  # noqa: D102

    @property
    def reason(self) -> str: ...  # noqa: D102

    @property
    def detail(self) -> str: ...  # noqa: D102


@dataclass(frozen=True, slots=True)
class BadRecord:
    """A :class:`Rejected` record of a stage that has no reject type of its own."""

    raw: bytes
    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class Latencies:
    """The mentions a stage sends on, for its latency histograms: Unix seconds, NaN if unknown.

    One entry per mention in each array: when ingest took it, and its event time.
    """

    ingested_at: npt.NDArray[np.float64]
    event_times: npt.NDArray[np.float64]


def _nothing_to_save() -> None:
    """No state changed."""


@dataclass(slots=True)
class StageResult:
    """What one input batch did (see the module docstring)."""

    records: list[OutRecord] = field(default_factory=list)
    # mentions refused for their content (dead-lettered as their JSON)
    refused: list[tuple[RoutedMention | Mapping[str, Any], InvalidMention]] = field(
        default_factory=list)
    # input records refused whole (dead-lettered as their bytes)
    rejects: Sequence[Rejected] = ()
    alerts: list[Alert] = field(default_factory=list)
    metrics: list[MetricDelta] = field(default_factory=list)
    # the mentions taken in, when the stage read its input itself (the runner counts the
    # mentions it decoded for the stage)
    taken: int | None = None
    # the mentions sent on, when the stage knows their times without decoding them (the
    # runner otherwise reads them from the mentions it decoded for the stage)
    latencies: Latencies | None = None
    # rows for the stage's write step, written before anything is sent, acked or saved
    inserts: list[Insert] = field(default_factory=list)
    # the state changes: the runner calls it where the stage's delivery rule says
    save: Callable[[], None] = _nothing_to_save
