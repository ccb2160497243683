"""The mention records of the internal topics, typed, and the one codec that reads and writes them.

Each internal topic carries micro-batches: one record is a JSON array of mentions
(:mod:`pipeline.transport.topics`). What a mention holds grows with the stages it has passed,
one type per topic, each the one before it plus the keys its stage writes:

- :class:`RoutedMention` (``mentions.routed``): the validated mention with its ingest tags
  (written with :data:`ROUTED`, which may tag a raw record's own bytes: :class:`RoutedCodec`);
- :class:`UniqueMention` (``mentions.unique``): plus the dedup verdict;
- :class:`ScoredMention` (``mentions.scored``): plus sentiment and ``needs_reply``.

A dead letter (``mentions.deadletter``) is one :class:`DeadLetterRecord` per message
(:data:`DEAD_LETTERS`, written by :func:`dead_letter_record`).

Fields are in the wire order, so a record encodes to the same JSON keys, in the same order,
as the dict each stage used to write; an absent key is ``UNSET`` and stays absent. Keys no
stage knows (an upstream source's own) are carried through untouched: a micro-batch with one
is read on the slow path (:meth:`MentionCodec.decode`), which keeps such keys and the
mention's key order beside the record, and writes them back where they were.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final, Generic, TypeVar

import msgspec
import orjson
from msgspec import UNSET, UnsetType

from pipeline.schema import InvalidMention
from pipeline.transport.topics import MICRO_BATCH_MAX_BYTES, records_within

# instance attributes (never encoded) that keep a slow-path mention's unknown keys and order
_EXTRA: Final = "wire_extra"
_ORDER: Final = "wire_order"


class Sentiment(msgspec.Struct, omit_defaults=True, gc=False):
    """A sentiment result on a mention: label, rounded scores, whether a copy inherited it."""

    label: str
    scores: dict[str, float]
    inherited: bool = False


# dict=True: a slow-path mention keeps its unknown keys and key order as plain attributes;
# forbid_unknown_fields: a record with a key no stage knows takes that slow path
class RoutedMention(msgspec.Struct, dict=True, kw_only=True, forbid_unknown_fields=True):
    """A validated mention with its ingest tags (``mentions.routed``)."""

    id: str
    text: str
    created_at: str
    source: str | UnsetType = UNSET
    author: dict[str, Any] | UnsetType = UNSET
    url: str | UnsetType | None = UNSET
    lang_hint: str | UnsetType | None = UNSET
    engagement: dict[str, Any] | UnsetType = UNSET
    lang: str | UnsetType | None = UNSET
    lang_score: float | UnsetType | None = UNSET
    brands: list[str] | UnsetType = UNSET
    # the sentiment model's token ids, carried from ingest and dropped before ``scored``
    sentiment_tokens: str | UnsetType = UNSET
    ingested_at: float | UnsetType | None = UNSET


class UniqueMention(RoutedMention, kw_only=True):
    """A routed mention with the dedup verdict (``mentions.unique``)."""

    duplicate_of: str | UnsetType | None = UNSET
    duplicate_kind: str | UnsetType = UNSET
    copy_count: int | UnsetType = UNSET
    duplicate_similarity: float | UnsetType | None = UNSET


class ScoredMention(UniqueMention, kw_only=True):
    """A unique mention with sentiment and ``needs_reply`` (``mentions.scored``).

    The sentiment stage reads ``mentions.unique`` as scored mentions not yet scored.
    """

    sentiment: Sentiment | UnsetType | None = UNSET
    sentiment_by_brand: dict[str, Sentiment] | UnsetType = UNSET
    sentiment_error: str | UnsetType = UNSET
    needs_reply: str | UnsetType | None = UNSET


M = TypeVar("M", bound=RoutedMention)
# items a codec or stage refused (a mention, or the JSON that is not one), with why
Refused = list[tuple[RoutedMention | dict[str, Any], InvalidMention]]


def brands_of(mention: RoutedMention) -> list[str]:
    """The mention's brands (none when the key is absent)."""
    brands = mention.brands
    return [] if brands is UNSET else brands


class MentionCodec(Generic[M]):
    """Micro-batch records of one topic <-> its mention records (see the module docstring).

    >>> codec = MentionCodec(ScoredMention)
    >>> mentions, refused = codec.decode(b'[{"custom":1,"id":"1","text":"hola",'
    ...                                  b'"created_at":"2026-01-01T00:00:00Z"}]')
    >>> mentions[0].sentiment = Sentiment("neutral", {"neutral": 1.0})
    >>> codec.encode(mentions)
    b'[{"custom":1,"id":"1","text":"hola","created_at":"2026-01-01T00:00:00Z","sentiment":{"label":"neutral","scores":{"neutral":1.0}}}]'
    """

    def __init__(self, record_type: type[M]) -> None:
        self.record_type = record_type
        self.fields: tuple[str, ...] = record_type.__struct_fields__
        self._field_set = frozenset(self.fields)
        self._usual = msgspec.json.Decoder(list[record_type])  # type: ignore[valid-type]
        self._encode: Callable[[Any], bytes] = msgspec.json.Encoder().encode

    def decode(self, value: bytes) -> tuple[list[M], Refused]:
        """A record's mentions, and the items that are not mentions of this type with why.

        Raises ``ValueError`` when ``value`` is not a JSON array at all.
        """
        try:
            mentions = self._usual.decode(value)
        except msgspec.MsgspecError:
            return self._decode_whole(value)
        # the usual record was written by a stage of ours: every mention starts with its id
        # (else a key an upstream source put first must stay first: the slow path keeps it)
        if value.count(b'[{"id":') + value.count(b',{"id":') != len(mentions):
            return self._decode_whole(value)
        return mentions, []

    def _decode_whole(self, value: bytes) -> tuple[list[M], Refused]:
        try:
            items = orjson.loads(value)
        except orjson.JSONDecodeError as error:
            raise ValueError(f"not JSON: {error}") from error
        if not isinstance(items, list):
            raise ValueError(f"expected a JSON array of mentions, got {type(items).__name__}")
        mentions: list[M] = []
        refused: Refused = []
        for item in items:
            if not isinstance(item, dict):
                refused.append(({"item": item}, InvalidMention(
                    "not_an_object", f"expected a mention object, got {type(item).__name__}")))
                continue
            try:
                mentions.append(self.from_dict(item))
            except InvalidMention as error:
                refused.append((item, error))
        return mentions, refused

    def from_dict(self, document: Mapping[str, Any]) -> M:
        """One mention record from its JSON object; ``InvalidMention`` when it does not fit."""
        for name in ("id", "text", "created_at"):
            if document.get(name) is None:
                raise InvalidMention("missing_field", name)
        known = {key: value for key, value in document.items() if key in self._field_set}
        try:
            mention = msgspec.convert(known, self.record_type)
        except msgspec.ValidationError as error:
            reason = "missing_field" if "missing required" in str(error) else "wrong_type"
            raise InvalidMention(reason, str(error)) from error
        extra = {key: value for key, value in document.items() if key not in self._field_set}
        if extra or list(known) != [name for name in self.fields if name in known]:
            setattr(mention, _EXTRA, extra)
            setattr(mention, _ORDER, tuple(document))
        return mention

    def encode(self, mentions: Sequence[RoutedMention]) -> bytes:
        """One micro-batch record of ``mentions`` (a JSON array)."""
        return self._encode([_wire_form(mention) for mention in mentions])

    def encode_one(self, mention: RoutedMention) -> bytes:
        """One mention as its JSON object (joined into records by the caller)."""
        return self._encode(_wire_form(mention))

    def encode_each(self, mentions: Sequence[RoutedMention]) -> list[bytes]:
        """Each mention as its own JSON object (joined into records by the caller)."""
        return [self._encode(_wire_form(mention)) for mention in mentions]

    def encode_batches(self, mentions: Sequence[RoutedMention],
                       max_bytes: int = MICRO_BATCH_MAX_BYTES) -> list[bytes]:
        """Records of at most ``max_bytes`` each (halved until they fit), in order."""
        return records_within(mentions, self.encode, max_bytes)


def _wire_form(mention: RoutedMention) -> RoutedMention | dict[str, Any]:
    """The mention itself, or, if it carries unknown keys or another order, its ordered dict."""
    order = getattr(mention, _ORDER, None)
    if order is None:
        return mention
    extra: dict[str, Any] = getattr(mention, _EXTRA)
    fields = msgspec.structs.asdict(mention)
    wire: dict[str, Any] = {}
    for key in order:
        value = extra[key] if key in extra else fields.get(key, UNSET)
        if value is not UNSET:
            wire[key] = value
    for key, value in fields.items():
        if value is not UNSET and key not in wire:
            wire[key] = value
    return wire


def encode_mention(mention: RoutedMention | Mapping[str, Any]) -> bytes:
    """One mention as its JSON object (for a dead letter)."""
    if isinstance(mention, RoutedMention):
        return msgspec.json.encode(_wire_form(mention))
    return orjson.dumps(mention)


def wire_dict(mention: RoutedMention) -> dict[str, Any]:
    """The mention as the JSON object it is on the wire, decoded (tests, files, rows)."""
    decoded: dict[str, Any] = orjson.loads(msgspec.json.encode(_wire_form(mention)))
    return decoded


# --------------------------------------------------------------------------------------------
# the dedup stage's fast path: routed mentions read lean, each verdict spliced into its bytes
# --------------------------------------------------------------------------------------------


class DedupHead(msgspec.Struct, gc=False):
    """What dedup reads of a routed mention; the verdict keys only to see that none is there."""

    id: str
    text: str
    created_at: str
    ingested_at: float | None = None
    duplicate_of: Any = UNSET
    duplicate_kind: Any = UNSET
    copy_count: Any = UNSET
    duplicate_similarity: Any = UNSET


class _VerdictKeys(msgspec.Struct, gc=False, omit_defaults=True):
    """The verdict fields of :class:`UniqueMention`, in its order (no similarity for firsts)."""

    duplicate_of: str | None
    duplicate_kind: str
    copy_count: int
    duplicate_similarity: float | None = None


_ROUTED_ITEMS = msgspec.json.Decoder(list[msgspec.Raw])
# the whole array in one call: decoding item by item cost more per mention
_ROUTED_HEADS = msgspec.json.Decoder(list[DedupHead])
_encode_verdict_into = msgspec.json.Encoder().encode_into
_COMMA: Final = ord(",")


def read_routed_heads(value: bytes) -> tuple[list[DedupHead], list[msgspec.Raw]] | None:
    """A routed record's mentions as what dedup reads of each, and each one's own bytes.

    None when the record is not in the usual shape (not an array of objects, a field of
    another type, verdict keys already there): the caller then reads it whole with
    :data:`UNIQUE`. A mention decoded whole costs twice the CPU of this read and the splice
    of :func:`unique_with_verdicts` together (``benchmarks/README.md``).
    """
    try:
        items = _ROUTED_ITEMS.decode(value)
        heads = _ROUTED_HEADS.decode(value)
    except msgspec.MsgspecError:
        return None
    for head in heads:
        if not (head.duplicate_of is head.duplicate_kind is head.copy_count
                is head.duplicate_similarity is UNSET):
            return None
    return heads, items


def unique_with_verdicts(
    items: Sequence[msgspec.Raw], verdicts: Sequence[tuple[str | None, str, int, float | None]],
) -> list[bytearray]:
    """Each routed mention's bytes as its :class:`UniqueMention`: the verdict keys appended.

    Byte for byte what :meth:`MentionCodec.encode` writes of the mention with the verdict
    set, but for the source's spacing inside the object.
    """
    encoded = []
    for raw_item, verdict in zip(items, verdicts, strict=True):
        # the verdict goes over the object's closing brace (msgspec's Raw ends there), whose
        # place then takes the comma: one copy of the mention's bytes, nothing decoded
        mention = bytearray(raw_item)
        end = len(mention) - 1
        _encode_verdict_into(_VerdictKeys(*verdict), mention, end)
        mention[end] = _COMMA
        encoded.append(mention)
    return encoded


# --------------------------------------------------------------------------------------------
# the ingest stage's fast path: a raw record that already is a routed mention's wire form,
# but for the ingest tags, is tagged by appending them to its own bytes
# --------------------------------------------------------------------------------------------


class RoutedTags(msgspec.Struct, gc=False):
    """The keys ingest writes on a :class:`RoutedMention`, in its order (a test holds that)."""

    lang: str | UnsetType = UNSET
    lang_score: float | UnsetType = UNSET
    brands: Sequence[str] | UnsetType = UNSET
    sentiment_tokens: str | UnsetType = UNSET
    ingested_at: float | UnsetType = UNSET


class RoutedCodec(MentionCodec[RoutedMention]):
    """The ``mentions.routed`` codec, with ingest's byte-level fast path.

    A raw record that spells out every key a routed mention has before its tags, in the
    wire order (:func:`pipeline.usual_mention.decode_usual` says which do), is tagged by
    appending :meth:`tag_members` to its own bytes (:meth:`encode_tagged`): byte for byte
    what :meth:`encode_one` writes of the mention with those tags set, but for the source's
    spacing, and several times cheaper than encoding it (``benchmarks/README.md``).
    """

    def __init__(self) -> None:
        super().__init__(RoutedMention)
        self._encode_tags: Callable[[RoutedTags], bytes] = msgspec.json.Encoder().encode

    def tag_members(
        self, *, lang: str | None = None, lang_score: float | None = None,
        brands: Sequence[str] | None = None, sentiment_tokens: str | None = None,
        ingested_at: float | None = None,
    ) -> bytes:
        """The given tags as JSON object members, each after a comma: ``,"lang":"es",...``.

        >>> ROUTED.tag_members(brands=["acme"], ingested_at=1.5)
        b',"brands":["acme"],"ingested_at":1.5'
        """
        members = self._encode_tags(RoutedTags(
            lang=UNSET if lang is None else lang,
            lang_score=UNSET if lang_score is None else lang_score,
            brands=UNSET if brands is None else brands,
            sentiment_tokens=UNSET if sentiment_tokens is None else sentiment_tokens,
            ingested_at=UNSET if ingested_at is None else ingested_at,
        ))
        return b"," + members[1:-1] if len(members) > 2 else b""

    @staticmethod
    def encode_tagged(spelled_out: bytes, members: bytes, closing: bytes) -> bytes:
        """A spelled-out raw record (see the class docstring) with ``members`` and ``closing``.

        ``closing`` is more members (or none) and a closing brace, which takes the place of
        ``spelled_out``'s own.
        """
        return b"".join((memoryview(spelled_out)[:-1], members, closing))


ROUTED: Final = RoutedCodec()
SCORED: Final = MentionCodec(ScoredMention)
# the dedup stage reads routed records as unique mentions not yet marked
UNIQUE: Final = MentionCodec(UniqueMention)


# --------------------------------------------------------------------------------------------
# dead letters (``mentions.deadletter``): what a stage refused, and why
# --------------------------------------------------------------------------------------------

R = TypeVar("R", bound=msgspec.Struct)


class RecordCodec(Generic[R]):
    """One record type <-> its JSON object (a topic that carries one record per message)."""

    def __init__(self, record_type: type[R]) -> None:
        self.record_type = record_type
        self._decoder = msgspec.json.Decoder(record_type)
        self.encode: Callable[[R], bytes] = msgspec.json.Encoder().encode

    def decode(self, value: bytes) -> R:
        """The record in ``value``; ``msgspec.ValidationError`` when it is not one."""
        return self._decoder.decode(value)


class DeadLetterRecord(msgspec.Struct, gc=False):
    """A record a stage refused: why, where, the original bytes (:func:`dead_letter_record`).

    ``original`` is the original as UTF-8 text, else ``original_b64``; a truncated letter has
    the original's first bytes and its size and SHA-256 (``original_truncated``).
    """

    reason: str
    detail: str
    stage: str
    source_topic: str | None
    failed_at: str
    original: str | UnsetType = UNSET
    original_b64: str | UnsetType = UNSET
    original_truncated: bool | UnsetType = UNSET
    original_bytes: int | UnsetType = UNSET
    original_sha256: str | UnsetType = UNSET


DEAD_LETTERS: Final = RecordCodec(DeadLetterRecord)
# Largest dead-letter record: half of the producers' ~1 MB request limit, as for micro-batches
# (pipeline.transport.topics). A raw record near the input limit grows when it is escaped
# (control characters) or base64-encoded, and a letter the broker refuses would stop the stage.
DEAD_LETTER_MAX_BYTES: Final = 512 * 1024


def dead_letter_record(
    raw: bytes, reason: str, detail: str, *, stage: str, source_topic: str | None = None,
    failed_at: datetime | None = None, max_bytes: int = DEAD_LETTER_MAX_BYTES,
) -> bytes:
    """The encoded dead letter of ``raw``: the original (as UTF-8 text when possible) and why.

    The original is kept verbatim in ``original_b64`` when it is not valid UTF-8, so nothing
    is lost and the record can be replayed after a fix. A letter that would pass
    ``max_bytes`` keeps the original's first bytes only, with ``original_truncated``, its
    size and its SHA-256 (the whole record is still on its source topic until retention).

    >>> letter = DEAD_LETTERS.decode(dead_letter_record(
    ...     b"x" * 5000, "not_json", "", stage="ingest", max_bytes=1000))
    >>> letter.original_truncated, letter.original_bytes, len(letter.original) < 1000
    (True, 5000, True)
    """
    letter = DeadLetterRecord(reason, detail[:1000], stage, source_topic,
                              (failed_at or datetime.now(UTC)).isoformat())
    whole = DEAD_LETTERS.encode(_with_original(letter, raw))
    if len(whole) <= max_bytes:
        return whole
    # escaping writes at most 6 bytes per input byte (a control character as \u00XX)
    kept = raw[:max(0, (max_bytes - len(DEAD_LETTERS.encode(letter)) - 200) // 6)]
    truncated = _with_original(letter, kept, partial=True)
    truncated.original_truncated = True
    truncated.original_bytes = len(raw)
    truncated.original_sha256 = hashlib.sha256(raw).hexdigest()
    return DEAD_LETTERS.encode(truncated)


def _with_original(
    letter: DeadLetterRecord, raw: bytes, *, partial: bool = False,
) -> DeadLetterRecord:
    """``letter`` with ``original`` (UTF-8 text) or ``original_b64``.

    A ``partial`` prefix may end in the middle of a character, which is then left out.
    """
    try:
        return msgspec.structs.replace(letter, original=raw.decode("utf-8"))
    except UnicodeDecodeError as error:
        if partial and error.start >= len(raw) - 3 and error.reason == "unexpected end of data":
            return msgspec.structs.replace(letter, original=raw[:error.start].decode("utf-8"))
        return msgspec.structs.replace(
            letter, original_b64=base64.b64encode(raw).decode("ascii"))
