"""A corpus of hostile raw records for ``mentions.raw``, each with what ingest must make of it.

Every entry names the reason ingest must dead-letter it with, or ``None`` when it is a valid
mention that must come out (tagged) on ``mentions.routed``. The expectations are written by
hand from the record schema (README, "The mention record"), not taken from the code under test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from pipeline.config import Settings

# the default PIPELINE_MAX_RECORD_BYTES and PIPELINE_MAX_TEXT_CHARS
MAX_RECORD_BYTES: int = Settings.model_fields["max_record_bytes"].default
MAX_TEXT_CHARS: int = Settings.model_fields["max_text_chars"].default


@dataclass(frozen=True)
class NastyRecord:
    """One raw record and its expected fate (a reject reason, or None: forwarded)."""

    name: str
    raw: bytes
    reason: str | None


def base(mention_id: str, **changes: Any) -> dict[str, Any]:
    """A valid mention about a listened brand, with ``changes`` applied (``...`` deletes)."""
    record: dict[str, Any] = {
        "id": mention_id, "text": f"Acme Mobile otra vez sin cobertura ({mention_id})",
        "created_at": "2026-11-22T10:15:00Z", "source": "twitter",
        "author": {"id": f"u-{mention_id}", "handle": "ana", "followers": 12},
    }
    for key, value in changes.items():
        if value is ...:
            record.pop(key, None)
        else:
            record[key] = value
    return record


def _json(value: Any) -> bytes:
    return orjson.dumps(value)


def _deep(depth: int) -> bytes:
    return b'{"id":"deep","x":' + b"[" * depth + b"]" * depth + b"}"


def _padded_to(size: int, mention_id: str, *, text: str | None = None) -> bytes:
    """A valid mention whose unknown ``pad`` field makes the record exactly ``size`` bytes."""
    record = base(mention_id, pad="")
    if text is not None:
        record["text"] = text
    short = len(_json(record))
    record["pad"] = "p" * (size - short)
    raw = _json(record)
    assert len(raw) == size
    return raw


def corpus() -> list[NastyRecord]:
    """The hostile records, in a fixed order (names are unique)."""
    entries = [
        NastyRecord("plain text", b"hola, esto no es JSON", "not_json"),
        NastyRecord("empty record", b"", "not_json"),
        NastyRecord("whitespace", b"   \n\t ", "not_json"),
        NastyRecord("truncated JSON", _json(base("t1"))[:-7], "not_json"),
        NastyRecord("trailing garbage", _json(base("t2")) + b"}}", "not_json"),
        NastyRecord("NaN literal", b'{"id": NaN}', "not_json"),
        NastyRecord("invalid utf-8", b'{"id":"u1","text":"\xff\xfe Acme"}', "invalid_utf8"),
        NastyRecord("lone surrogate escape", _json(base("s1"))[:-1] + b',"x":"\\ud800"}',
                    "not_json"),
        NastyRecord("utf-16 bytes", "{\"id\":\"x\"}".encode("utf-16"), "invalid_utf8"),
        NastyRecord("JSON array", b"[1, 2, 3]", "not_an_object"),
        NastyRecord("JSON string", b'"Acme Mobile"', "not_an_object"),
        NastyRecord("JSON number", b"42", "not_an_object"),
        NastyRecord("JSON null", b"null", "not_an_object"),
        NastyRecord("JSON true", b"true", "not_an_object"),
        NastyRecord("empty object", b"{}", "missing_field"),
        NastyRecord("10k-deep nesting", _deep(10_000), "not_json"),
        NastyRecord("missing id", _json(base("m1", id=...)), "missing_field"),
        NastyRecord("missing text", _json(base("m2", text=...)), "missing_field"),
        NastyRecord("missing created_at", _json(base("m3", created_at=...)), "missing_field"),
        NastyRecord("missing source", _json(base("m4", source=...)), "missing_field"),
        NastyRecord("missing author", _json(base("m5", author=...)), "missing_field"),
        NastyRecord("null id", _json(base("n1", id=None)), "missing_field"),
        NastyRecord("null text", _json(base("n2", text=None)), "missing_field"),
        NastyRecord("empty id", _json(base("e1", id="")), "bad_value"),
        NastyRecord("empty text", _json(base("e2", text="")), "empty_text"),
        NastyRecord("blank text", _json(base("e3", text=" \n\t ")), "empty_text"),
        NastyRecord("list as text", _json(base("w1", text=["Acme Mobile"])), "wrong_type"),
        NastyRecord("object as id", _json(base("w2", id={"n": 1})), "wrong_type"),
        NastyRecord("bool as created_at", _json(base("w3", created_at=True)), "wrong_type"),
        NastyRecord("string as author", _json(base("w4", author="ana")), "wrong_type"),
        NastyRecord("naive time", _json(base("b1", created_at="2026-11-22T10:15:00")),
                    "bad_timestamp"),
        NastyRecord("nonsense time", _json(base("b2", created_at="last tuesday")),
                    "bad_timestamp"),
        NastyRecord("epoch overflow", _json(base("b3", created_at=1e300)), "bad_timestamp"),
        NastyRecord("text one over the limit", _json(base("l1", text="a" * (MAX_TEXT_CHARS + 1))),
                    "text_too_long"),
        NastyRecord("record over the size limit", _padded_to(MAX_RECORD_BYTES + 1, "big1"),
                    "record_too_large"),
        NastyRecord("record at the old 1 MB limit", _padded_to(1_000_000, "big0"),
                    "record_too_large"),
        NastyRecord("invalid utf-8 near the size limit",
                    b'{"id":"big2","text":"' + b"\xff" * (MAX_RECORD_BYTES - 40) + b'"}',
                    "invalid_utf8"),
        NastyRecord("control chars near the size limit",
                    _padded_to(MAX_RECORD_BYTES - 10, "big3",
                               text="\x01" * (MAX_TEXT_CHARS + 1)).replace(b'"p', b'"\x01', 1),
                    "not_json"),
        NastyRecord("escaped control chars, too long a text, near the size limit",
                    _json(base("big4", text="\x07" * ((MAX_RECORD_BYTES - 300) // 6))),
                    "text_too_long"),
        # valid, yet hostile
        NastyRecord("valid, exactly at the size limit", _padded_to(MAX_RECORD_BYTES, "big5"),
                    None),
        NastyRecord("valid, text exactly at the limit",
                    _json(base("l2", text="Acme Mobile " + "ñ" * (MAX_TEXT_CHARS - 12))), None),
        NastyRecord("valid, control chars and emoji",
                    _json(base("c1", text="Acme Mobile \x00\x1b[31m\u202e😡\u200b\r\n")), None),
        NastyRecord("valid, nested extras", _json(base("x1", extra=[[[{"a": [None]}]]] * 50)),
                    None),
        NastyRecord("valid, numeric author id", _json(base("x2", author={"id": 42})), None),
        NastyRecord("valid, epoch milliseconds", _json(base("x3", created_at=1_795_000_000_000)),
                    None),
        NastyRecord("valid, duplicate id (first)", _json(base("dup")), None),
        NastyRecord("valid, duplicate id (second)", _json(base("dup")), None),
        NastyRecord("valid, no brand", _json(base("x4", text="buenos días a todos")), None),
        NastyRecord("valid, duplicate key in object", _json(base("x5"))[:-1] + b',"id":"x5b"}',
                    None),
    ]
    names = [entry.name for entry in entries]
    assert len(names) == len(set(names))
    return entries
