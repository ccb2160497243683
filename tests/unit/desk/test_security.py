"""Sessions, the login throttle and the access rules, without a server."""

from pathlib import Path

import pytest

from pipeline.config import Settings
from pipeline.desk.security import (
    SESSION_COOKIE,
    Access,
    DeskAccessError,
    LoginThrottle,
    Sessions,
    is_loopback,
    local_path,
)
from pipeline.desk.users import Role, add_user


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_session_reads_back_and_a_tampered_or_expired_one_does_not() -> None:
    sessions = Sessions("secret", 3600, always_secure=False)
    cookie = sessions.cookie("ana", "token", {"scheme": "http"})
    value = cookie.split(";")[0].removeprefix(f"{SESSION_COOKIE}=")
    assert sessions.read(value) == ("ana", "token")
    assert sessions.read(value[:-2] + "xx") is None
    assert Sessions("another secret", 3600, always_secure=False).read(value) is None
    assert Sessions("secret", -1, always_secure=False).read(value) is None
    assert sessions.read(None) is None


def test_session_cookies_are_http_only_lax_and_secure_over_https() -> None:
    sessions = Sessions("secret", 3600, always_secure=False)
    plain = sessions.cookie(None, "token", {"scheme": "http"})
    assert "HttpOnly" in plain and "SameSite=Lax" in plain and "Secure" not in plain
    assert "Secure" in sessions.cookie(None, "token", {"scheme": "https"})
    assert "Secure" in Sessions("s", 60, always_secure=True).cookie(None, "t", {"scheme": "http"})
    assert "Max-Age=0" in sessions.ended({"scheme": "http"})


def test_the_throttle_counts_per_user_and_per_address_within_its_window() -> None:
    clock = FakeClock()
    throttle = LoginThrottle(per_user=3, per_address=5, window_s=600, clock=clock)
    for _ in range(3):
        assert throttle.retry_after("ana", "10.0.0.1") is None
        throttle.failed("ana", "10.0.0.1")
    # the user is locked from any address; the address still may try others, twice more
    assert throttle.retry_after("ANA", "10.0.0.9") == 600
    assert throttle.retry_after("luis", "10.0.0.1") is None
    throttle.failed("luis", "10.0.0.1")
    throttle.failed("marta", "10.0.0.1")
    assert throttle.retry_after("pablo", "10.0.0.1") == 600
    clock.now += 601
    assert throttle.retry_after("ana", "10.0.0.1") is None


def test_a_successful_login_forgets_the_users_failures() -> None:
    throttle = LoginThrottle(per_user=2, clock=FakeClock())
    throttle.failed("ana", "10.0.0.1")
    throttle.succeeded("ana")
    throttle.failed("ana", "10.0.0.1")
    assert throttle.retry_after("ana", "10.0.0.1") is None


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("0.0.0.0", False), ("::", False), ("10.1.2.3", False), ("desk.internal", False),
])
def test_only_loopback_addresses_count_as_this_machine(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(("target", "expected"), [
    ("/mentions?q=x", "/mentions?q=x"), ("//evil.example/", "/"), ("/\\evil.example", "/"),
    ("https://evil.example/", "/"), ("", "/"), ("mentions", "/"),
])
def test_only_local_paths_are_redirect_targets(target: str, expected: str) -> None:
    assert local_path(target) == expected


def test_auth_is_off_on_loopback_without_users_and_on_otherwise(tmp_path: Path) -> None:
    assert Access.from_settings(Settings()).auth_on is False
    users = tmp_path / "users.yaml"
    add_user(users, "ana", Role.VIEWER, "correct horse battery")
    assert Access.from_settings(Settings(desk_users_file=users)).auth_on is True
    beyond = Access.from_settings(Settings(desk_host="0.0.0.0", desk_users_file=users))
    assert beyond.auth_on is True


def test_a_desk_beyond_loopback_without_users_does_not_start() -> None:
    with pytest.raises(DeskAccessError, match="PIPELINE_DESK_USERS_FILE"):
        Access.from_settings(Settings(desk_host="0.0.0.0"))


def test_an_unset_session_secret_is_made_per_process_with_a_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    users = tmp_path / "users.yaml"
    add_user(users, "ana", Role.VIEWER, "correct horse battery")
    first = Access.from_settings(Settings(desk_users_file=users))
    second = Access.from_settings(Settings(desk_users_file=users))
    cookie = first.sessions.cookie("ana", "t", {}).split(";")[0].split("=", 1)[1]
    assert second.sessions.read(cookie) is None
    assert "PIPELINE_DESK_SESSION_SECRET is not set" in caplog.text
    shared = Settings(desk_users_file=users, desk_session_secret="s3cret")
    cookie = Access.from_settings(shared).sessions.cookie("ana", "t", {}).split(";")[0]
    assert Access.from_settings(shared).sessions.read(cookie.split("=", 1)[1]) == ("ana", "t")
