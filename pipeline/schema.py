"""The mention record: its JSON wire format, typed form and validation.

A raw mention is one JSON object per Kafka record (or per JSONL line)::

    {
      "id": "tw:1729",                        # required, non-empty string, unique per source
      "text": "Acme's new phone is great",    # required string, at most max_text_chars
      "created_at": "2026-11-22T10:15:00Z",   # required: ISO 8601 with offset, Twitter's
                                              #   "Wed Oct 10 20:19:24 +0000 2018", or epoch
                                              #   seconds / milliseconds
      "source": "twitter",                    # required: platform name
      "author": {"id": "u42", "handle": "jdoe", "followers": 1200},   # required id
      "url": "https://x.com/jdoe/status/1729",                       # optional
      "lang_hint": "en",                      # optional: the source's own language tag
      "engagement": {"likes": 3, "reposts": 1, "replies": 0, "quotes": 0}   # optional
    }

Unknown keys are carried through untouched. :func:`decode_mention` turns bytes into a
:class:`Mention` or raises :class:`InvalidMention` whose ``reason`` is one of the bounded
:data:`REJECT_REASONS` (safe as a metric label) and whose ``detail`` says precisely what is
wrong, for the dead-letter record. The ingest stage tries the faster path of
:mod:`pipeline.usual_mention` first; it agrees with this one on every record it accepts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import orjson

REJECT_REASONS: Final = (
    "record_too_large",
    "invalid_utf8",
    "not_json",
    "not_an_object",
    "missing_field",
    "wrong_type",
    "empty_text",
    "text_too_long",
    "bad_timestamp",
    "bad_value",
)

_TWITTER_TIME = "%a %b %d %H:%M:%S %z %Y"
# Epoch values above this are milliseconds (it is year 2286 in seconds).
_EPOCH_MS_THRESHOLD = 10_000_000_000


class InvalidMention(ValueError):
    """A raw record that is not a valid mention; ``reason`` is a bounded code."""

    def __init__(self, reason: str, detail: str) -> None:
        if reason not in REJECT_REASONS:
            raise ValueError(f"unknown reject reason {reason!r}")
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Author:
    """Who wrote a mention; ``followers`` is its reach when the source reports it."""

    id: str
    handle: str | None = None
    followers: int | None = None


@dataclass(frozen=True, slots=True)
class Engagement:
    """Interaction counts reported by the source at collection time."""

    likes: int = 0
    reposts: int = 0
    replies: int = 0
    quotes: int = 0

    @property
    def total(self) -> int:
        """All interactions together."""
        return self.likes + self.reposts + self.replies + self.quotes


@dataclass(frozen=True, slots=True)
class Mention:
    """A validated mention. ``extra`` holds unknown keys, carried through untouched."""

    id: str
    text: str
    created_at: datetime
    source: str
    author: Author
    url: str | None = None
    lang_hint: str | None = None
    engagement: Engagement | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The wire form (JSON-ready dict) of this mention."""
        record: dict[str, Any] = dict(self.extra)
        record.update(
            id=self.id,
            text=self.text,
            created_at=self.created_at.isoformat(),
            source=self.source,
            author={
                "id": self.author.id,
                "handle": self.author.handle,
                "followers": self.author.followers,
            },
            url=self.url,
            lang_hint=self.lang_hint,
        )
        if self.engagement is not None:
            record["engagement"] = {
                "likes": self.engagement.likes,
                "reposts": self.engagement.reposts,
                "replies": self.engagement.replies,
                "quotes": self.engagement.quotes,
            }
        return record


ENGAGEMENT_COUNTS: Final = ("likes", "reposts", "replies", "quotes")
_KNOWN_KEYS: Final = frozenset(
    {"id", "text", "created_at", "source", "author", "url", "lang_hint", "engagement"}
)


def decode_mention(raw: bytes, *, max_text_chars: int, max_record_bytes: int) -> Mention:
    """Parse and validate one raw record into its typed form.

    >>> m = decode_mention(b'{"id":"1","text":"hola","created_at":"2026-01-01T00:00:00Z",'
    ...                    b'"source":"x","author":{"id":"a"}}', max_text_chars=100,
    ...                    max_record_bytes=1000)
    >>> m.created_at.year, m.author.id
    (2026, 'a')
    """
    return mention_of_record(decode_record(
        raw, max_text_chars=max_text_chars, max_record_bytes=max_record_bytes,
    ))


def decode_record(raw: bytes, *, max_text_chars: int, max_record_bytes: int) -> dict[str, Any]:
    """Parse and validate one raw record into its wire form (``decode_mention(...).to_dict()``).

    The streaming path: it builds no objects but the dict that goes on to the next stage.
    """
    if len(raw) > max_record_bytes:
        raise InvalidMention(
            "record_too_large", f"record is {len(raw)} bytes, limit {max_record_bytes}"
        )
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as utf8_error:
            raise InvalidMention(
                "invalid_utf8", f"byte {utf8_error.start}: {utf8_error.reason}"
            ) from None
        raise InvalidMention("not_json", str(error)) from None
    if not isinstance(document, dict):
        raise InvalidMention("not_an_object", f"top level is {type(document).__name__}")
    return validated_record(document, max_text_chars=max_text_chars)


def mention_from_dict(document: dict[str, Any], *, max_text_chars: int) -> Mention:
    """Validate an already parsed JSON object as a mention (see :func:`decode_mention`)."""
    return mention_of_record(validated_record(document, max_text_chars=max_text_chars))


def validated_record(document: dict[str, Any], *, max_text_chars: int) -> dict[str, Any]:
    """The wire form of a parsed JSON object, or :class:`InvalidMention` saying what is wrong.

    Times become ISO 8601 in UTC, a numeric author id a string, absent optional fields null
    (an absent ``engagement`` stays absent), missing counts 0; unknown keys come first,
    untouched. Each field has a cheap check for the usual well-formed value and falls back
    to its precise checker only otherwise: this runs on every mention of the firehose.
    """
    get = document.get
    mention_id = get("id")
    if type(mention_id) is not str or not mention_id or mention_id.isspace():
        mention_id = _required_str(document, "id")
    text = get("text")
    if type(text) is not str or len(text) > max_text_chars or not text or text.isspace():
        text = _text(text, max_text_chars)
    created_at = get("created_at")
    if type(created_at) is not str or not is_canonical_utc(created_at):
        created_at = parse_timestamp(created_at).isoformat()
    source = get("source")
    if type(source) is not str or not source or source.isspace():
        source = _required_str(document, "source")
    author = _author(get("author"))
    url = get("url")
    if url is not None and type(url) is not str:
        url = _optional_str(document, "url")
    lang_hint = get("lang_hint")
    if lang_hint is not None and type(lang_hint) is not str:
        lang_hint = _optional_str(document, "lang_hint")
    engagement = get("engagement")
    record = (
        {} if _KNOWN_KEYS.issuperset(document)
        else {key: value for key, value in document.items() if key not in _KNOWN_KEYS}
    )
    record.update(
        id=mention_id, text=text, created_at=created_at, source=source, author=author,
        url=url, lang_hint=lang_hint,
    )
    if engagement is not None:
        record["engagement"] = _engagement(engagement)
    return record


def mention_of_record(record: dict[str, Any]) -> Mention:
    """The typed form of a record that :func:`validated_record` returned."""
    author = record["author"]
    engagement = record.get("engagement")
    return Mention(
        id=record["id"], text=record["text"],
        created_at=datetime.fromisoformat(record["created_at"]), source=record["source"],
        author=Author(id=author["id"], handle=author["handle"], followers=author["followers"]),
        url=record["url"], lang_hint=record["lang_hint"],
        engagement=None if engagement is None else Engagement(**engagement),
        extra={key: value for key, value in record.items() if key not in _KNOWN_KEYS},
    )


def parse_timestamp(value: Any) -> datetime:
    """Parse ``created_at`` into an aware UTC datetime; naive times are rejected, not guessed."""
    if type(value) is str:  # the usual case first
        return _parse_time_text(value)
    if value is None:
        raise InvalidMention("missing_field", "created_at is missing")
    if isinstance(value, bool):
        raise InvalidMention("wrong_type", "created_at must be a string or a number, got bool")
    if isinstance(value, int | float):
        seconds = value / 1000 if value > _EPOCH_MS_THRESHOLD else value
        try:
            return datetime.fromtimestamp(seconds, tz=UTC)
        except (OverflowError, OSError, ValueError) as error:
            raise InvalidMention("bad_timestamp", f"epoch {value!r}: {error}") from None
    if not isinstance(value, str):
        raise InvalidMention(
            "wrong_type", f"created_at must be a string or a number, got {type(value).__name__}"
        )
    return _parse_time_text(value)


def is_canonical_utc(text: str) -> bool:
    """Whether ``text`` is already what validation makes of a time (ISO 8601 in UTC).

    ``datetime.isoformat`` writes an aware UTC time as ``YYYY-MM-DDTHH:MM:SS+00:00``, with
    ``.ffffff`` after the seconds unless they are whole. A string of exactly that shape that
    parses is kept as it is, so nearly every mention of a normalised feed skips a
    parse-and-format round trip, most of what checking a time cost (measured: see
    benchmarks/README.md).

    >>> is_canonical_utc("2026-11-02T12:00:05+00:00"), is_canonical_utc("2026-11-02T12:00:05Z")
    (True, False)
    >>> is_canonical_utc("2026-11-02T12:00:05.250000+00:00")
    True
    >>> is_canonical_utc("2026-11-02T12:00:05.000000+00:00")  # isoformat drops a zero fraction
    False
    >>> is_canonical_utc("2026-13-02T12:00:05+00:00")  # the right shape, but no such month
    False
    """
    length = len(text)
    if length == 25:
        offset_at = 19
    elif length == 32 and text[19] == "." and text[20:26] != "000000":
        offset_at = 26
    else:
        return False
    if (text[offset_at:] != "+00:00" or text[10] != "T" or text[4] != "-" or text[7] != "-"
            or text[13] != ":" or text[16] != ":"):
        return False
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def _parse_time_text(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is UTC:  # the usual case (a "+00:00" or "Z" offset): nothing to do
            return parsed
    except ValueError:
        try:
            # _TWITTER_TIME carries %z, so the result is aware
            parsed = datetime.strptime(value, _TWITTER_TIME)  # noqa: DTZ007
        except ValueError:
            raise InvalidMention(
                "bad_timestamp", f"created_at {value[:64]!r} is neither ISO 8601 nor Twitter time"
            ) from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise InvalidMention(
            "bad_timestamp", f"created_at {value[:64]!r} has no timezone offset"
        )
    return parsed.astimezone(UTC)


def _text(value: Any, max_text_chars: int) -> str:
    if value is None:
        raise InvalidMention("missing_field", "text is missing")
    if not isinstance(value, str):
        raise InvalidMention("wrong_type", f"text must be a string, got {type(value).__name__}")
    if len(value) > max_text_chars:
        raise InvalidMention(
            "text_too_long", f"text has {len(value)} characters, limit {max_text_chars}"
        )
    if not value.strip():
        raise InvalidMention("empty_text", "text is empty or only whitespace")
    return value


def _required_str(document: dict[str, Any], key: str) -> str:
    value = document.get(key)
    if value is None:
        raise InvalidMention("missing_field", f"{key} is missing")
    if not isinstance(value, str):
        raise InvalidMention(
            "wrong_type", f"{key} must be a string, got {type(value).__name__}"
        )
    if not value.strip():
        raise InvalidMention("bad_value", f"{key} is empty")
    return value


def _optional_str(document: dict[str, Any], key: str) -> str | None:
    value = document.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidMention(
            "wrong_type", f"{key} must be a string or null, got {type(value).__name__}"
        )
    return value


def _count(value: Any, where: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidMention(
            "wrong_type", f"{where} must be an integer, got {type(value).__name__}"
        )
    if value < 0:
        raise InvalidMention("bad_value", f"{where} is negative ({value})")
    return value


def _author(value: Any) -> dict[str, Any]:
    if type(value) is dict:
        author_id, handle, followers = value.get("id"), value.get("handle"), value.get("followers")
        # the usual shape, checked in one expression; anything else gets the precise checks
        if (type(author_id) is str and author_id
                and (handle is None or type(handle) is str)
                and (followers is None or (type(followers) is int and followers >= 0))):
            return {"id": author_id, "handle": handle, "followers": followers}
    if value is None:
        raise InvalidMention("missing_field", "author is missing")
    if not isinstance(value, dict):
        raise InvalidMention(
            "wrong_type", f"author must be an object, got {type(value).__name__}"
        )
    author_id = value.get("id")
    if author_id is None:
        raise InvalidMention("missing_field", "author.id is missing")
    if isinstance(author_id, int) and not isinstance(author_id, bool):
        author_id = str(author_id)
    if not isinstance(author_id, str) or not author_id:
        raise InvalidMention("wrong_type", "author.id must be a non-empty string")
    handle = value.get("handle")
    if handle is not None and not isinstance(handle, str):
        raise InvalidMention("wrong_type", "author.handle must be a string or null")
    followers = value.get("followers")
    return {
        "id": author_id, "handle": handle,
        "followers": None if followers is None else _count(followers, "author.followers"),
    }


def _engagement(value: Any) -> dict[str, int]:
    if type(value) is dict:
        get = value.get
        likes, reposts, replies, quotes = (
            get("likes", 0), get("reposts", 0), get("replies", 0), get("quotes", 0),
        )
        # the usual shape: every count present (or absent) as a plain non-negative int
        if (type(likes) is type(reposts) is type(replies) is type(quotes) is int
                and min(likes, reposts, replies, quotes) >= 0):
            return {"likes": likes, "reposts": reposts, "replies": replies, "quotes": quotes}
    if not isinstance(value, dict):
        raise InvalidMention(
            "wrong_type", f"engagement must be an object, got {type(value).__name__}"
        )
    return {
        name: _count(value.get(name), f"engagement.{name}") for name in ENGAGEMENT_COUNTS
    }
