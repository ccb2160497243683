"""The crisis stage over a worker's partitions: monitors kept in state tables, one step a record.

:class:`~pipeline.stages.crisis.PartitionMonitor` is one partition's brands in memory;
:class:`CrisisPartitions` is what a crisis worker holds: a monitor per assigned partition,
rebuilt from two injected state mappings after a rebalance (the agent passes Faust tables,
tests pass dicts), and the per-record step the agent runs:

    step = partitions.apply(partition, offset, mentions)   # count, close windows
    ... send step.alerts and dead-letter step.unreadable, wait for the broker ...
    partitions.save(step)                                   # then write the state

State is written only after the alerts are on the broker, so a crash in between re-emits
them with the same idempotency keys (at-least-once) and never loses them.

``live``  brand -> :meth:`~pipeline.stages.crisis.BrandMonitor.live_state` (per record)
``model`` brand -> :meth:`~pipeline.stages.crisis.BrandMonitor.model_state` (per closed window)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pipeline.config import Settings
from pipeline.records import ScoredMention, brands_of
from pipeline.schema import InvalidMention
from pipeline.stages.alerts.record import ALERT_EVENTS, KINDS, Alert
from pipeline.stages.brands import BrandRule
from pipeline.stages.crisis import BrandMonitor, CrisisConfig, PartitionMonitor, RecordResult
from pipeline.stages.routing import brand_partition
from pipeline.stages.sentiment.labels import sentiment_toward
from pipeline.stages.stage_result import MetricDelta, OutRecord, StageResult

# the tone of a mention the sentiment stage could not score (it still counts as volume)
UNSCORED = "unscored"


def crisis_config(settings: Settings, rules: Iterable[BrandRule]) -> CrisisConfig:
    """The detector configuration of a worker.

    Window and lateness come from the settings, per-brand crisis minimums from the listening
    queries (``min_crisis_volume``).
    """
    return CrisisConfig.for_brands(
        {rule.id: rule.min_crisis_volume for rule in rules if rule.min_crisis_volume},
        window=timedelta(seconds=settings.crisis_window_s),
        lateness=timedelta(seconds=settings.crisis_lateness_s),
    )


def alert_record(alert: Alert) -> tuple[bytes, bytes, dict[str, bytes]]:
    """Key, value and headers of an alert event on the alerts topic.

    Keyed by brand, so that one incident's events stay in order on one partition.
    """
    return (alert.brand.encode(), ALERT_EVENTS.encode(alert.to_event()),
            {"idempotency-key": alert.idempotency_key.encode()})


def tone_counts(
    mentions: Iterable[ScoredMention], owns: Callable[[str], bool],
) -> Counter[tuple[str, str]]:
    """Mentions per (brand, sentiment label) for the brands ``owns`` accepts.

    A brand named twice in a mention counts once; an unscored mention counts as ``UNSCORED``.
    A mention naming several brands counts with its label toward each (``sentiment_by_brand``).

    >>> from pipeline.records import Sentiment
    >>> def scored(brands: list[str], label: str | None) -> ScoredMention:
    ...     return ScoredMention(id="1", text="", created_at="", brands=brands,
    ...                          sentiment=label and Sentiment(label, {}))
    >>> sorted(tone_counts([scored(["acme", "acme", "zeta"], "negative"),
    ...                     scored(["acme"], None)],
    ...                    owns=lambda brand: brand == "acme").items())
    [(('acme', 'negative'), 1), (('acme', 'unscored'), 1)]
    """
    counts: Counter[tuple[str, str]] = Counter()
    for mention in mentions:
        for brand in set(brands_of(mention)):
            if owns(brand):
                sentiment = sentiment_toward(mention, brand)
                label = sentiment.label if sentiment is not None else None
                counts[brand, str(label or UNSCORED)] += 1
    return counts


@dataclass(slots=True)
class CrisisStep:
    """What one scored record did on its partition, for the agent to send, count and save."""

    # the partition's monitor that counted the record: a rebalance during the agent's sends
    # may drop it from CrisisPartitions, and its state is still the one to save
    monitor: PartitionMonitor
    result: RecordResult
    tones: Counter[tuple[str, str]]

    @property
    def alerts(self) -> list[Alert]:
        """The alert events to send, in order."""
        return self.result.alerts

    @property
    def unreadable(self) -> list[tuple[ScoredMention, InvalidMention]]:
        """Mentions refused for their time, with the error, for the dead letters."""
        return self.result.unreadable


class CrisisPartitions:
    """The monitors of a worker's partitions over the ``live`` and ``model`` state mappings.

    A brand belongs to its :func:`~pipeline.stages.routing.brand_partition`, the partition
    the sentiment stage sends its mentions to, so each brand's state is written by exactly
    one partition.
    """

    def __init__(self, config: CrisisConfig, *, partitions: int,
                 live: MutableMapping[str, Any], model: MutableMapping[str, Any],
                 brand_names: Mapping[str, str] | None = None) -> None:
        self.config = config
        self.partitions = partitions
        self.live = live
        self.model = model
        self.brand_names = dict(brand_names or {})
        self.monitors: dict[int, PartitionMonitor] = {}

    def owner(self, partition: int) -> Callable[[str], bool]:
        """Whether a brand belongs to ``partition``."""
        def owns(brand: str) -> bool:
            return brand_partition(brand, self.partitions) == partition
        return owns

    def forget(self) -> None:
        """Drop the monitors in memory: after a rebalance the state mappings are the truth."""
        self.monitors.clear()

    def monitor(self, partition: int) -> PartitionMonitor:
        """The partition's monitor, rebuilt from the state mappings on first use."""
        monitor = self.monitors.get(partition)
        if monitor is None:
            owns = self.owner(partition)
            restored = [
                BrandMonitor.from_state(brand, self.config, live=live,
                                        model=self.model.get(brand),
                                        brand_name=self.brand_names.get(brand))
                for brand, live in list(self.live.items())
                if live is not None and owns(brand)
            ]
            monitor = self.monitors[partition] = PartitionMonitor(
                self.config, brand_names=self.brand_names, owns=owns, monitors=restored)
        return monitor

    def apply(self, partition: int, offset: int,
              mentions: Iterable[ScoredMention]) -> CrisisStep:
        """Count one record of ``partition`` (at ``offset``); nothing is saved yet."""
        mentions = list(mentions)
        monitor = self.monitor(partition)
        brands = monitor.monitors

        def counts(brand: str) -> bool:  # owned, and not a redelivery it already counted
            return monitor.owns(brand) and (brand not in brands or brands[brand].offset < offset)

        tones = tone_counts(mentions, counts)
        return CrisisStep(monitor, monitor.apply(offset, mentions), tones)

    def save(self, step: CrisisStep) -> None:
        """Write the state the step changed: call once its alerts are on the broker."""
        monitors = step.monitor.monitors
        for brand in step.result.changed_model:
            self.model[brand] = monitors[brand].model_state()
        for brand in step.result.changed_live:
            self.live[brand] = monitors[brand].live_state()

    def open_incidents(self) -> dict[str, int]:
        """Open incidents by kind over the partitions in memory, every kind listed."""
        totals = dict.fromkeys(KINDS, 0)
        for monitor in self.monitors.values():
            for kind, count in monitor.open_incidents().items():
                totals[kind] += count
        return totals


def crisis_result(partitions: CrisisPartitions, partition: int, offset: int,
                  mentions: Iterable[ScoredMention]) -> StageResult:
    """One ``mentions.scored`` record through the crisis stage, as a :class:`StageResult`.

    The alert events go to the ``alerts`` topic (:func:`alert_record`); saving writes the
    state the step changed (:meth:`CrisisPartitions.save`); the metrics count the mentions
    dropped and counted per brand and tone, the alerts, and (after an alert) the open
    incidents.
    """
    step = partitions.apply(partition, offset, mentions)
    metrics = [MetricDelta("crisis_dropped", (("reason", reason),), count)
               for reason, count in (("late", step.result.late),
                                     ("bad_time", step.result.refused)) if count]
    metrics += [MetricDelta("brand_mentions", (("brand", brand), ("sentiment", tone)), count)
                for (brand, tone), count in step.tones.items()]
    records = []
    for alert in step.alerts:
        key, value, headers = alert_record(alert)
        records.append(OutRecord("alerts", value, key, headers))
        metrics.append(MetricDelta("alerts", (("kind", alert.kind),
                                              ("severity", alert.severity.label),
                                              ("status", alert.status)), 1))
    if step.alerts:
        metrics += [MetricDelta("open_incidents", (("kind", kind),), count, gauge=True)
                    for kind, count in partitions.open_incidents().items()]
    return StageResult(records=records, refused=list(step.unreadable), alerts=list(step.alerts),
                       metrics=metrics, save=lambda: partitions.save(step))
