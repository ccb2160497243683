"""Urgency, waiting and copy grouping of inbox items."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pipeline.stages.inbox.items import group_copies, is_overdue, urgency, waited

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def test_a_complaint_outranks_a_question_and_a_thank_you_alike_otherwise() -> None:
    scores = {reason: urgency(reason, 1000, 0.2, timedelta(minutes=10), HOUR)
              for reason in ("complaint", "request", "question", "praise")}
    assert sorted(scores, key=scores.__getitem__, reverse=True) == [
        "complaint", "request", "question", "praise"]


def test_reach_negativity_and_waiting_each_raise_urgency() -> None:
    base = urgency("question", 100, 0.1, timedelta(minutes=5), HOUR)
    assert urgency("question", 1_000_000, 0.1, timedelta(minutes=5), HOUR) > base
    assert urgency("question", 100, 0.9, timedelta(minutes=5), HOUR) > base
    assert urgency("question", 100, 0.1, 2 * HOUR, HOUR) > base


def test_waiting_stops_counting_at_twice_the_sla() -> None:
    assert urgency("praise", 10, 0.0, 2 * HOUR, HOUR) == urgency("praise", 10, 0.0, 9 * HOUR, HOUR)


def test_an_overdue_thank_you_from_a_big_account_can_pass_a_fresh_small_complaint() -> None:
    assert urgency("praise", 2_000_000, 0.0, 3 * HOUR, HOUR) > urgency(
        "complaint", 10, 0.3, timedelta(minutes=1), HOUR)


def test_waiting_ends_when_the_item_is_closed_and_overdue_is_for_pending_only() -> None:
    assert waited(T0, T0 + 5 * HOUR, closed_at=T0 + HOUR) == HOUR
    assert is_overdue(True, 2 * HOUR, HOUR)
    assert not is_overdue(True, HOUR, HOUR)
    assert not is_overdue(False, 5 * HOUR, HOUR)


def test_copies_sit_under_their_first_mention_and_orphans_under_the_earliest_copy() -> None:
    mentions = [
        {"id": "c2", "duplicate_of": "a", "created_at": "2026-12-01T09:20:00+00:00"},
        {"id": "c1", "duplicate_of": "a", "created_at": "2026-12-01T09:10:00+00:00"},
        {"id": "a", "created_at": "2026-12-01T09:00:00+00:00"},
        {"id": "late", "duplicate_of": "gone", "created_at": "2026-12-01T09:30:00+00:00"},
        {"id": "early", "duplicate_of": "gone", "created_at": "2026-12-01T09:15:00+00:00"},
    ]
    groups = group_copies(mentions)
    assert [(group.id, [copy["id"] for copy in group.copies]) for group in groups] == [
        ("a", ["c1", "c2"]), ("early", ["late"])]
