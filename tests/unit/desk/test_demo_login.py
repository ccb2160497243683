"""The demo's console login: a users file with one admin and a new password per run."""

from datetime import UTC, datetime
from pathlib import Path

from pipeline.config import Settings
from pipeline.desk.demo_login import DemoLogin, demo_horizon
from pipeline.desk.users import Role, UserDirectory


def test_each_run_makes_a_demo_admin_with_a_new_password(tmp_path: Path) -> None:
    first = DemoLogin.create(tmp_path / "one")
    second = DemoLogin.create(tmp_path / "two")
    assert first.password != second.password and first.session_secret != second.session_secret
    user = UserDirectory(first.users_file).authenticate("demo", first.password)
    assert user is not None and user.role is Role.ADMIN
    assert first.env() == {"PIPELINE_DESK_USERS_FILE": str(first.users_file),
                           "PIPELINE_DESK_SESSION_SECRET": first.session_secret}


def test_the_console_link_covers_the_demos_compressed_event_time(tmp_path: Path) -> None:
    assert demo_horizon(150, 2400).total_seconds() == 150 * 2400
    assert demo_horizon(0, 2400).days == 30
    login = DemoLogin.create(tmp_path)
    since = datetime(2026, 12, 5, 12, tzinfo=UTC)
    settings = Settings(desk_port=8080, store_url="chdb:///tmp/store")
    lines = login.announce(settings, since, 150, 2400).splitlines()
    assert lines[1].endswith("/?period=custom&since=2026-12-05T12%3A00%3A00Z"
                             "&until=2026-12-09T16%3A00%3A00Z")
    assert lines[2] == f"  log in as demo with password {login.password} (new each run)"
