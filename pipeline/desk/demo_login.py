"""The demo's way into the console: a user with a new random password each run.

``mentions demo`` serves the console from its store worker with a login on, like production:
it writes a users file with one ``demo`` admin into the demo's folder, signs sessions with a
key of the run, prints both, and a link to the console whose period covers the demo's
(compressed, partly future) event time.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final
from urllib.parse import urlencode

from pipeline.config import Settings
from pipeline.desk.users import Role, add_user

DEMO_USER: Final = "demo"


@dataclass(frozen=True, slots=True)
class DemoLogin:
    """The demo's users file, its one user and password, and the session key."""

    users_file: Path
    user: str
    password: str
    session_secret: str

    @classmethod
    def create(cls, folder: Path) -> DemoLogin:
        """A users file in ``folder`` with the ``demo`` admin and a new random password."""
        password = secrets.token_urlsafe(12)
        users_file = folder / "desk-users.yaml"
        add_user(users_file, DEMO_USER, Role.ADMIN, password, replace=True)
        return cls(users_file, DEMO_USER, password, secrets.token_urlsafe(32))

    def announce(self, settings: Settings, since: datetime, duration_s: float,
                 time_scale: float) -> str:
        """What the demo prints: the console, a link over its event time, and this login."""
        desk_url = f"http://{settings.desk_host}:{settings.desk_port}"
        until = since + demo_horizon(duration_s, time_scale)
        return (f"desk (console, JSON API): {desk_url}/ reading the store at "
                f"{settings.store_url}\n"
                f"  the demo's event time in the console: {console_url(desk_url, since, until)}\n"
                f"  log in as {self.user} with password {self.password} (new each run)")

    def env(self) -> dict[str, str]:
        """What the worker serving the desk needs to check logins."""
        return {"PIPELINE_DESK_USERS_FILE": str(self.users_file),
                "PIPELINE_DESK_SESSION_SECRET": self.session_secret}


def demo_horizon(duration_s: float, time_scale: float) -> timedelta:
    """How much event time the demo covers: its duration, compressed (a month when endless).

    >>> demo_horizon(150, 2400)
    datetime.timedelta(days=4, seconds=14400)
    """
    if not duration_s:
        return timedelta(days=30)
    return timedelta(seconds=duration_s * time_scale)


def console_url(base: str, since: datetime, until: datetime) -> str:
    """The console's overview at ``base`` over the period ``[since, until)``.

    >>> from datetime import UTC
    >>> console_url("http://127.0.0.1:8080", datetime(2026, 12, 1, tzinfo=UTC),
    ...             datetime(2026, 12, 5, tzinfo=UTC))
    'http://127.0.0.1:8080/?period=custom&since=2026-12-01T00%3A00%3A00Z&until=2026-12-05T00%3A00%3A00Z'
    """
    def iso(moment: datetime) -> str:
        return moment.isoformat(timespec="seconds").replace("+00:00", "Z")

    query = urlencode({"period": "custom", "since": iso(since), "until": iso(until)})
    return f"{base.rstrip('/')}/?{query}"
