"""The Faust app: one factory wires the requested stages' agents onto their topics.

``build_app(settings)`` returns a configured app whose agents are exactly the stages listed
in ``settings.stages``; the same code runs in the demo, the tests and production, only the
settings differ. Each worker serves ``/metrics``, ``/healthz`` and ``/readyz`` on its own
port.
"""

from __future__ import annotations

import functools
import socket
import time
from datetime import UTC, datetime
from typing import Any

import faust
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from pipeline.agents.context import Readiness, WorkerContext
from pipeline.agents.lag import positions, record_lag
from pipeline.agents.watchdog import ConsumerWatchdog, crash_worker, watch_consumers
from pipeline.config import Settings
from pipeline.metrics import PipelineMetrics
from pipeline.transport import faust_kafka
from pipeline.transport.connection import (
    faust_broker_urls,
    faust_credentials,
    heartbeat_interval_s,
)
from pipeline.transport.coordination import PartitionAssignor, faust_group_consumer
from pipeline.transport.faust_recovery import TableManager


def build_app(
    settings: Settings, *, registry: CollectorRegistry | None = None,
) -> tuple[Any, WorkerContext]:
    """Create the Faust app with the agents of ``settings.stages`` and its web endpoints."""
    registry = registry if registry is not None else CollectorRegistry()
    app = _faust_app(settings)
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
    _declare_topics(app, context)
    _register_web(app, context)
    context.consumers["faust"] = lambda: faust_group_consumer(app)
    watch_consumers(app, ConsumerWatchdog(
        metrics, functools.partial(crash_worker, app), context.consumers,
    ))
    register_stages(context)
    return app, context


def _faust_app(settings: Settings) -> Any:
    """The Faust app of ``settings``: brokers, table store, group timings, web port."""
    return faust.App(
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
        # Faust's, with the likely cause logged when it refuses an assignment (#37)
        PartitionAssignor=PartitionAssignor,
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


def _declare_topics(app: Any, context: WorkerContext) -> None:
    """The pipeline's topics on ``context``, by short name; every one raw bytes."""
    settings = context.settings
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


def register_stages(context: WorkerContext) -> None:
    """Attach the agents of ``settings.stages``: the one place that imports the stage agents.

    Imported here, not at the top, so that a worker only loads the heavy cores (torch...) it
    runs; the agents import :mod:`pipeline.agents.context`, never this module.
    """
    stages = context.settings.stages
    if "ingest" in stages:
        from pipeline.agents import ingest

        ingest.register(context)
    if "dedup" in stages:
        from pipeline.agents import dedup

        dedup.register(context)
    if "sentiment" in stages:
        from pipeline.agents import sentiment

        sentiment.register(context)
    if "crisis" in stages:
        from pipeline.agents import crisis

        crisis.register(context)
    if "store" in stages:
        from pipeline.agents import store

        store.register(context)


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
