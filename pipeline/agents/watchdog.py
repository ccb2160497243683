"""A worker whose consumer group membership died exits, so that it is started again.

Each consumer of a worker (Faust's, behind the agents, and the batch consumers of ingest and
the store sink) keeps its group membership in one aiokafka background task; when that task
dies the process stays up and healthy-looking while it consumes nothing
(:mod:`pipeline.transport.coordination`). The five-stage SIGKILL test caught it: a restarted
dedup worker's assignor failed its own consistency check and the worker stalled for good
(#37, ``tests/reliability/README.md``). aiokafka cannot rejoin with a dead coordinator, so the
watchdog says so in one line, counts it (``mentions_consumer_coordination_failures_total``),
and crashes the worker: it exits non-zero and its supervisor (Kubernetes) starts a fresh
one, which joins the group again and replays from the committed offsets.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from mode import Service

from pipeline.metrics import PipelineMetrics
from pipeline.transport.coordination import coordinator_failure

log = logging.getLogger(__name__)
WATCH_INTERVAL_S = 2.0
# a crashed worker normally exits at once; this bounds a shutdown stuck on the broken consumer
EXIT_GRACE_S = 30.0
EXIT_CODE_STUCK = 70  # os.EX_SOFTWARE


@dataclass
class ConsumerWatchdog:
    """Checks the worker's consumers (by name) and stops the worker when one's group died.

    ``consumers`` maps a name ("faust", or a stage's batch consumer) to a getter of its
    aiokafka consumer (``None`` while not started); ``stop_worker`` is awaited once, with the
    error, on the first failure found.
    """

    metrics: PipelineMetrics
    stop_worker: Callable[[BaseException], Awaitable[None]]
    consumers: dict[str, Callable[[], Any]] = field(default_factory=dict)
    failed: str | None = None

    async def check(self) -> str | None:
        """Look at every consumer once; the name of the one whose group died, if any."""
        if self.failed is not None:
            return None
        for name, consumer_of in self.consumers.items():
            error = coordinator_failure(consumer_of())
            if error is None:
                continue
            self.failed = name
            cause = error.__cause__ or error
            log.critical("%s consumer: group coordination died (%r); the worker consumes "
                         "nothing like this and exits so that it is started again",
                         name, cause)
            self.metrics.coordination_failures.labels(consumer=name).inc()
            await self.stop_worker(error)
            return name
        return None


async def crash_worker(app: Any, error: BaseException) -> None:
    """Crash the Faust app: the worker then stops and exits with status 1.

    Should that shutdown hang on the broken consumer, the process ends after
    ``EXIT_GRACE_S`` regardless.
    """
    deadline = threading.Timer(EXIT_GRACE_S, os._exit, (EXIT_CODE_STUCK,))
    deadline.daemon = True
    deadline.start()
    await app.crash(error)


class WatchdogService(Service):
    """Runs a :class:`ConsumerWatchdog` every ``WATCH_INTERVAL_S`` seconds.

    A dependency of the app, so it runs from the start: Faust's own timers and services
    start only once the tables are recovered, which never happens when the first
    assignment is the one that killed the coordination.
    """

    def __init__(self, watchdog: ConsumerWatchdog, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.watchdog = watchdog

    @Service.timer(WATCH_INTERVAL_S)
    async def _watch(self) -> None:
        await self.watchdog.check()


def watch_consumers(app: Any, watchdog: ConsumerWatchdog) -> None:
    """Make ``app`` run ``watchdog`` for as long as it runs."""
    app.add_dependency(WatchdogService(watchdog))
