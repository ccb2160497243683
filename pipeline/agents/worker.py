"""Run one Faust worker process for the stages in the settings."""

from __future__ import annotations

import logging

import faust

from pipeline.agents.app import build_app
from pipeline.config import Settings
from pipeline.stages.alerts import load_routing_rules
from pipeline.stages.brands import load_brand_rules
from pipeline.transport.broker import free_port
from pipeline.transport.topics import ensure_topics

log = logging.getLogger(__name__)


def run_worker(settings: Settings, *, loglevel: str = "warning") -> int:
    """Validate the configuration, create missing topics, then run the worker until stopped."""
    # bad listening queries stop the process here, before it joins the consumer group
    load_brand_rules(settings.brands_file)
    if "crisis" in settings.stages:
        load_routing_rules(settings.alert_routes_file)
    if settings.web_port == 0:
        settings = settings.model_copy(update={"web_port": free_port(settings.web_host)})
    created = ensure_topics(settings)
    if created:
        log.warning("created topics: %s", ", ".join(created))
    app, _context = build_app(settings)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    print(
        f"worker {settings.app_id} stages={','.join(settings.stages)} broker={settings.broker} "
        f"metrics=http://{settings.web_host}:{settings.web_port}/metrics",
        flush=True,
    )
    worker.execute_from_commandline()
    return 0
