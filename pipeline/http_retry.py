"""How long an HTTP server asks a client to wait: the ``Retry-After`` header.

One reader for every client that backs off on a server's word: the webhook notifier and the
Mastodon and RSS sources.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks for; None if absent or unreadable.

    Both forms of the header are read: delay-seconds and an HTTP date (one without a zone is
    taken as UTC).

    >>> retry_after_seconds("3"), retry_after_seconds("soon")
    (3.0, None)
    """
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)
