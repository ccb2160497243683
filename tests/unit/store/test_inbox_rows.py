"""The row encoder keeps why a mention needs a reply (the inbox's items)."""

from __future__ import annotations

import orjson

from pipeline.store.rows import RowEncoder


def test_needs_reply_is_copied_and_missing_or_empty_is_null() -> None:
    base = {"created_at": "2026-12-01T09:00:00+00:00", "text": "hola", "brands": ["acme"]}
    batch = RowEncoder({"acme": "brand"}).encode_dicts([
        {**base, "id": "a", "needs_reply": "complaint"}, {**base, "id": "b"},
        {**base, "id": "c", "needs_reply": ""}])
    rows = [orjson.loads(row) for row in batch.rows]
    assert [(row["id"], row["needs_reply"]) for row in rows] == [
        ("a", "complaint"), ("b", None), ("c", None)]
