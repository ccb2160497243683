"""The typed mention records and their codec: same JSON on the wire, unknown keys kept."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from msgspec import UNSET

from pipeline.records import (
    DEAD_LETTERS,
    SCORED,
    RoutedMention,
    RoutedTags,
    ScoredMention,
    Sentiment,
    dead_letter_record,
    encode_mention,
    wire_dict,
)
from pipeline.records import ROUTED as ROUTED_CODEC
from pipeline.transport.topics import encode_batch

ROUTED = {
    "id": "tw:1", "text": "Acme Mobile caída", "created_at": "2026-11-02T12:00:00+00:00",
    "source": "twitter", "author": {"id": "u1", "handle": "ana", "followers": 10},
    "url": None, "lang_hint": None, "engagement": {"likes": 1, "reposts": 0, "replies": 0,
                                                   "quotes": 0},
    "lang": "es", "lang_score": 0.93, "brands": ["acme-mobile"],
    "sentiment_tokens": "AAEC", "ingested_at": 1_795_000_000.25,
}
UNIQUE = {**ROUTED, "duplicate_of": None, "duplicate_kind": "unique", "copy_count": 1}


def test_a_unique_record_decodes_typed_and_encodes_to_the_same_json() -> None:
    record = encode_batch([UNIQUE, {**UNIQUE, "id": "tw:2", "duplicate_of": "tw:1",
                                    "duplicate_kind": "exact", "copy_count": 2,
                                    "duplicate_similarity": 1.0}])
    mentions, refused = SCORED.decode(record)
    assert refused == []
    assert [m.id for m in mentions] == ["tw:1", "tw:2"]
    assert mentions[1].duplicate_of == "tw:1" and mentions[0].sentiment is UNSET
    assert SCORED.encode(mentions) == record


def test_the_sentiment_stage_s_keys_follow_in_order_and_the_token_ids_go() -> None:
    [mention], _ = SCORED.decode(encode_batch([UNIQUE]))
    mention.sentiment = Sentiment("negative", {"negative": 0.9, "neutral": 0.05,
                                               "positive": 0.05})
    mention.sentiment_tokens = UNSET
    mention.needs_reply = "complaint"
    expected = {key: value for key, value in UNIQUE.items() if key != "sentiment_tokens"}
    expected |= {"sentiment": {"label": "negative", "scores": {
        "negative": 0.9, "neutral": 0.05, "positive": 0.05}}, "needs_reply": "complaint"}
    assert list(wire_dict(mention).items()) == list(expected.items())


def test_unknown_keys_and_their_place_are_carried_through() -> None:
    # an upstream source's own key, and verdict keys it sent, come first (as ingest writes them)
    upstream = {"custom": {"x": [1, 2]}, "duplicate_of": "old", **ROUTED}
    [mention], refused = SCORED.decode(encode_batch([upstream]))
    assert refused == []
    mention.duplicate_of = None
    mention.duplicate_kind = "unique"
    mention.sentiment_tokens = UNSET
    mention.sentiment = None
    written = wire_dict(mention)
    assert list(written)[:3] == ["custom", "duplicate_of", "id"]
    assert written["custom"] == {"x": [1, 2]} and written["duplicate_of"] is None
    assert list(written)[-2:] == ["duplicate_kind", "sentiment"]
    assert "sentiment_tokens" not in written
    assert orjson.loads(encode_mention(mention)) == written


@pytest.mark.parametrize(("item", "reason"), [
    ({"id": "x", "text": 5, "created_at": "2026-11-02T12:00:00+00:00"}, "wrong_type"),
    ({"id": "x", "text": None, "created_at": "2026-11-02T12:00:00+00:00"}, "missing_field"),
    ({"id": "x", "created_at": "2026-11-02T12:00:00+00:00"}, "missing_field"),
    ({**UNIQUE, "sentiment": {"label": "negative"}}, "missing_field"),
    # a key a stage writes, sent by another producer with another type: refused, not overwritten
    ({**UNIQUE, "copy_count": "many"}, "wrong_type"),
    ("not a mention", "not_an_object"),
])
def test_an_item_that_is_not_a_mention_is_refused_with_the_reason(
        item: object, reason: str) -> None:
    mentions, refused = SCORED.decode(orjson.dumps([UNIQUE, item]))
    assert [m.id for m in mentions] == ["tw:1"]
    assert [error.reason for _, error in refused] == [reason]


@pytest.mark.parametrize("value", [b'{"id": "1"}', b"not json"])
def test_a_record_that_is_not_a_micro_batch_is_an_error(value: bytes) -> None:
    with pytest.raises(ValueError):
        SCORED.decode(value)


def test_big_batches_are_split_in_order_within_the_size_cap() -> None:
    mentions = [ScoredMention(id=str(n), text="x" * 100, created_at="") for n in range(8)]
    records = SCORED.encode_batches(mentions, max_bytes=400)
    assert len(records) > 1 and all(len(record) <= 400 for record in records)
    assert [m.id for record in records for m in SCORED.decode(record)[0]] == [
        str(n) for n in range(8)]


def test_routed_tags_are_the_routed_mention_s_last_fields_in_its_order() -> None:
    assert RoutedMention.__struct_fields__[-len(RoutedTags.__struct_fields__):] == (
        RoutedTags.__struct_fields__)


def test_tags_appended_to_a_spelled_out_record_are_what_the_codec_writes_of_it() -> None:
    untagged = {key: value for key, value in ROUTED.items()
                if key not in RoutedTags.__struct_fields__}
    members = ROUTED_CODEC.tag_members(lang="es", lang_score=0.93, brands=["acme-mobile"],
                                       sentiment_tokens="AAEC")
    closing = ROUTED_CODEC.tag_members(ingested_at=1_795_000_000.25) + b"}"
    tagged = ROUTED_CODEC.encode_tagged(orjson.dumps(untagged), members, closing)
    mention = ROUTED_CODEC.from_dict(ROUTED)
    assert tagged == ROUTED_CODEC.encode_one(mention) == orjson.dumps(ROUTED)
    assert ROUTED_CODEC.decode(b"[" + tagged + b"]") == ([mention], [])


def test_a_dead_letter_is_the_json_object_it_was_in_its_key_order() -> None:
    failed_at = datetime(2026, 12, 7, 4, 0, tzinfo=UTC)
    letter = dead_letter_record(b"\xff{", "invalid_utf8", "byte 0", stage="ingest",
                                source_topic="mentions.raw", failed_at=failed_at)
    assert letter == orjson.dumps({
        "reason": "invalid_utf8", "detail": "byte 0", "stage": "ingest",
        "source_topic": "mentions.raw", "failed_at": "2026-12-07T04:00:00+00:00",
        "original_b64": "/3s=",
    })
    cut = DEAD_LETTERS.decode(dead_letter_record(b"z" * 3000, "not_json", "", stage="dedup",
                                                 failed_at=failed_at, max_bytes=1000))
    assert list(orjson.loads(DEAD_LETTERS.encode(cut)))[-4:] == [
        "original", "original_truncated", "original_bytes", "original_sha256"]
    assert cut.source_topic is None and cut.original_b64 is UNSET
