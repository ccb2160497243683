"""Crisis agent: scored micro-batches -> per-brand windows and detectors -> alert events.

``mentions.scored`` is partitioned by brand (a mention naming several brands is sent to each
of their partitions, :func:`~pipeline.transport.topics.partition_for`), so the agent on
partition ``p`` counts a mention for the brands it names whose partition is ``p``, and every
brand's state lives on exactly one partition. The work is the pure core
:class:`~pipeline.stages.crisis.PartitionMonitor`; this module only moves records:

- alert events go to the alerts topic (key: brand, so one incident's events stay in order;
  header ``idempotency-key``) and to the :class:`~pipeline.stages.notify.WebhookNotifier`,
  whose queues never block the agent; undeliverable alerts go to ``<alerts topic>.deadletter``;
- state lives in two Faust tables with changelogs, keyed by brand: ``crisis-live`` (window
  counts, watermark and last offset: written once per record that mentions the brand, a few
  hundred bytes) and ``crisis-model`` (detectors, incident lifecycle and context: written once
  per closed window). Alerts are on the topic before the state that produced them is written:
  a crash in between re-emits them with the same idempotency keys (at-least-once delivery,
  idempotent consumers), never loses them. A redelivered record is skipped by offset.

Faust writes a table change to the changelog partition of the event being processed; a brand
is only ever written while its own partition's record is processed, so after a rebalance its
state is recovered by whichever worker owns that partition. The in-memory monitors are
rebuilt from the tables after every rebalance.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import timedelta
from typing import Any

import orjson

from pipeline.agents.context import WorkerContext
from pipeline.config import Settings
from pipeline.stages.alerts import KINDS, Alert, load_routing_rules
from pipeline.stages.brands import BrandRule, load_brand_rules
from pipeline.stages.crisis import BrandMonitor, CrisisConfig, PartitionMonitor
from pipeline.stages.notify import DeadLetter, WebhookNotifier
from pipeline.transport.topics import partition_for

log = logging.getLogger(__name__)

STAGE = "crisis"


def crisis_config(settings: Settings, rules: list[BrandRule]) -> CrisisConfig:
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
    """Key, value and headers of an alert event on the alerts topic."""
    return (alert.brand.encode(), orjson.dumps(alert.to_dict()),
            {"idempotency-key": alert.idempotency_key.encode()})


def register(context: WorkerContext) -> None:
    """Attach the crisis agent, its tables and the webhook notifier to the app."""
    app, settings, metrics = context.app, context.settings, context.metrics
    rules = load_brand_rules(settings.brands_file)
    config = crisis_config(settings, rules)
    brand_names = {rule.id: rule.name for rule in rules}
    partitions = settings.partitions
    live_table = app.Table(f"{settings.app_id}-crisis-live", default=None,
                           partitions=partitions)
    model_table = app.Table(f"{settings.app_id}-crisis-model", default=None,
                            partitions=partitions)
    monitors: dict[int, PartitionMonitor] = {}
    alerts_topic = context.topics["alerts"]
    dead_letter_topic = context.topics["alerts_deadletter"]
    source_topic = settings.topic("scored")

    async def publish_dead_letter(letter: DeadLetter) -> None:
        await dead_letter_topic.send(key=letter.alert.brand.encode(),
                                     value=orjson.dumps(letter.to_dict()))

    notifier = WebhookNotifier(
        load_routing_rules(settings.alert_routes_file),
        max_attempts=settings.webhook_max_attempts, timeout_s=settings.webhook_timeout_s,
        on_dead_letter=publish_dead_letter,
        on_outcome=lambda outcome: metrics.webhook_deliveries.labels(outcome=outcome).inc(),
    )
    context.readiness.checks["crisis_partitions_assigned"] = lambda: bool(
        app.consumer.assignment()
    )

    @app.task
    async def start_notifier() -> None:
        await notifier.start()

    @app.on_before_shutdown.connect
    async def stop_notifier(sender: Any, **kwargs: Any) -> None:
        await notifier.stop(drain_timeout=5.0)

    @app.on_partitions_assigned.connect
    async def forget_monitors(sender: Any, assigned: Any, **kwargs: Any) -> None:
        # the tables are the truth after a rebalance; rebuilt lazily per partition
        monitors.clear()

    def partition_monitor(partition: int) -> PartitionMonitor:
        monitor = monitors.get(partition)
        if monitor is not None:
            return monitor

        def owns(brand: str) -> bool:
            return partition_for(brand.encode(), partitions) == partition

        restored = []
        for brand, live in list(live_table.items()):
            if live is not None and owns(brand):
                restored.append(BrandMonitor.from_state(
                    brand, config, live=live, model=model_table.get(brand),
                    brand_name=brand_names.get(brand)))
        monitor = PartitionMonitor(config, brand_names=brand_names, owns=owns,
                                   monitors=restored)
        monitors[partition] = monitor
        return monitor

    def count_open_incidents() -> None:
        totals = dict.fromkeys(KINDS, 0)
        for monitor in monitors.values():
            for kind, count in monitor.open_incidents().items():
                totals[kind] += count
        for kind, count in totals.items():
            metrics.open_incidents.labels(kind=kind).set(count)

    @app.agent(context.topics["scored"], name=f"{settings.app_id}.crisis")
    async def crisis(stream: Any) -> None:
        async for event in stream.events():
            raw = bytes(event.value)
            partition, offset = event.message.partition, event.message.offset

            async def work(raw: bytes = raw, partition: int = partition,
                           offset: int = offset) -> None:
                mentions = await context.decode_in(STAGE, [raw], source_topic)
                monitor = partition_monitor(partition)
                result = monitor.apply(offset, mentions)
                if result.late:
                    metrics.crisis_dropped.labels(reason="late").inc(result.late)
                if result.refused:
                    metrics.crisis_dropped.labels(reason="bad_time").inc(result.refused)
                tone_counts: Counter[tuple[str, str]] = Counter()
                for mention in mentions:
                    sentiment = mention.get("sentiment")
                    label = sentiment.get("label") if isinstance(sentiment, dict) else None
                    for brand in set(mention.get("brands") or ()):
                        if monitor.owns(brand):
                            tone_counts[brand, str(label or "unscored")] += 1
                for (brand, tone), count in tone_counts.items():
                    metrics.brand_mentions.labels(
                        brand=metrics.brand_labels.label(brand), sentiment=tone,
                    ).inc(count)
                pending = [
                    await context.dead_letter(orjson.dumps(mention), error.reason,
                                              error.detail, stage=STAGE,
                                              source_topic=source_topic)
                    for mention, error in result.unreadable
                ]
                for alert in result.alerts:
                    key, value, headers = alert_record(alert)
                    pending.append(await alerts_topic.send(key=key, value=value,
                                                           headers=headers))
                for future in pending:
                    await future
                for alert in result.alerts:
                    notifier.enqueue(alert)
                    metrics.alerts.labels(kind=alert.kind, severity=alert.severity.label,
                                          status=alert.status).inc()
                    record = alert.to_dict()
                    for listener in context.alert_listeners:
                        listener(record)
                # state after the alerts: a crash in between re-emits, never loses them
                for brand in result.changed_model:
                    model_table[brand] = monitor.monitors[brand].model_state()
                for brand in result.changed_live:
                    live_table[brand] = monitor.monitors[brand].live_state()
                if result.alerts:
                    count_open_incidents()
                context.observe_out(STAGE, mentions)

            await context.guarded(STAGE, [raw], source_topic, work)
