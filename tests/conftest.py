"""Fixtures for the whole test tree."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def chdb_store_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The embedded store folder of this test process.

    While a chDB client is open its process can open no other folder, and the tests' stores
    stay open: every in-process store test uses this one, each in a database of its own
    (``ListeningStore.open(database=...)``).
    """
    return f"chdb://{tmp_path_factory.mktemp('chdb')}"
