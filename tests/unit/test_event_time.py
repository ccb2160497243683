"""Event times of validated mentions: one parser, one failure (an error to dead-letter)."""

import math
import warnings
from datetime import UTC, datetime, timedelta, timezone

import pytest

from pipeline.connectors.generator import FirehoseGenerator
from pipeline.event_time import epoch_seconds, parse_event_time, split_by_event_time
from pipeline.records import RoutedMention
from pipeline.schema import InvalidMention, validated_record


@pytest.mark.parametrize("created_at", [
    "2026-11-02T12:00:05+00:00", "2026-11-02T12:00:05.250000+00:00",
    "2026-11-02T12:00:05Z", "2026-11-02T13:00:05+01:00",
])
def test_a_time_with_an_offset_reads_as_datetime_reads_it(created_at: str) -> None:
    moment = parse_event_time(created_at)
    assert moment == datetime.fromisoformat(created_at)
    assert moment.utcoffset() == datetime.fromisoformat(created_at).utcoffset()


def test_what_validation_writes_reads_back_to_the_same_instant() -> None:
    start = datetime(2026, 11, 22, tzinfo=UTC)
    for raw in FirehoseGenerator(seed=4, start=start).mentions(200):
        record = validated_record(raw, max_text_chars=10_000)
        assert parse_event_time(record["created_at"]).isoformat() == record["created_at"]


@pytest.mark.parametrize(("created_at", "reason"), [
    (None, "missing_field"),
    (1_795_000_000, "wrong_type"),
    ("yesterday", "bad_timestamp"),
    ("", "bad_timestamp"),
    ("2026-11-02T12:00:05", "bad_timestamp"),  # no offset: never assumed to be UTC
    ("Mon Nov 02 12:00:05 +0000 2026", "bad_timestamp"),  # ingest's job, not read past it
])
def test_an_unreadable_time_is_an_error_with_its_reason_never_a_guess(
    created_at: object, reason: str,
) -> None:
    with pytest.raises(InvalidMention) as raised:
        parse_event_time(created_at)
    assert raised.value.reason == reason
    assert "created_at" in raised.value.detail


def test_a_batch_splits_into_readable_mentions_and_rejects_in_order() -> None:
    good = [RoutedMention(id=str(n), text="", created_at=f"2026-11-02T12:00:0{n}+00:00")
            for n in range(3)]
    broken = RoutedMention(id="x", text="", created_at="2026-11-02T12:00:05")
    empty = RoutedMention(id="y", text="", created_at="")
    kept, unreadable = split_by_event_time([good[0], broken, good[1], empty, good[2]])
    assert kept == good
    assert [(mention.id, error.reason) for mention, error in unreadable] == [
        ("x", "bad_timestamp"), ("y", "bad_timestamp"),
    ]


def test_epoch_seconds_agree_with_the_parser_and_mark_its_errors_nan() -> None:
    times = ["2026-11-02T12:00:05+00:00", "2026-11-02T12:00:05+02:00", "today"]
    assert epoch_seconds(times).tolist()[:2] == [
        parse_event_time(times[0]).timestamp(),
        (parse_event_time(times[0]) - timedelta(hours=2)).timestamp(),
    ]
    assert math.isnan(epoch_seconds(times)[2])
    assert parse_event_time(times[1]).tzinfo == timezone(timedelta(hours=2))


def seconds_by_datetime(time: str) -> float:
    """What ``epoch_seconds`` must give for one time: datetime's reading, NaN if none."""
    try:
        parsed = datetime.fromisoformat(time)
    except ValueError:
        return math.nan
    return parsed.timestamp() if parsed.tzinfo is not None else math.nan


ODD_TIMES = [
    "2026-11-02T12:00:05+00:00", "2026-02-30T12:00:05+00:00", "2026-11-02T24:00:05+00:00",
    "2026-W44-1T12:00:05+00:00", "2026-11-02T120005.5+00:00", "2026-11-02 12:00:05+00:00",
    "2026-11-02T12:00:05.250+00:00", "2026-11-02T12:00:05,250000+00:00",
    "2026-11-02T12:00:05.25000a+00:00", "2026-11-02T12:00:05.000000+00:00",
    "2026-11-02T12:00:05.250000+00:00", "2026-11-02T12:00:05+01:00", "2026-11-02T12:00:05Z",
    "2026-11-02T12:00:05", "2026-11-02+00:00", "NaT+00:00", "today+00:00", "now+00:00",
    "+00:00", "", "2026-11-02t12:00:05+00:00", "2026-11-02T12:00:05.1234567+00:00",
    "1969-12-31T23:59:59.999999+00:00", "9999-12-31T23:59:59+00:00",
]


@pytest.mark.parametrize("time", ODD_TIMES)
def test_epoch_seconds_read_a_time_as_datetime_does(time: str) -> None:
    canonical = "2026-11-02T12:00:05.250000+00:00"
    # alone, and among canonical times (where the whole batch may take NumPy's path)
    for batch in ([time], [canonical, time, canonical]):
        # NumPy warns where it reads trailing text as an offset: no warning may get out
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            got = epoch_seconds(batch).tolist()
        expected = [seconds_by_datetime(item) for item in batch]
        assert got == pytest.approx(expected, nan_ok=True, abs=1e-6)
        assert not caught


def test_epoch_seconds_of_the_synthetic_firehose_are_datetimes_to_the_microsecond() -> None:
    times = [mention["created_at"] for mention in FirehoseGenerator(
        seed=3, start=datetime(2026, 11, 22, tzinfo=UTC)).mentions(2000)]
    assert epoch_seconds(times).tolist() == [seconds_by_datetime(time) for time in times]
    assert epoch_seconds([]).size == 0
