from __future__ import annotations

import pytest

from pipeline.caching import BoundedCache
from pipeline.connectors.sources.bluesky import (
    decode_event,
    map_jetstream_event,
    subscribe_url,
)
from pipeline.connectors.sources.filtering import SkipEvent, UnmappableEvent
from pipeline.schema import validated_record
from tests.source_payloads import (
    BASE_TIME_US,
    DID_ANA,
    DID_LUIS,
    encode,
    jetstream_account,
    jetstream_delete,
    jetstream_identity,
    jetstream_like,
    jetstream_post,
)


def test_a_post_creation_maps_to_a_valid_mention() -> None:
    handles = BoundedCache[str, str](10)
    map_skipped = jetstream_identity(DID_ANA, "ana.bsky.social", BASE_TIME_US - 1)
    with pytest.raises(SkipEvent):
        map_jetstream_event(map_skipped, handles)
    event = jetstream_post("3lcz5qyyuhk2a", "Telvia lleva toda la mañana caída",
                           langs=["es", "en"])
    mention = map_jetstream_event(decode_event(encode(event)), handles)
    assert mention["id"] == f"bsky:{DID_ANA}/3lcz5qyyuhk2a"
    assert mention["url"] == f"https://bsky.app/profile/{DID_ANA}/post/3lcz5qyyuhk2a"
    assert mention["author"] == {"id": DID_ANA, "handle": "ana.bsky.social"}
    assert mention["lang_hint"] == "es"
    assert mention["source"] == "bluesky"
    record = validated_record(mention, max_text_chars=1000)
    assert record["created_at"] == "2025-12-06T03:00:00.123000+00:00"
    assert "reply_to" not in record and "quote_of" not in record


def test_replies_and_quotes_become_copy_hints() -> None:
    parent = f"at://{DID_LUIS}/app.bsky.feed.post/3kparent"
    quoted = f"at://{DID_LUIS}/app.bsky.feed.post/3kquoted"
    mention = map_jetstream_event(jetstream_post("3k1", "igual con Telvia", reply_parent=parent,
                                                 quote=quoted))
    assert mention["reply_to"] == f"bsky:{DID_LUIS}/3kparent"
    assert mention["quote_of"] == f"bsky:{DID_LUIS}/3kquoted"
    with_media = jetstream_post("3k2", "mirad esto")
    with_media["commit"]["record"]["embed"] = {
        "$type": "app.bsky.embed.recordWithMedia",
        "record": {"$type": "app.bsky.embed.record", "record": {"uri": quoted, "cid": "x"}},
        "media": {"$type": "app.bsky.embed.images", "images": []}}
    assert map_jetstream_event(with_media)["quote_of"] == f"bsky:{DID_LUIS}/3kquoted"


@pytest.mark.parametrize(("event", "reason"), [
    (jetstream_like(BASE_TIME_US), "not_a_post"),
    (jetstream_delete("3k1", BASE_TIME_US), "not_a_create"),
    (jetstream_account(BASE_TIME_US), "not_a_post"),
    (jetstream_post("3k3", "   "), "no_text"),
])
def test_other_events_are_skipped_with_a_reason(event: dict, reason: str) -> None:
    with pytest.raises(SkipEvent) as skipped:
        map_jetstream_event(event)
    assert skipped.value.reason == reason


def test_broken_events_are_unmappable_not_crashes() -> None:
    with pytest.raises(UnmappableEvent) as not_json:
        decode_event(b'{"did": "did:plc:x", "time_us": 1')
    assert not_json.value.reason == "not_json"
    with pytest.raises(UnmappableEvent) as listing:
        decode_event(b"[1, 2]")
    assert listing.value.reason == "not_an_object"
    no_record = jetstream_post("3k4", "hola")
    del no_record["commit"]["record"]
    with pytest.raises(UnmappableEvent) as missing:
        map_jetstream_event(no_record)
    assert missing.value.reason == "missing_field"


def test_a_post_without_created_at_falls_back_to_the_server_clock() -> None:
    event = jetstream_post("3k5", "Telvia")
    del event["commit"]["record"]["createdAt"]
    record = validated_record(map_jetstream_event(event), max_text_chars=100)
    assert record["created_at"].startswith("2025-12-06T03:00:00")


def test_subscribe_url_pushes_the_collection_filter_and_the_cursor() -> None:
    assert subscribe_url("ws://127.0.0.1:9/subscribe?compress=false", cursor_us=None) == (
        "ws://127.0.0.1:9/subscribe?compress=false&wantedCollections=app.bsky.feed.post")
    assert subscribe_url("ws://h/subscribe", cursor_us=-5).endswith("&cursor=0")
