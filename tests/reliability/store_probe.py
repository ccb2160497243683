"""What a listening store holds, as JSON on stdout: ``python -m tests.reliability.store_probe``.

Run in its own process (``PIPELINE_STORE_URL`` names the store): a process opens one embedded
store folder in its life, and the test process may already hold another.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import orjson

from pipeline.config import Settings, load_settings
from pipeline.store.client import ListeningStore
from pipeline.store.queries import BoundQuery


def probe(settings: Settings) -> dict[str, Any]:
    """Rows per (mention, brand) with and without FINAL, per-brand counts, alert keys."""
    store = ListeningStore.open(settings)
    try:
        def rows(sql: str) -> list[list[Any]]:
            return [list(row) for row in store.query(BoundQuery(sql))]

        table, incidents = store.table, store.incident_table
        return {
            "final_rows": rows(f"SELECT id, brand, count() FROM {table} FINAL GROUP BY id, brand"),
            "brand_counts": dict(rows(
                f"SELECT brand, uniqExact(id) FROM {table} FINAL GROUP BY brand")),
            "alert_keys": rows(
                f"SELECT idempotency_key, count() FROM {incidents} FINAL GROUP BY idempotency_key"),
        }
    finally:
        store.close()


def probe_in_subprocess(store_url: str) -> dict[str, Any]:
    """:func:`probe` of the store at ``store_url``, from a fresh process."""
    completed = subprocess.run(
        [sys.executable, "-m", "tests.reliability.store_probe"],
        env={**os.environ, "PIPELINE_STORE_URL": store_url},
        capture_output=True, timeout=120, check=False,
    )
    assert completed.returncode == 0, completed.stderr.decode(errors="replace")[-3000:]
    result: dict[str, Any] = orjson.loads(completed.stdout)
    return result


if __name__ == "__main__":
    sys.stdout.buffer.write(orjson.dumps(probe(load_settings())))
