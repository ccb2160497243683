"""Waiting in integration tests for something a real process does in its own time."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest


def wait_until(condition: Callable[[], object], what: str, timeout_s: float = 60,
               explain: Callable[[], str] | None = None) -> None:
    """Poll ``condition`` twice a second until it is true; fail the test after ``timeout_s``
    (with what ``explain`` says, if given)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}" + (f": {explain()}" if explain else ""))
