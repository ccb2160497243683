"""Reliability fixtures: the integration suite's real broker and worker processes, plus the
soak switch.

``RELIABILITY_SOAK=1`` runs the long versions (a minute of burst, three rounds of kills);
without it the directory takes about ten minutes here (benchmarks/README.md).
"""

from __future__ import annotations

import os

import pytest

# the same fixtures as the integration tests: a session broker, per-test topics, workers
from tests.integration.conftest import (  # noqa: F401
    kafka_bootstrap,
    pipeline_settings,
    start_worker,
)


@pytest.fixture(scope="session")
def soak() -> bool:
    """Whether the long (soak) versions of the tests run: ``RELIABILITY_SOAK=1``."""
    return os.environ.get("RELIABILITY_SOAK", "") not in ("", "0", "false")
