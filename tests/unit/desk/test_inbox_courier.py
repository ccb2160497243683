"""The inbox's courier against a real local webhook: retries, the idempotency key, failures."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from pipeline.desk.inbox.courier import Courier
from pipeline.stages.alerts.routing import Destination
from pipeline.store.workflow import WorkflowStore

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


class FlakyWebhook:
    """Answers the statuses it is given, in order (then 200), and records the keys it saw."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.keys: list[str] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                hook.keys.append(self.headers.get("idempotency-key", ""))
                self.send_response(hook.statuses.pop(0) if hook.statuses else 200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def hook_factory() -> Iterator[Any]:
    hooks: list[FlakyWebhook] = []

    def make(statuses: list[int]) -> FlakyWebhook:
        hooks.append(FlakyWebhook(statuses))
        return hooks[-1]

    yield make
    for hook in hooks:
        hook.server.shutdown()


def courier_for(tmp_path: Path, url: str, clock: list[datetime]) -> tuple[Courier, WorkflowStore]:
    workflow = WorkflowStore.open(f"sqlite:///{tmp_path / 'inbox.sqlite'}")
    courier = Courier(workflow, {"care": Destination("care", url, "json")}, lambda: clock[0],
                      timeout_s=2, max_attempts=3, base_backoff_s=10)
    return courier, workflow


def test_a_5xx_is_retried_after_a_backoff_with_the_same_key(tmp_path: Path,
                                                            hook_factory: Any) -> None:
    hook = hook_factory([503])
    clock = [NOW]
    courier, workflow = courier_for(tmp_path, hook.url, clock)
    workflow.enqueue("inbox/mention/m:1/care/rule:r", "m:1", "care", {"x": 1}, "rule r", NOW,
                     log_action=False)
    assert courier.run_once() == 0
    clock[0] = NOW + timedelta(seconds=5)
    assert courier.run_once() == 0  # the backoff (10 s) is not over
    clock[0] = NOW + timedelta(seconds=11)
    assert courier.run_once() == 1
    assert hook.keys == ["inbox/mention/m:1/care/rule:r"] * 2
    forward = workflow.forwards(["m:1"])["m:1"][0]
    assert (forward["state"], forward["attempts"]) == ("delivered", 2)


def test_a_4xx_fails_at_once_and_says_why(tmp_path: Path, hook_factory: Any) -> None:
    hook = hook_factory([404])
    courier, workflow = courier_for(tmp_path, hook.url, [NOW])
    workflow.enqueue("k", "m:1", "care", {}, "ana", NOW, log_action=False)
    courier.run_once()
    forward = workflow.forwards(["m:1"])["m:1"][0]
    assert (forward["state"], forward["error"]) == ("failed", "HTTP 404")


def test_an_unreachable_webhook_is_given_up_after_the_last_attempt(tmp_path: Path) -> None:
    clock = [NOW]
    courier, workflow = courier_for(tmp_path, "http://127.0.0.1:9/nothing", clock)
    workflow.enqueue("k", "m:1", "care", {}, "ana", NOW, log_action=False)
    for minutes in range(3):
        clock[0] = NOW + timedelta(minutes=minutes * 10)
        courier.run_once()
    forward = workflow.forwards(["m:1"])["m:1"][0]
    assert (forward["state"], forward["attempts"]) == ("failed", 3)
