"""The Faust app: one factory wires the requested stages' agents onto their topics.

``build_app(settings)`` returns a configured app whose agents are exactly the stages listed
in ``settings.stages``; the same code runs in the demo, the tests and production, only the
settings differ. Each worker serves ``/metrics``, ``/healthz`` and ``/readyz`` on its own
port.
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import faust
import numpy as np
import numpy.typing as npt
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from pipeline.agents.lag import positions, record_lag
from pipeline.config import Settings
from pipeline.event_time import epoch_seconds
from pipeline.metrics import PipelineMetrics
from pipeline.schema import dead_letter_record
from pipeline.transport import faust_kafka
from pipeline.transport.connection import (
    faust_broker_urls,
    faust_credentials,
    heartbeat_interval_s,
)
from pipeline.transport.faust_recovery import TableManager
from pipeline.transport.topics import decode_batch, encode_batches

log = logging.getLogger(__name__)


@dataclass
class Readiness:
    """What /readyz reports: every check must be true for the worker to take traffic."""

    checks: dict[str, Callable[[], bool]] = field(default_factory=dict)

    def report(self) -> dict[str, bool]:
        """Run every check; a check that raises counts as not ready."""
        results = {}
        for name, check in self.checks.items():
            try:
                results[name] = bool(check())
            except Exception:
                results[name] = False
        return results


@dataclass
class WorkerContext:
    """What the agents of one worker share: settings, metrics, topics and readiness."""

    settings: Settings
    app: Any
    metrics: PipelineMetrics
    registry: CollectorRegistry
    readiness: Readiness
    topics: dict[str, Any] = field(default_factory=dict)
    # called with each alert event dict (the demo prints them)
    alert_listeners: list[Callable[[dict[str, Any]], None]] = field(default_factory=list)

    async def dead_letter(
        self, raw: bytes, reason: str, detail: str, *, stage: str, source_topic: str,
    ) -> Awaitable[Any]:
        """Send one record to the dead-letter topic and count it; the broker's ack to await."""
        ack = await self.topics["deadletter"].send(
            value=dead_letter_record(raw, reason, detail, stage=stage, source_topic=source_topic)
        )
        self.metrics.deadlettered.labels(stage=stage, reason=reason).inc()
        return ack

    async def guarded(
        self, stage: str, raw_values: list[bytes], source_topic: str,
        work: Callable[[], Awaitable[None]],
    ) -> None:
        """Run a batch's work; if it fails unexpectedly, dead-letter the batch, never crash.

        The stage cores turn bad input into rejects themselves; this is the last line for
        bugs and unforeseen input, so that one poison batch cannot stop a partition.
        """
        started = time.perf_counter()
        try:
            await work()
        except Exception as error:
            log.exception("stage %s failed on a batch of %d records", stage, len(raw_values))
            self.metrics.stage_failures.labels(stage=stage, reason=type(error).__name__).inc()
            acks = [
                await self.dead_letter(
                    raw, "internal_error", f"{type(error).__name__}: {error}",
                    stage=stage, source_topic=source_topic,
                )
                for raw in raw_values
            ]
            # the caller commits the batch's offsets next: only once its dead letters are in
            # (if the broker refuses them, this raises and the batch is replayed instead)
            await asyncio.gather(*acks)
        finally:
            self.metrics.stage_batch_seconds.labels(stage=stage).observe(
                time.perf_counter() - started
            )

    async def decode_in(
        self, stage: str, raws: Sequence[bytes], source_topic: str,
    ) -> list[dict[str, Any]]:
        """The mentions of micro-batch records, counted into ``stage``.

        A record that is not a batch is dead-lettered (``bad_value``) and yields nothing.
        """
        mentions, broken = decode_batches(list(raws))
        for value, reason in broken:
            await self.dead_letter(value, "bad_value", reason, stage=stage,
                                   source_topic=source_topic)
        self.count_in(stage, len(mentions))
        return mentions

    def count_in(self, stage: str, mentions: int) -> None:
        """Count one batch of ``mentions`` into ``stage``."""
        self.metrics.stage_in.labels(stage=stage).inc(mentions)
        self.metrics.stage_batch_size.labels(stage=stage).observe(mentions)

    def observe_out(self, stage: str, mentions: list[dict[str, Any]]) -> None:
        """Count mentions leaving a stage and record their latencies."""
        ingested_at = [ingested if isinstance(ingested, int | float) else math.nan
                       for ingested in (mention.get("ingested_at") for mention in mentions)]
        self.observe_latencies(stage, np.asarray(ingested_at, dtype=np.float64), epoch_seconds(
            [created if isinstance(created, str) else "" for created in
             (mention.get("created_at") for mention in mentions)],
        ))

    def observe_latencies(
        self, stage: str, ingested_at: npt.NDArray[np.float64],
        event_times: npt.NDArray[np.float64],
    ) -> None:
        """Count a batch leaving ``stage``: its mentions' ingest and event times (Unix s).

        One entry per mention in each, NaN where a mention has no such time (it is counted,
        and left out of that histogram).
        """
        if not ingested_at.size:
            return
        self.metrics.stage_out.labels(stage=stage).inc(ingested_at.size)
        now = time.time()
        # clocks of other hosts may run ahead: a negative age counts as 0
        for histogram, since in ((self.metrics.end_to_end_seconds, ingested_at),
                                 (self.metrics.event_age_seconds, event_times)):
            ages = np.maximum(now - since, 0.0)
            histogram.labels(stage=stage).observe_many(ages[~np.isnan(ages)])


def decode_batches(values: list[bytes]) -> tuple[list[dict[str, Any]], list[tuple[bytes, str]]]:
    """Flatten internal micro-batch records; undecodable ones come back with the reason."""
    mentions: list[dict[str, Any]] = []
    broken: list[tuple[bytes, str]] = []
    for value in values:
        try:
            mentions.extend(decode_batch(value))
        except ValueError as error:
            broken.append((value, str(error)))
    return mentions, broken


async def send_micro_batches(
    topic: Any, groups: Mapping[int, Sequence[dict[str, Any]]],
) -> list[Awaitable[Any]]:
    """Send each partition's mentions as micro-batch records; the broker acks to await.

    A partition's mentions go as one record unless that would pass the record size cap
    (:func:`~pipeline.transport.topics.encode_batches`).
    """
    return await send_records(topic, {
        partition: encode_batches(mentions) for partition, mentions in groups.items()
    })


async def send_records(
    topic: Any, records: Mapping[int, Sequence[bytes]],
) -> list[Awaitable[Any]]:
    """Send each partition's records, in order; the broker acks to await."""
    acks = []
    for partition, values in records.items():
        for value in values:
            acks.append(await topic.send(value=value, partition=partition))
    return acks


def build_app(
    settings: Settings, *, registry: CollectorRegistry | None = None,
) -> tuple[Any, WorkerContext]:
    """Create the Faust app with the agents of ``settings.stages`` and its web endpoints."""
    registry = registry if registry is not None else CollectorRegistry()
    app = faust.App(
        settings.app_id,
        broker=faust_broker_urls(settings),
        broker_credentials=faust_credentials(settings),
        store=settings.table_store,
        datadir=str(settings.data_dir),
        # tables (dedup, spikes) keep JSON; every topic below sets "raw" for itself
        key_serializer="json",
        value_serializer="json",
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        topic_allow_declare=True,
        # resumes the agents' partitions only after seeking them (pipeline.transport.faust_recovery)
        TableManager=TableManager,
        producer_max_batch_size=settings.producer_batch_bytes,
        broker_session_timeout=settings.group_session_timeout_s,
        broker_rebalance_timeout=settings.group_rebalance_timeout_s,
        broker_heartbeat_interval=heartbeat_interval_s(settings),
        web_host=settings.web_host,
        web_bind=settings.web_host,
        web_port=settings.web_port,
        autodiscover=False,
        # the worker's own start-up banner would drown the demo's progress line
        worker_redirect_stdouts=False,
    )
    metrics = PipelineMetrics(registry)
    faust_kafka.install(
        app, settings.consumer_fetch_max_wait_ms,
        on_rewind=lambda topic, outcome: metrics.consumer_rewinds.labels(
            topic=topic, outcome=outcome,
        ).inc(),
    )
    context = WorkerContext(
        settings=settings, app=app, metrics=metrics, registry=registry, readiness=Readiness(),
    )
    for name in ("raw", "routed", "unique", "scored", "deadletter"):
        context.topics[name] = app.topic(
            settings.topic(name), key_type=bytes, value_type=bytes,
            key_serializer="raw", value_serializer="raw", partitions=None,
        )
    context.topics["alerts"] = app.topic(
        settings.alerts_topic, key_type=bytes, value_type=bytes,
        key_serializer="raw", value_serializer="raw",
    )
    context.topics["alerts_deadletter"] = app.topic(
        f"{settings.alerts_topic}.deadletter", key_type=bytes, value_type=bytes,
        key_serializer="raw", value_serializer="raw",
    )
    _register_web(app, context)
    # imported here so that a worker only loads the heavy cores (torch...) it runs
    if "ingest" in settings.stages:
        from pipeline.agents import ingest

        ingest.register(context)
    if "dedup" in settings.stages:
        from pipeline.agents import dedup

        dedup.register(context)
    if "sentiment" in settings.stages:
        from pipeline.agents import sentiment

        sentiment.register(context)
    if "crisis" in settings.stages:
        from pipeline.agents import crisis

        crisis.register(context)
    if "store" in settings.stages:
        from pipeline.agents import store

        store.register(context)
    return app, context


class BrokerProbe:
    """Can we open a TCP connection to a bootstrap server? Cached for a few seconds."""

    def __init__(self, bootstrap: str, ttl_s: float = 5.0) -> None:
        self.servers = [server.rsplit(":", 1) for server in bootstrap.split(",")]
        self.ttl_s = ttl_s
        self._checked_at = 0.0
        self._reachable = False

    def __call__(self) -> bool:
        """True when a bootstrap server accepted a connection in the last ``ttl_s``."""
        now = time.monotonic()
        if now - self._checked_at < self.ttl_s:
            return self._reachable
        self._checked_at = now
        self._reachable = any(self._connects(host, int(port)) for host, port in self.servers)
        return self._reachable

    @staticmethod
    def _connects(host: str, port: int) -> bool:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return True
        except OSError:
            return False


def _register_web(app: Any, context: WorkerContext) -> None:
    context.readiness.checks["broker_reachable"] = BrokerProbe(context.settings.broker)
    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        return web.bytes(
            generate_latest(context.registry), content_type=CONTENT_TYPE_LATEST.split(";")[0],
        )

    @app.page("/healthz")
    async def health_page(web: Any, request: Any) -> Any:
        return web.json({"status": "alive", "time": datetime.now(UTC).isoformat()})

    @app.page("/readyz")
    async def ready_page(web: Any, request: Any) -> Any:
        checks = context.readiness.report()
        ready = all(checks.values())
        return web.json({"ready": ready, "checks": checks}, status=200 if ready else 503)

    # the ingest service samples (and forgets) the raw topic's lag itself
    raw_topic = context.settings.topic("raw")

    def not_raw(topic: str) -> bool:
        return topic != raw_topic

    @app.on_partitions_assigned.connect
    async def forget_moved_partitions(sender: Any, assigned: Any, **kwargs: Any) -> None:
        context.metrics.keep_lag_only_for(assigned, not_raw)

    @app.timer(interval=5.0)
    async def sample_consumer_lag() -> None:
        assigned = app.consumer.assignment()
        context.metrics.assigned_partitions.set(len(assigned))
        record_lag(context.metrics, app.consumer, await positions(app.consumer, assigned))
