"""The store's freshness and sources on the embedded engine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pipeline.store.client import ListeningStore
from pipeline.store.freshness import Freshness, freshness, sources
from pipeline.store.queries import Period
from pipeline.store.rows import RowEncoder
from tests.unit.store.test_client import KINDS, scored, store_settings


def test_an_empty_store_is_stale_and_a_filled_one_says_when_it_was_written(
        chdb_store_url: str) -> None:
    # fixed dates: the client tests' ten-year retention keeps them whatever today is
    store = ListeningStore.open(store_settings(chdb_store_url), database="unit_freshness")
    store.command(f"TRUNCATE TABLE {store.table}")
    store.command(f"TRUNCATE TABLE {store.by_time}")
    now = datetime.now(UTC)
    empty = freshness(store, now)
    assert empty == Freshness(None, None) and empty.stale(now, timedelta(minutes=15))
    # mentions made long ago (beyond the recent window) are found too
    mentions = [scored(index) for index in range(10)]
    store.insert(RowEncoder(KINDS).encode_dicts(mentions).payload)
    found = freshness(store, now)
    assert found.newest_created_at == max(datetime.fromisoformat(m["created_at"])
                                          for m in mentions)
    assert found.newest_stored_at is not None
    assert abs(found.newest_stored_at - datetime.now(UTC)) < timedelta(minutes=1)
    assert not found.stale(datetime.now(UTC), timedelta(minutes=15))
    assert found.stale(datetime.now(UTC) + timedelta(hours=1), timedelta(minutes=15))
    first = datetime.fromisoformat(mentions[0]["created_at"])
    # in the first hour 5 on twitter and 4 on mastodon: the most frequent first
    assert sources(store, Period(first, first + timedelta(hours=1))) == ["twitter", "mastodon"]
    assert sources(store, Period(first - timedelta(days=1), first)) == []
