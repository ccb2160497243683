"""Two desks (two uvicorn servers) on one store and one workflow database: the second to act
on an item gets a conflict, not a silent overwrite."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from pipeline.config import Settings
from pipeline.desk.server import DeskThread
from pipeline.store.client import ListeningStore
from pipeline.store.rows import RowEncoder

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def complaint(mention_id: str, minutes_ago: int) -> dict[str, object]:
    return {"id": mention_id, "created_at": (NOW - timedelta(minutes=minutes_ago)).isoformat(),
            "text": "@acme sin cobertura desde ayer", "lang": "es", "brands": ["acme-mobile"],
            "author": {"id": "u1", "handle": "ana_r", "followers": 300},
            "sentiment": {"label": "negative",
                          "scores": {"negative": 0.8, "neutral": 0.15, "positive": 0.05}},
            "needs_reply": "complaint"}


@pytest.fixture(scope="module")
def desks(chdb_store_url: str, tmp_path_factory: pytest.TempPathFactory,
          ) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    folder: Path = tmp_path_factory.mktemp("two-desks")
    settings = Settings(store_url=chdb_store_url, store_retention_days=3650, desk_port=0,
                        inbox_db_url=f"sqlite:///{folder / 'inbox.sqlite'}")
    store = ListeningStore.open(settings, database="unit_inbox")
    store.insert(RowEncoder({}).encode_dicts([complaint("c:1", 30), complaint("c:2", 90)]).payload)
    threads = [DeskThread(settings, store, clock=lambda: NOW) for _ in range(2)]
    first, second = (httpx.Client(base_url=thread.start(), timeout=30) for thread in threads)
    yield first, second
    for client, thread in zip((first, second), threads, strict=True):
        client.close()
        thread.stop()
    store.close()


def token(client: httpx.Client) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', client.get("/inbox").text)
    assert found
    return found.group(1)


def test_the_second_desk_to_act_on_an_item_gets_a_conflict(
        desks: tuple[httpx.Client, httpx.Client]) -> None:
    first, second = desks
    listed = first.get("/api/inbox").json()["items"]
    assert [(item["id"], item["overdue"]) for item in listed] == [("c:2", True), ("c:1", False)]
    took = first.post("/api/inbox/c:1/actions", headers={"x-csrf-token": token(first)},
                      json={"action": "assign", "version": 0, "assignee": "ana"})
    assert took.status_code == 200 and took.json()["version"] == 1
    lost = second.post("/api/inbox/c:1/actions", headers={"x-csrf-token": token(second)},
                       json={"action": "answer", "version": 0, "reply": "Lo siento"})
    assert lost.status_code == 409
    assert lost.json()["error"]["current"] == {"status": "assigned", "assignee": "ana",
                                               "version": 1}
    assert second.get("/api/inbox/c:1").json()["assignee"] == "ana"


def test_acting_on_a_mention_the_store_does_not_have_is_404(
        desks: tuple[httpx.Client, httpx.Client]) -> None:
    first, _ = desks
    answer = first.post("/api/inbox/nope/actions", headers={"x-csrf-token": token(first)},
                        json={"action": "assign", "version": 0, "assignee": "ana"})
    assert answer.status_code == 404
