"""The dedup stage over an encoded micro-batch: each verdict appended to its mention's bytes.

:func:`mark_routed` is the stage's one entry point, for the agent and the in-process
harness alike: one ``mentions.routed`` record in, its mentions marked and encoded out. Only
the fields dedup reads are decoded, and each verdict is encoded into a copy of its mention's
own JSON, so a mention is never a dict on that path (:func:`mark_encoded_duplicates`); a
record in another shape (another producer's, verdict keys already there) is decoded whole
and marked by :func:`pipeline.stages.dedup.mark_duplicates` instead, with the same result
type.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NamedTuple

import msgspec
import numpy as np
import numpy.typing as npt
import orjson

from pipeline.event_time import epoch_seconds, split_by_event_time
from pipeline.schema import InvalidMention
from pipeline.stages.dedup import (
    DedupInput,
    Deduplicator,
    DedupVerdict,
    DuplicateKind,
    mark_duplicates,
)
from pipeline.transport.topics import decode_batch


class _RoutedFields(msgspec.Struct, gc=False):
    """What dedup reads of a routed mention; the verdict keys only to see that none is there."""

    id: str
    text: str
    created_at: str
    ingested_at: float | None = None
    duplicate_of: Any = msgspec.UNSET
    duplicate_kind: Any = msgspec.UNSET
    copy_count: Any = msgspec.UNSET
    duplicate_similarity: Any = msgspec.UNSET


_ROUTED_ITEMS = msgspec.json.Decoder(list[msgspec.Raw])
# the whole array in one call: decoding item by item cost more per mention (measured: see
# benchmarks/README.md)
_ROUTED_FIELDS = msgspec.json.Decoder(list[_RoutedFields])


class _VerdictKeys(msgspec.Struct, gc=False, omit_defaults=True):
    """The keys :func:`verdict_keys` makes, in its order (no similarity for a first copy)."""

    duplicate_of: str | None
    duplicate_kind: DuplicateKind
    copy_count: int
    duplicate_similarity: float | None = None


_VERDICT_KEYS_ENCODER = msgspec.json.Encoder()
_COMMA = ord(",")


class EncodedVerdicts(NamedTuple):
    """A micro-batch marked by :func:`mark_encoded_duplicates`, each mention still encoded."""

    verdicts: list[DedupVerdict]
    newest: datetime | None
    mention_ids: list[str]
    # each mention's JSON object with its verdict's keys appended, as apply_verdict would
    encoded: list[bytearray]
    ingested_at: list[float | None]
    # each mention's event time, Unix seconds
    event_times: npt.NDArray[np.float64]


def mark_encoded_duplicates(
    deduplicator: Deduplicator, micro_batch: bytes,
) -> EncodedVerdicts | None:
    """:func:`mark_duplicates` on an encoded micro-batch, without decoding the mentions whole.

    Only ``id``, ``text``, ``created_at`` and ``ingested_at`` of each mention are decoded; the
    verdict is appended to the mention's own bytes. A mention decoded whole is ~30 Python
    objects, and decoding it was the largest part of the dedup hop's own cost (measured:
    see benchmarks/README.md). None, with the deduplicator untouched, when the batch is
    not in the usual shape (not a JSON array of objects, a field of another type, an
    unreadable time, verdict keys already there): the caller then decodes it whole, sets
    the mentions whose time does not read aside, and calls :func:`mark_duplicates`.
    """
    try:
        items = _ROUTED_ITEMS.decode(micro_batch)
        fields = _ROUTED_FIELDS.decode(micro_batch)
    except msgspec.MsgspecError:
        return None
    event_times = epoch_seconds([item.created_at for item in fields])
    if np.isnan(event_times).any():
        return None
    unset = msgspec.UNSET
    for item in fields:
        if not (item.duplicate_of is item.duplicate_kind is item.copy_count
                is item.duplicate_similarity is unset):
            return None
    verdicts = deduplicator.check([
        DedupInput(item.id, item.text, seen_at)
        for item, seen_at in zip(fields, event_times.tolist(), strict=True)
    ])
    encoded = []
    encode_into = _VERDICT_KEYS_ENCODER.encode_into
    for raw_item, verdict in zip(items, verdicts, strict=True):
        # The verdict's keys go over the object's closing brace (msgspec's Raw ends there):
        # encoded from a struct (cheaper than verdict_keys' dict and orjson; both write a
        # float's shortest round-trip form) straight into a copy of the mention's bytes,
        # whose "{" then becomes the comma. Slicing and joining bytes instead made four more
        # copies (measured: see benchmarks/README.md).
        encoded_mention = bytearray(raw_item)
        end = len(encoded_mention) - 1
        encode_into(_VerdictKeys(*verdict), encoded_mention, end)
        encoded_mention[end] = _COMMA
        encoded.append(encoded_mention)
    newest = datetime.fromtimestamp(event_times.max(), UTC) if event_times.size else None
    return EncodedVerdicts(
        verdicts, newest, [item.id for item in fields], encoded,
        [item.ingested_at for item in fields], event_times,
    )


class RoutedOutcome(NamedTuple):
    """One routed record through the dedup stage (:func:`mark_routed`)."""

    # the mentions marked, encoded; None when the record is not a micro-batch at all
    marked: EncodedVerdicts | None
    # mentions refused for their event time, with the error, for the dead letters
    unreadable: list[tuple[dict[str, Any], InvalidMention]]
    # why the record is not a micro-batch (None when it is)
    broken: str | None = None
    # True when the record was not in the usual shape and was decoded whole
    decoded_whole: bool = False


def mark_routed(deduplicator: Deduplicator, micro_batch: bytes) -> RoutedOutcome:
    """Mark one ``mentions.routed`` record's mentions, whatever its shape (module docstring).

    A mention whose event time does not read is set aside (``unreadable``) before the
    deduplicator is touched; a record that is not a JSON array comes back ``broken``.
    """
    marked = mark_encoded_duplicates(deduplicator, micro_batch)
    if marked is not None:
        return RoutedOutcome(marked, [])
    try:
        decoded = decode_batch(micro_batch)
    except ValueError as error:
        return RoutedOutcome(None, [], str(error))
    mentions, unreadable = split_by_event_time(decoded)
    verdicts, newest = mark_duplicates(deduplicator, mentions)
    created_at = [str(mention["created_at"]) for mention in mentions]
    return RoutedOutcome(EncodedVerdicts(
        verdicts, newest, [str(mention["id"]) for mention in mentions],
        [bytearray(orjson.dumps(mention)) for mention in mentions],
        [_number_or_none(mention.get("ingested_at")) for mention in mentions],
        epoch_seconds(created_at),
    ), unreadable, decoded_whole=True)


def _number_or_none(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
