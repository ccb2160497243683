"""The demo's console login: a users file with one admin and a new password per run."""

from pathlib import Path

from pipeline.demo import DemoOptions, demo_horizon
from pipeline.desk.demo_login import DemoLogin
from pipeline.desk.users import Role, UserDirectory


def test_each_run_makes_a_demo_admin_with_a_new_password(tmp_path: Path) -> None:
    first = DemoLogin.create(tmp_path / "one")
    second = DemoLogin.create(tmp_path / "two")
    assert first.password != second.password and first.session_secret != second.session_secret
    user = UserDirectory(first.users_file).authenticate("demo", first.password)
    assert user is not None and user.role is Role.ADMIN
    assert first.env() == {"PIPELINE_DESK_USERS_FILE": str(first.users_file),
                           "PIPELINE_DESK_SESSION_SECRET": first.session_secret}


def test_the_console_link_covers_the_demos_compressed_event_time() -> None:
    assert demo_horizon(DemoOptions(duration_s=150, time_scale=2400)).total_seconds() == (
        150 * 2400)
    assert demo_horizon(DemoOptions(duration_s=0)).days == 30
