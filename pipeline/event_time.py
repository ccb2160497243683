"""Reading a validated mention's event time (its ``created_at``), the one way every stage does.

Ingest validation (:func:`pipeline.schema.parse_timestamp`) accepts the shapes sources send
and writes every time as ISO 8601 in UTC, so past ingest a ``created_at`` is an ISO 8601
string with an offset. :func:`parse_event_time` reads one; :func:`epoch_seconds` reads a
batch as Unix seconds, for the latency metrics and dedup's encoded fast path.

One failure behaviour: a time that is missing, not a string, not ISO 8601 or without an
offset is an error (:class:`~pipeline.schema.InvalidMention`, reason ``missing_field``,
``wrong_type`` or ``bad_timestamp``) that the stage turns into a dead letter for that
mention. It is never guessed: the wall clock or an assumed zone would put the mention in a
window it does not belong to, silently. :func:`epoch_seconds` marks such a time NaN instead
of raising, so that a batch reads in one call; its callers treat NaN as that same error
(the store sink and dedup) or, for metrics, leave the mention out of the histogram.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, TypeVar

import numpy as np
import numpy.typing as npt

from pipeline.schema import InvalidMention

if TYPE_CHECKING:
    from pipeline.records import RoutedMention

# what validation writes before the "+00:00": whole seconds, or six digits of fraction
_NAIVE_LENGTHS: Final = (19, 26)
M = TypeVar("M", bound="RoutedMention")


def parse_event_time(created_at: Any) -> datetime:
    """A mention record's ``created_at`` as an aware datetime; raises if it is unreadable.

    Raises :class:`~pipeline.schema.InvalidMention` (the caller dead-letters the mention)
    when the time is missing, not a string, not ISO 8601, or has no offset.

    >>> parse_event_time("2026-11-02T12:00:05+00:00")
    datetime.datetime(2026, 11, 2, 12, 0, 5, tzinfo=datetime.timezone.utc)
    >>> parse_event_time("2026-11-02T12:00:05")
    Traceback (most recent call last):
    ...
    pipeline.schema.InvalidMention: bad_timestamp: created_at '2026-11-02T12:00:05' has no offset
    """
    if created_at is None:
        raise InvalidMention("missing_field", "created_at is missing")
    if not isinstance(created_at, str):
        raise InvalidMention(
            "wrong_type", f"created_at must be a string, got {type(created_at).__name__}"
        )
    try:
        moment = datetime.fromisoformat(created_at)
    except ValueError:
        raise InvalidMention(
            "bad_timestamp", f"created_at {created_at[:64]!r} is not an ISO 8601 time"
        ) from None
    if moment.tzinfo is None:
        raise InvalidMention("bad_timestamp", f"created_at {created_at[:64]!r} has no offset")
    return moment


def split_by_event_time(
    mentions: Iterable[M],
) -> tuple[list[M], list[tuple[M, InvalidMention]]]:
    """The mentions whose event time reads, in order, and the others with the error.

    >>> from pipeline.records import RoutedMention
    >>> kept, unreadable = split_by_event_time(
    ...     [RoutedMention(id="1", text="", created_at="2026-11-02T12:00:05+00:00"),
    ...      RoutedMention(id="2", text="", created_at="today")])
    >>> len(kept), [error.reason for _, error in unreadable]
    (1, ['bad_timestamp'])
    """
    kept: list[M] = []
    unreadable: list[tuple[M, InvalidMention]] = []
    for mention in mentions:
        try:
            parse_event_time(mention.created_at)
        except InvalidMention as error:
            unreadable.append((mention, error))
        else:
            kept.append(mention)
    return kept, unreadable


def epoch_seconds(times: Sequence[str]) -> npt.NDArray[np.float64]:
    """Unix seconds of event times; NaN where :func:`parse_event_time` would raise.

    Once per mention per stage (event times for dedup and the latency metrics). A batch of
    times in the shapes validation writes (``YYYY-MM-DDTHH:MM:SS[.ffffff]+00:00``) is parsed
    by NumPy in one call, cheaper than ``datetime`` time by time (measured: see
    benchmarks/README.md). Any other batch takes :func:`parse_event_time` time by time: one
    with another offset or length, one NumPy reads only with a warning (it takes trailing
    text for an offset) or not at all. (Within those lengths NumPy also skips leading
    spaces, which ``datetime`` does not; validation never writes them.)

    >>> epoch_seconds(["1970-01-01T00:00:01.500000+00:00", "1970-01-01T00:00:02+00:00"])
    array([1.5, 2. ])
    >>> epoch_seconds(["1970-01-01T01:00:00+01:00", "1970-01-01T00:00:00", "today"])
    array([ 0., nan, nan])
    """
    naive = [time.removesuffix("+00:00") for time in times]
    lengths = np.fromiter(map(len, naive), dtype=np.int64, count=len(naive))
    # removesuffix takes 6 characters or none: the lengths add up only if every time was UTC
    if (int(lengths.sum()) + 6 * len(naive) == sum(map(len, times))
            # two comparisons, not np.isin, whose set-up costs more than they do
            and ((lengths == _NAIVE_LENGTHS[0]) | (lengths == _NAIVE_LENGTHS[1])).all()):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                parsed = np.array(naive, dtype="datetime64[us]")
        except (ValueError, UserWarning):
            pass
        else:
            if not np.isnat(parsed).any():
                return parsed.astype(np.int64) / 1e6
    return np.array([_epoch_seconds_or_nan(time) for time in times], dtype=np.float64)


def _epoch_seconds_or_nan(time: str) -> float:
    try:
        return parse_event_time(time).timestamp()
    except InvalidMention:
        return math.nan
