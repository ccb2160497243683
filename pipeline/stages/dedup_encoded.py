"""The dedup stage over an encoded micro-batch: each verdict appended to its mention's bytes.

:func:`mark_routed` is the stage's one entry point, for the agent and the in-process
harness alike: one ``mentions.routed`` record in, its mentions marked and encoded out. Only
the fields dedup reads are decoded, and each verdict is encoded into a copy of its mention's
own JSON, so a mention is never decoded whole on that path (:func:`mark_encoded_duplicates`,
the codec's fast path in :mod:`pipeline.records`); a record in another shape (another
producer's, verdict keys already there) is read whole as
:class:`~pipeline.records.UniqueMention` records and marked by
:func:`pipeline.stages.dedup.mark_duplicates` instead, with the same result type.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from msgspec import UNSET

from pipeline.event_time import epoch_seconds, split_by_event_time
from pipeline.records import UNIQUE, Refused, read_routed_heads, unique_with_verdicts
from pipeline.stages.dedup import DedupInput, Deduplicator, DedupVerdict, mark_duplicates


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

    Only what dedup reads of each mention is decoded, and each unique mention is its routed
    bytes with the verdict appended (:func:`~pipeline.records.read_routed_heads`,
    :func:`~pipeline.records.unique_with_verdicts`). None, with the deduplicator untouched,
    when the batch is not in the usual shape or a time does not read: the caller then reads
    it whole (:func:`mark_routed`).
    """
    read = read_routed_heads(micro_batch)
    if read is None:
        return None
    heads, items = read
    event_times = epoch_seconds([head.created_at for head in heads])
    if np.isnan(event_times).any():
        return None
    verdicts = deduplicator.check([
        DedupInput(head.id, head.text, seen_at)
        for head, seen_at in zip(heads, event_times.tolist(), strict=True)
    ])
    newest = datetime.fromtimestamp(event_times.max(), UTC) if event_times.size else None
    return EncodedVerdicts(
        verdicts, newest, [head.id for head in heads], unique_with_verdicts(items, verdicts),
        [head.ingested_at for head in heads], event_times,
    )


class RoutedOutcome(NamedTuple):
    """One routed record through the dedup stage (:func:`mark_routed`)."""

    # the mentions marked, encoded; None when the record is not a micro-batch at all
    marked: EncodedVerdicts | None
    # items that are not mentions, or whose event time does not read, with the error
    unreadable: Refused
    # why the record is not a micro-batch (None when it is)
    broken: str | None = None
    # True when the record was not in the usual shape and was decoded whole
    decoded_whole: bool = False


def mark_routed(deduplicator: Deduplicator, micro_batch: bytes) -> RoutedOutcome:
    """Mark one ``mentions.routed`` record's mentions, whatever its shape (module docstring).

    An item that is not a mention, or whose event time does not read, is set aside
    (``unreadable``) before the deduplicator is touched; a record that is not a JSON array
    comes back ``broken``.
    """
    marked = mark_encoded_duplicates(deduplicator, micro_batch)
    if marked is not None:
        return RoutedOutcome(marked, [])
    try:
        decoded, refused = UNIQUE.decode(micro_batch)
    except ValueError as error:
        return RoutedOutcome(None, [], str(error))
    mentions, unreadable = split_by_event_time(decoded)
    verdicts, newest = mark_duplicates(deduplicator, mentions)
    return RoutedOutcome(EncodedVerdicts(
        verdicts, newest, [mention.id for mention in mentions],
        [bytearray(encoded) for encoded in UNIQUE.encode_each(mentions)],
        [None if mention.ingested_at is UNSET else mention.ingested_at for mention in mentions],
        epoch_seconds([mention.created_at for mention in mentions]),
    ), [*refused, *unreadable], decoded_whole=True)
