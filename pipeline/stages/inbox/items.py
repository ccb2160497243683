"""Inbox items: how urgent each is, how long it has waited, and copies grouped under the first.

An item is a stored mention that needs a reply (``needs_reply``: ``question``, ``complaint``,
``request`` or ``praise``). Urgency adds four parts, each bounded, so no single one buries the
others: what the mention asks for (a complaint before a thank-you), who asks (reach, on a log
scale: 100 followers and 1 million are 2 and 6 on it), how negative it reads, and how much of its
brand's SLA it has used up waiting (an item past its SLA climbs above fresh ones).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

REASONS: Final = ("complaint", "request", "question", "praise")
# what each reason adds to urgency: a complaint left alone grows, a thank-you can wait
REASON_WEIGHT: Final = {"complaint": 3.0, "request": 2.5, "question": 2.0, "praise": 0.5}
REACH_WEIGHT: Final = 0.5
NEGATIVE_WEIGHT: Final = 2.0
WAITING_WEIGHT: Final = 1.5
# waiting counts up to twice the SLA: beyond it every overdue item is as late as the others
WAITING_CAP: Final = 2.0


def urgency(reason: str | None, followers: int, negative: float, waited: timedelta,
            sla: timedelta) -> float:
    """How urgent an item is, from 0 (a thank-you from nobody, just in) to about 11.

    >>> sla = timedelta(hours=1)
    >>> angry = urgency("complaint", 50_000, 0.9, timedelta(minutes=30), sla)
    >>> thanks = urgency("praise", 50_000, 0.0, timedelta(minutes=30), sla)
    >>> late = urgency("praise", 50_000, 0.0, timedelta(hours=3), sla)
    >>> round(angry, 2), round(thanks, 2), round(late, 2)
    (7.9, 3.6, 5.85)
    """
    reach = REACH_WEIGHT * math.log10(max(followers, 0) + 1)
    used = waited / sla if sla > timedelta(0) else WAITING_CAP
    waiting = WAITING_WEIGHT * min(max(used, 0.0), WAITING_CAP)
    return (REASON_WEIGHT.get(reason or "", 0.0) + reach
            + NEGATIVE_WEIGHT * min(max(negative, 0.0), 1.0) + waiting)


def waited(created_at: datetime, now: datetime, closed_at: datetime | None = None) -> timedelta:
    """How long an item waited: until it was closed (answered, dismissed), else until now.

    >>> t0 = datetime.fromisoformat("2026-12-01T09:00:00+00:00")
    >>> str(waited(t0, t0 + timedelta(hours=2))), str(waited(t0 - timedelta(minutes=5), t0))
    ('2:00:00', '0:05:00')
    """
    end = closed_at or now
    return max(end - created_at, timedelta(0))


def is_overdue(pending: bool, waited_for: timedelta, sla: timedelta) -> bool:
    """True when an item still waiting for a reply has waited longer than its SLA.

    >>> is_overdue(True, timedelta(hours=2), timedelta(hours=1))
    True
    >>> is_overdue(False, timedelta(hours=2), timedelta(hours=1))
    False
    """
    return pending and waited_for > sla


@dataclass(frozen=True, slots=True)
class CopyGroup:
    """The first mention of a post and the copies of it (retweets, pasted complaints)."""

    first: Mapping[str, Any]
    copies: Sequence[Mapping[str, Any]] = field(default=())

    @property
    def id(self) -> str:
        """The group's id: its first mention's."""
        return str(self.first["id"])


def group_copies(mentions: Iterable[Mapping[str, Any]]) -> list[CopyGroup]:
    """Copies of one post under the first mention of it, in order of their first mention.

    A copy names its original in ``duplicate_of``; when the original is not among
    ``mentions`` (it needs no reply, or is older than the inbox looks), the earliest copy
    stands first.

    >>> groups = group_copies([
    ...     {"id": "b", "duplicate_of": "a", "created_at": "2026-12-01T09:05:00+00:00"},
    ...     {"id": "a", "created_at": "2026-12-01T09:00:00+00:00"},
    ...     {"id": "c", "created_at": "2026-12-01T09:01:00+00:00"},
    ...     {"id": "e", "duplicate_of": "x", "created_at": "2026-12-01T09:04:00+00:00"},
    ...     {"id": "d", "duplicate_of": "x", "created_at": "2026-12-01T09:03:00+00:00"}])
    >>> [(group.id, [copy["id"] for copy in group.copies]) for group in groups]
    [('a', ['b']), ('c', []), ('d', ['e'])]
    """
    by_root: dict[str, list[Mapping[str, Any]]] = {}
    for mention in mentions:
        root = str(mention.get("duplicate_of") or mention["id"])
        by_root.setdefault(root, []).append(mention)
    groups = []
    for root, members in by_root.items():
        ordered = sorted(members, key=lambda mention: (mention["id"] != root,
                                                        str(mention.get("created_at", "")),
                                                        str(mention["id"])))
        groups.append(CopyGroup(ordered[0], tuple(ordered[1:])))
    return sorted(groups, key=lambda group: (str(group.first.get("created_at", "")), group.id))
