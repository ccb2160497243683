import base64
from datetime import UTC, datetime

import orjson
import pytest

from pipeline.connectors.generator import FirehoseGenerator
from pipeline.records import DEAD_LETTER_MAX_BYTES, ROUTED, dead_letter_record
from pipeline.schema import (
    InvalidMention,
    decode_mention,
    decode_record,
)
from pipeline.usual_mention import UsualMention, decode_usual, encode_usual_mention

LIMITS = {"max_text_chars": 280, "max_record_bytes": 4096}


def mention(**changes: object) -> bytes:
    record: dict[str, object] = {
        "id": "tw:1",
        "text": "Acme Mobile es lo peor",
        "created_at": "2026-11-22T10:15:00+01:00",
        "source": "twitter",
        "author": {"id": "u1", "handle": "ana", "followers": 12},
        "url": "https://x.example/1",
        "lang_hint": "es",
        "engagement": {"likes": 2, "reposts": 1},
        "campaign": "launch",
    }
    for key, value in changes.items():
        if value is None:
            record.pop(key, None)
        else:
            record[key] = value
    return orjson.dumps(record)


def reason_of(raw: bytes) -> tuple[str, str]:
    with pytest.raises(InvalidMention) as caught:
        decode_mention(raw, **LIMITS)
    return caught.value.reason, caught.value.detail


def test_valid_mention_is_typed_and_normalised_to_utc() -> None:
    decoded = decode_mention(mention(), **LIMITS)
    assert decoded.created_at == datetime(2026, 11, 22, 9, 15, tzinfo=UTC)
    assert decoded.author.followers == 12
    assert decoded.engagement is not None and decoded.engagement.total == 3
    # unknown keys travel through untouched
    assert decoded.to_dict()["campaign"] == "launch"


@pytest.mark.parametrize(
    ("raw", "reason", "detail_part"),
    [
        (b"not json at all", "not_json", ""),
        (b"[1, 2]", "not_an_object", "list"),
        (b'{"text": "\xff\xfe"}', "invalid_utf8", "byte"),
        (mention(id=None), "missing_field", "id is missing"),
        (mention(text=42), "wrong_type", "text must be a string"),
        (mention(text="   "), "empty_text", ""),
        (mention(text="x" * 281), "text_too_long", "281 characters"),
        (mention(created_at="yesterday"), "bad_timestamp", "neither ISO"),
        (mention(created_at="2026-11-22T10:15:00"), "bad_timestamp", "no timezone"),
        (mention(author={"handle": "x"}), "missing_field", "author.id"),
        (mention(engagement={"likes": -1}), "bad_value", "negative"),
        (b"{" + b'"a": "' + b"x" * 5000 + b'"}', "record_too_large", "limit 4096"),
    ],
)
def test_invalid_input_gets_a_precise_reason(raw: bytes, reason: str, detail_part: str) -> None:
    got_reason, detail = reason_of(raw)
    assert got_reason == reason
    assert detail_part in detail


@pytest.mark.parametrize(
    "raw",
    [
        mention(),
        mention(campaign=None, engagement=None, url=None, lang_hint=None),
        mention(author={"id": 42}, created_at=1_700_000_000_000),
        mention(author={"id": "u2", "handle": None, "followers": None}, engagement={}),
        mention(created_at="Wed Oct 10 20:19:24 +0000 2018", text="\u00a0Acme\t"),
    ],
)
def test_the_streaming_record_is_the_typed_mention_in_wire_form(raw: bytes) -> None:
    record = decode_record(raw, **LIMITS)
    typed = decode_mention(raw, **LIMITS).to_dict()
    # same keys in the same order (the JSON the next stage gets), same values
    assert list(record) == list(typed) and record == typed


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"id": " "}, "bad_value"), ({"source": 3}, "wrong_type"), ({"url": 3}, "wrong_type"),
        ({"author": {"id": "a", "followers": True}}, "wrong_type"),
        ({"author": {"id": True}}, "wrong_type"), ({"engagement": "x"}, "wrong_type"),
        ({"text": "\n\t "}, "empty_text"), ({"engagement": {"likes": False}}, "wrong_type"),
        ({"engagement": {"quotes": 0.0}}, "wrong_type"),
    ],
)
def test_values_off_the_fast_path_get_the_precise_reason(
    changes: dict[str, object], reason: str,
) -> None:
    assert reason_of(mention(**changes))[0] == reason


def test_timestamps_in_twitter_and_epoch_forms() -> None:
    twitter = decode_mention(mention(created_at="Wed Oct 10 20:19:24 +0000 2018"), **LIMITS)
    assert twitter.created_at == datetime(2018, 10, 10, 20, 19, 24, tzinfo=UTC)
    seconds = decode_mention(mention(created_at=1_700_000_000), **LIMITS)
    millis = decode_mention(mention(created_at=1_700_000_000_000), **LIMITS)
    assert seconds.created_at == millis.created_at


def test_dead_letter_keeps_the_original_bytes() -> None:
    utf8 = orjson.loads(dead_letter_record(b"broken {", "not_json", "x", stage="ingest"))
    assert utf8["original"] == "broken {" and utf8["reason"] == "not_json"
    binary = orjson.loads(dead_letter_record(b"\xff\x00", "invalid_utf8", "x", stage="ingest"))
    assert binary["original_b64"] == "/wA="


@pytest.mark.parametrize("created_at", [
    "2026-11-02T12:00:05+00:00",  # canonical: kept as it is
    "2026-02-30T12:00:05+00:00",  # canonical shape, no such day
    "2026-11-02T24:00:05+00:00",  # canonical shape, no such hour
    "2026-W44-1T12:00:05+00:00",  # an ISO week date of the same length
    "2026-11-02T120005.5+00:00",  # basic-format time of the same length
    "2026-11-02 12:00:05+00:00",  # space separator
    "2026-11-02T12:00:05+01:00",
    "2026-11-02T12:00:05-00:00",
    "2026-11-02T12:00:05Z",
    "2026-11-02T12:00:05.250+00:00",
    "2026-11-02T12:00:05.250000+00:00",  # canonical with microseconds
    "2026-11-02T12:00:05.000000+00:00",  # isoformat would drop the zero fraction
    "2026-11-02T12:00:05,250000+00:00",
    "2026-11-02T12:00:05.25000a+00:00",
    "2026-11-02T12:00:05",
    "Mon Nov 02 12:00:05 +0000 2026",
])
def test_the_canonical_time_shortcut_agrees_with_parsing(created_at: str) -> None:
    from pipeline.schema import parse_timestamp

    try:
        expected: str | tuple[str, str] = parse_timestamp(created_at).isoformat()
    except InvalidMention as error:
        expected = (error.reason, error.detail)
    try:
        got: str | tuple[str, str] = decode_record(mention(created_at=created_at), **LIMITS)[
            "created_at"]
    except InvalidMention as error:
        got = (error.reason, error.detail)
    assert got == expected


def usual(**changes: object) -> bytes:
    """A mention in the usual shape (no unknown key, time already canonical), changed."""
    return mention(**{"campaign": None, "created_at": "2026-11-22T09:15:00+00:00", **changes})


def spelled(**changes: object) -> bytes:
    """A usual mention that spells every key out (every count of its engagement too)."""
    counts = {"likes": 2, "reposts": 1, "replies": 0, "quotes": 0}
    return usual(**{"engagement": counts, **changes})


def decode_usual_mention(raw: bytes, *, max_text_chars: int) -> UsualMention | None:
    """The typed mention of ``raw`` on the usual path, absent optional values filled in."""
    decoded = decode_usual(raw, max_text_chars=max_text_chars)
    return None if decoded is None else decoded[0]


# every entry is valid or not, in the usual shape or not; each is decoded both ways
SHAPES = [
    spelled(), spelled()[:-1] + b',"id":"tw:2"}', spelled()[:-1] + b',"id":" "}',
    spelled(text="\u00e9\\\"x\u2028"), spelled()[:-1] + b" }", spelled() + b" ",
    b"  " + spelled(), spelled(author={"id": "u", "handle": None, "followers": 0}),
    spelled()[:-1] + b',"engagement":{"likes":1,"reposts":1,"replies":1}}',
    usual(), usual(engagement=None, url=None, lang_hint=None), mention(),
    usual(created_at="2026-11-22T09:15:00.250000+00:00"), usual(created_at="2026-11-22T09:15:00Z"),
    usual(created_at=1_700_000_000), usual(author={"id": 42}), usual(author={"id": ""}),
    usual(author={"id": " "}), usual(author={"id": "u", "handle": None, "followers": None}),
    usual(author={"id": "u", "followers": True}), usual(author={"id": "u", "followers": 2**63}),
    usual(author={"id": "u", "followers": 2**63 - 1}), usual(author={"id": "u", "followers": 1.0}),
    usual(author={"id": "u", "verified": True}), usual(engagement={}),
    usual(engagement={"likes": None}), usual(engagement={"likes": -1}),
    usual(engagement={"likes": 1, "bookmarks": 3}), usual(id=" "), usual(id=""), usual(id=7),
    usual(text="x" * 280), usual(text="x" * 281), usual(text=" \n"), usual(text="\u00a0Acme\t"),
    usual(source=""), usual(url=3), usual(lang_hint=["es"]), usual(lang="fr"),
    usual(brands=["acme"]), usual(ingested_at=1.5), usual(lang_score=0.5),
    usual(text="é😀\u2028\\\"/<\x00"), usual()[:-1] + b',"id":"tw:2"}',
    usual()[:-1] + b',"engagement":null}', usual()[:-1] + b',"url":null}',
    b"[1]", b"not json", b'{"text": "\xff"}', b'{"text":"\\ud800"}',
]


@pytest.mark.parametrize("raw", SHAPES)
def test_the_usual_shape_decodes_to_what_validation_makes_of_it(raw: bytes) -> None:
    usual_mention = decode_usual_mention(raw, max_text_chars=LIMITS["max_text_chars"])
    try:
        record = decode_record(raw, **LIMITS)
    except InvalidMention:
        assert usual_mention is None
        return
    if usual_mention is not None:
        assert orjson.loads(encode_usual_mention(usual_mention)) == record
    decoded = decode_usual(raw, max_text_chars=LIMITS["max_text_chars"])
    if decoded is not None and decoded[1]:
        # spelled out: the raw bytes, tagged, read as the normalised record tagged
        tagged = ROUTED.encode_tagged(raw, ROUTED.tag_members(brands=["acme"]), b"}")
        assert orjson.loads(tagged) == {**record, "brands": ["acme"]}


def test_the_usual_shapes_and_the_synthetic_firehose_take_the_usual_path() -> None:
    generator = FirehoseGenerator(seed=3, start=datetime(2026, 11, 22, tzinfo=UTC))
    raws = [usual(), usual(engagement=None), usual(url=None, lang_hint=None),
            usual(created_at="2026-11-22T09:15:00.250000+00:00"),
            *(orjson.dumps(mention) for mention in generator.mentions(300))]
    assert all(decode_usual_mention(raw, max_text_chars=280) is not None for raw in raws)


@pytest.mark.parametrize("raw", [
    b"\x01" * 900_000,                               # escaped as \u0001: six bytes each
    b'{"text":"' + b"\xff" * 900_000 + b'"}',         # base64: four bytes for three
    "ñ".encode() * 400_000,                          # cut in the middle of a character
], ids=["control characters", "invalid utf-8", "multibyte"])
def test_a_dead_letter_stays_under_the_size_cap_and_says_what_it_cut(raw: bytes) -> None:
    import hashlib

    letter_bytes = dead_letter_record(raw, "not_json", "x", stage="ingest")
    assert len(letter_bytes) <= DEAD_LETTER_MAX_BYTES
    letter = orjson.loads(letter_bytes)
    assert letter["original_truncated"] is True
    assert letter["original_bytes"] == len(raw)
    assert letter["original_sha256"] == hashlib.sha256(raw).hexdigest()
    kept = (letter["original"].encode() if "original" in letter
            else base64.b64decode(letter["original_b64"]))
    assert kept and raw.startswith(kept)


def test_a_dead_letter_under_the_cap_is_whole() -> None:
    raw = b"y" * (DEAD_LETTER_MAX_BYTES - 1000)
    letter = orjson.loads(dead_letter_record(raw, "not_json", "x", stage="ingest"))
    assert letter["original"].encode() == raw and "original_truncated" not in letter
