"""Crisis agent: scored micro-batches -> per-brand windows and detectors -> alert events.

``mentions.scored`` is partitioned by brand (a mention naming several brands is sent to each
of their partitions, :func:`~pipeline.stages.routing.scored_partitions`), so the agent on
partition ``p`` counts a mention for the brands it names whose partition is ``p``, and every
brand's state lives on exactly one partition. The work is the pure core
:class:`~pipeline.stages.crisis_partitions.CrisisPartitions` (counting, windows, detectors,
incidents, which state changed), answered as a
:class:`~pipeline.stages.stage_result.StageResult` by
:func:`~pipeline.stages.crisis_partitions.crisis_result`; the runner
(:mod:`pipeline.agents.runner`, delivery ``ACKED``) moves the records:

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
from typing import Any

from pipeline.agents.context import WorkerContext
from pipeline.agents.runner import Batch, Delivery, Stage, run_as_agent
from pipeline.records import SCORED
from pipeline.stages.alerts.record import ALERT_DEAD_LETTERS
from pipeline.stages.alerts.routing import load_routing_rules
from pipeline.stages.brands import load_brand_rules
from pipeline.stages.crisis_partitions import CrisisPartitions, crisis_config, crisis_result
from pipeline.stages.notify import DeadLetter, WebhookNotifier
from pipeline.stages.stage_result import StageResult

log = logging.getLogger(__name__)

STAGE = "crisis"


def register(context: WorkerContext) -> None:
    """Attach the crisis agent, its tables and the webhook notifier to the app."""
    app, settings = context.app, context.settings
    rules = load_brand_rules(settings.brands_file)
    partitions = CrisisPartitions(
        crisis_config(settings, rules), partitions=settings.partitions,
        brand_names={rule.id: rule.name for rule in rules},
        live=app.Table(f"{settings.app_id}-crisis-live", default=None,
                       partitions=settings.partitions),
        model=app.Table(f"{settings.app_id}-crisis-model", default=None,
                        partitions=settings.partitions),
    )
    notifier = _webhook_notifier(context)
    context.readiness.checks["crisis_partitions_assigned"] = lambda: bool(
        app.consumer.assignment()
    )

    @app.on_partitions_assigned.connect
    async def forget_monitors(sender: Any, assigned: Any, **kwargs: Any) -> None:
        # the tables are the truth after a rebalance; rebuilt lazily per partition
        partitions.forget()

    def answer(batch: Batch) -> StageResult:
        partition, offset, _record = batch.record()
        return crisis_result(partitions, partition, offset, batch.mentions or [])

    # alerts on the broker before the state that made them: a crash in between re-emits them
    run_as_agent(context, Stage(STAGE, "scored", answer, Delivery.ACKED, codec=SCORED,
                                on_alert=notifier.enqueue))


def _webhook_notifier(context: WorkerContext) -> WebhookNotifier:
    """The webhook notifier, started and stopped with the app; its failures dead-lettered."""
    app, settings, metrics = context.app, context.settings, context.metrics
    dead_letter_topic = context.topics["alerts_deadletter"]

    async def publish_dead_letter(letter: DeadLetter) -> None:
        await dead_letter_topic.send(key=letter.alert.brand.encode(),
                                     value=ALERT_DEAD_LETTERS.encode(letter.to_event()))

    notifier = WebhookNotifier(
        load_routing_rules(settings.alert_routes_file),
        max_attempts=settings.webhook_max_attempts, timeout_s=settings.webhook_timeout_s,
        on_dead_letter=publish_dead_letter,
        on_outcome=lambda outcome: metrics.webhook_deliveries.labels(outcome=outcome).inc(),
    )

    @app.task
    async def start_notifier() -> None:
        await notifier.start()

    @app.on_before_shutdown.connect
    async def stop_notifier(sender: Any, **kwargs: Any) -> None:
        await notifier.stop(drain_timeout=5.0)

    return notifier
