"""The store sink's write step without a store: outages waited out, refused rows found.

A stand-in store plays the outage and the refusals; the writer is driven as the runner
drives it (:meth:`StoreWriter.write` with a batch's inserts).
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry

from pipeline.agents.store_writer import StoreWriter
from pipeline.config import Settings
from pipeline.metrics import PipelineMetrics
from pipeline.stages.stage_result import BadRecord, Insert
from pipeline.store.client import StoreRejected, StoreUnavailable
from pipeline.store.rows import RowEncoder


class StandInStore:
    """Refuses any insert holding a ``bad`` row; down for the first ``down_for`` calls."""

    def __init__(self, down_for: int = 0) -> None:
        self.down_for = down_for
        self.inserted: list[bytes] = []
        self.settled = 0

    def _reach(self) -> None:
        if self.down_for:
            self.down_for -= 1
            raise StoreUnavailable("store is locked by another process")

    def insert(self, payload: bytes, table: str) -> None:
        self._reach()
        rows = payload.splitlines()
        if any(b"bad" in row for row in rows):
            raise StoreRejected("Cannot parse input")
        self.inserted += rows

    def settle_echoes(self) -> SimpleNamespace:
        self._reach()
        self.settled += 1
        return SimpleNamespace(built_hours=0, frontier=None)


def writer_over(store: StandInStore) -> tuple[StoreWriter, CollectorRegistry]:
    registry = CollectorRegistry()
    writer = StoreWriter(Settings(), PipelineMetrics(registry), RowEncoder({}))
    writer.store = store  # type: ignore[assignment]  # the stand-in plays the store
    return writer, registry


def test_a_refused_insert_is_halved_down_to_the_refused_rows() -> None:
    store = StandInStore()
    writer, registry = writer_over(store)
    rows = [b'{"id":"1"}', b'{"id":"bad"}', b'{"id":"3"}', b'{"id":"4"}', b'{"id":"5"}']
    refused = asyncio.run(writer.write([Insert("brand_mentions", rows)]))
    assert refused == [BadRecord(b'{"id":"bad"}', "store_rejected", "Cannot parse input")]
    assert sorted(store.inserted) == sorted(row for row in rows if b"bad" not in row)
    assert registry.get_sample_value("mentions_store_rows_total",
                                     {"table": "brand_mentions"}) == 4
    assert store.settled == 1  # the first write settles the echoes, later ones when due


def test_an_outage_is_waited_out_and_the_rows_go_in_once_the_store_is_back() -> None:
    store = StandInStore(down_for=2)
    writer, registry = writer_over(store)
    refused = asyncio.run(writer.write([Insert("incident_alerts", [b'{"key":"a"}'])]))
    assert refused == [] and store.inserted == [b'{"key":"a"}']
    assert writer.reachable
    assert registry.get_sample_value("mentions_store_errors_total",
                                     {"reason": "unavailable"}) == 2


def test_a_stopping_worker_gives_the_batch_up_uncommitted_during_an_outage() -> None:
    store = StandInStore(down_for=1)
    writer, _ = writer_over(store)
    writer.stopping = lambda: True
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(writer.write([Insert("brand_mentions", [b'{"id":"1"}'])]))
    assert store.inserted == [] and not writer.reachable
