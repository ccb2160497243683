"""Delivering forwards from the outbox, and the forwarding rules, in a background thread.

The page only writes a forward into the outbox (:mod:`pipeline.store.workflow`) and answers;
:class:`Courier` posts it to its destination from its own thread, so a slow or dead webhook
never holds a page. Delivery is at least once: a forward is marked delivered after its
webhook answered 2xx, so a desk that stops in between sends it again (with the same
``Idempotency-Key``). 429, 5xx and network errors are retried with exponential backoff
(``base * 2**attempt``, capped); any other 4xx, or the last attempt, marks it failed, which
the item's page shows. Each claimed forward is leased, so desks sharing the database do not
send it twice at once.
"""

from __future__ import annotations

import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Final

import orjson

from pipeline.stages.alerts.routing import Destination
from pipeline.store.workflow import Delivery, WorkflowStore

log = logging.getLogger(__name__)

MAX_BACKOFF: Final = timedelta(minutes=10)
# the forwarding rules, given the time: how many forwards they queued
ApplyRules = Callable[[datetime], int]


class Courier:
    """Delivers the outbox and applies the forwarding rules, every ``poll_s`` or when woken."""

    def __init__(self, workflow: WorkflowStore, destinations: Mapping[str, Destination],
                 clock: Callable[[], datetime], *, apply_rules: ApplyRules | None = None,
                 poll_s: float = 2.0, timeout_s: float = 5.0, max_attempts: int = 5,
                 base_backoff_s: float = 2.0) -> None:
        self.workflow = workflow
        self.destinations = destinations
        self.apply_rules = apply_rules
        self.clock = clock
        self.poll_s = poll_s
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.base_backoff_s = base_backoff_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the background thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="inbox-courier", daemon=True)
            self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop after the delivery in progress."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def wake(self) -> None:
        """Look at the outbox now (a forward was just queued)."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:
                # the store or the database is down: say so, try again at the next round
                log.exception("inbox: the courier's round failed")
            self._wake.wait(self.poll_s)
            self._wake.clear()

    def run_once(self) -> int:
        """Apply the forwarding rules, then deliver what is due; how many were delivered."""
        if self.apply_rules is not None:
            self.apply_rules(self.clock())
        delivered = 0
        lease = timedelta(seconds=self.timeout_s * 3 + 5)
        for delivery in self.workflow.claim(self.clock(), lease):
            if self._stop.is_set():
                break
            delivered += self.deliver(delivery)
        return delivered

    def deliver(self, delivery: Delivery) -> bool:
        """Post one forward; True when its destination took it."""
        destination = self.destinations.get(delivery.destination)
        if destination is None:
            self.workflow.failed(delivery, "the destination is no longer in the routing file")
            return False
        request = urllib.request.Request(
            destination.url, data=orjson.dumps(delivery.body), method="POST",
            headers={"Content-Type": "application/json", "Idempotency-Key": delivery.key,
                     "User-Agent": "mentions-desk-inbox"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as answer:
                answer.read()
        except urllib.error.HTTPError as error:
            final = error.code < 500 and error.code != 429
            return self._undelivered(delivery, f"HTTP {error.code}", final=final)
        except (urllib.error.URLError, OSError) as error:
            return self._undelivered(delivery, f"{type(error).__name__}: {error}", final=False)
        self.workflow.delivered(delivery, self.clock())
        log.info("inbox: forwarded %s to %s", delivery.key, destination.name)
        return True

    def _undelivered(self, delivery: Delivery, error: str, *, final: bool) -> bool:
        if final or delivery.attempts + 1 >= self.max_attempts:
            log.warning("inbox: forward %s failed for good: %s", delivery.key, error)
            self.workflow.failed(delivery, error)
        else:
            backoff = min(timedelta(seconds=self.base_backoff_s * 2 ** delivery.attempts),
                          MAX_BACKOFF)
            self.workflow.retry_later(delivery, self.clock() + backoff, error)
        return False
