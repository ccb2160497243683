"""Run one Faust worker process for the stages in the settings."""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable

import faust
from kafka.errors import KafkaError

from pipeline.agents.app import build_app
from pipeline.config import Settings
from pipeline.stages.alerts.routing import load_routing_rules
from pipeline.stages.brands import load_brand_rules
from pipeline.transport.broker import free_port
from pipeline.transport.topics import ensure_topics

log = logging.getLogger(__name__)
# an old-generation pass runs after this many middle ones (the middle after 20 young ones):
# with the young threshold at 50k net allocations, a full pass every few million mentions
MIDDLE_THRESHOLD, OLD_THRESHOLD = 20, 10
BROKER_RETRY_MAX_S = 30.0


def tune_garbage_collector(young_threshold: int) -> None:
    """Collect less often, and never rescan what start-up built.

    A worker holds each micro-batch's few thousand dicts alive across awaits, so with
    CPython's default young threshold (700 allocations) nearly every collection finds a batch
    in flight, promotes it, and the promotions trigger full passes over every live object
    (caches, dedup state, Faust): a large share of the worker's CPU, and a small one with
    50k (measured: see benchmarks/README.md). Most of these objects die by reference counting
    anyway; the collector only has to find cycles. ``gc.freeze()`` moves the modules,
    models and app built at start-up out of every later pass.
    """
    if young_threshold <= 0:
        return
    gc.collect()
    gc.freeze()
    gc.set_threshold(young_threshold, MIDDLE_THRESHOLD, OLD_THRESHOLD)


def ensure_topics_when_reachable(
    settings: Settings, *, ensure: Callable[[Settings], list[str]] = ensure_topics,
    sleep: Callable[[float], None] = time.sleep,
) -> list[str]:
    """Create the missing topics, waiting with backoff for a broker that is not up yet.

    A worker started before its broker (a cluster booting, a rolling restart) waits and
    says so once, instead of exiting and needing someone to start it again.
    """
    delay, said = 1.0, False
    while True:
        try:
            return ensure(settings)
        except KafkaError as error:
            if not said:
                log.error("broker not reachable at %s (%r); retrying with backoff until it is",
                          settings.broker, error)
                said = True
            sleep(delay)
            delay = min(delay * 2, BROKER_RETRY_MAX_S)


def run_worker(settings: Settings, *, loglevel: str = "warning") -> int:
    """Validate the configuration, create missing topics, then run the worker until stopped."""
    # bad listening queries stop the process here, before it joins the consumer group
    load_brand_rules(settings.brands_file)
    if "crisis" in settings.stages:
        load_routing_rules(settings.alert_routes_file)
    if settings.web_port == 0:
        settings = settings.model_copy(update={"web_port": free_port(settings.web_host)})
    created = ensure_topics_when_reachable(settings)
    if created:
        log.warning("created topics: %s", ", ".join(created))
    app, _context = build_app(settings)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    tune_garbage_collector(settings.gc_young_threshold)
    print(
        f"worker {settings.app_id} stages={','.join(settings.stages)} broker={settings.broker} "
        f"metrics=http://{settings.web_host}:{settings.web_port}/metrics",
        flush=True,
    )
    worker.execute_from_commandline()
    return 0
