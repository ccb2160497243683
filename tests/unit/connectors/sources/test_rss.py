from __future__ import annotations

from datetime import UTC, datetime

import feedparser
import pytest

from pipeline.connectors.sources.filtering import SkipEvent, UnmappableEvent
from pipeline.connectors.sources.rss import FeedState, map_entry
from pipeline.schema import validated_record
from tests.source_payloads import ATOM_BLOG, RSS_SPANISH

FETCHED = datetime(2025, 12, 6, 12, 0, tzinfo=UTC)


def _mentions(document: bytes, url: str) -> list[dict]:
    parsed = feedparser.parse(document)
    return [validated_record(map_entry(entry, feed_url=url, feed_title=parsed.feed.get("title"),
                                       feed_language=parsed.feed.get("language"),
                                       fetched_at=FETCHED), max_text_chars=10_000)
            for entry in parsed.entries]


def test_rss_items_map_to_mentions_with_the_outlet_as_author() -> None:
    first, second = _mentions(RSS_SPANISH, "https://diario.example/rss")
    assert first["id"] == "rss:https://diario.example/economia/2025-12-06/telvia-caida.html"
    assert first["text"] == ("Telvia sufre una caída masiva de fibra en Madrid\n\n"
                             "Miles de clientes de Telvia se quedan sin conexión.")
    assert first["created_at"] == "2025-12-06T09:12:00+00:00"
    assert first["lang_hint"] == "es"
    assert first["author"] == {"id": "rss:diario.example:María Ruiz", "handle": "María Ruiz",
                               "followers": None}
    assert first["outlet"] == "Diario Ejemplo - Portada"
    # a guid that is not a link is scoped by the feed's host
    assert second["id"] == "rss:diario.example:diario-48213"


def test_atom_entries_use_their_id_content_and_language() -> None:
    (entry,) = _mentions(ATOM_BLOG, "https://blog.example/atom.xml")
    assert entry["id"] == "rss:tag:blog.example,2025:entry-77"
    assert entry["text"].endswith("La batería dura dos días.")
    assert entry["url"] == "https://blog.example/2025/acme-review"
    assert entry["created_at"] == "2025-12-06T10:45:00+00:00"
    assert entry["lang_hint"] == "es"


def test_an_undated_entry_takes_the_fetch_time_and_an_empty_one_is_skipped() -> None:
    entry = {"id": "x1", "title": "Telvia"}
    mention = map_entry(entry, feed_url="https://f.example/", feed_title=None,
                        feed_language=None, fetched_at=FETCHED)
    assert mention["created_at"] == FETCHED.isoformat()
    with pytest.raises(SkipEvent):
        map_entry({"id": "x2", "title": ""}, feed_url="https://f.example/", feed_title=None,
                  feed_language=None, fetched_at=FETCHED)
    with pytest.raises(UnmappableEvent):
        map_entry({"title": "sin id"}, feed_url="https://f.example/", feed_title=None,
                  feed_language=None, fetched_at=FETCHED)


def test_feed_state_remembers_a_bounded_number_of_ids_and_survives_a_snapshot() -> None:
    state = FeedState(None, keep=3)
    entries = [{"id": f"e{n}"} for n in range(5)]
    assert [key for key, _ in state.new_entries(entries)] == ["e0", "e1", "e2", "e3", "e4"]
    assert state.new_entries(entries[3:]) == []
    state.etag, state.modified = '"v7"', "Sat, 06 Dec 2025 10:30:00 GMT"
    restored = FeedState(state.snapshot(), keep=3)
    assert restored.request_headers()["If-None-Match"] == '"v7"'
    assert restored.request_headers()["If-Modified-Since"] == "Sat, 06 Dec 2025 10:30:00 GMT"
    assert [key for key, _ in restored.new_entries(entries)] == ["e0", "e1"]
