"""Hostile requests to the desk: every page and API route, every query parameter, static file
paths and forged sessions. Each gets a clear answer (2xx for what is only an odd value, 4xx
for what is refused), never a 500, never a trace or a file's content, and the store is left
as it was."""

import re
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from pipeline.store.client import ListeningStore
from tests.unit.desk import test_console
from tests.unit.desk.conftest import COUNT
from tests.unit.desk.test_console import every_route, log_in

# the console tests' fixtures: a desk with users and sessions on, and its users file
guarded, users_file = test_console.guarded, test_console.users_file

# every query parameter a desk route reads
PARAMETERS = ("q", "brand", "brands", "lang", "source", "sentiment", "kind", "status", "copies",
              "since", "until", "period", "tz", "interval", "limit", "cursor", "newer_than",
              "next")
HOSTILE_VALUES = (
    "' OR 1=1; DROP TABLE mentions.brand_mentions; --",
    "\x00\x01\x1b[31m 𝔸𝕔𝕞𝕖 \u202e <script>alert(1)</script>",
    "../../../../etc/passwd",
    "9" * 20_000,
)
LEAKS = re.compile(r"Traceback|DB::Exception|Code: \d+\.|/work/|site-packages|File \"")


def assert_clear(answer: httpx.Response, what: str) -> None:
    assert answer.status_code < 500, f"{what}: {answer.status_code}"
    assert not LEAKS.search(answer.text), f"{what} leaked: {answer.text[:300]}"


@pytest.mark.parametrize("value", HOSTILE_VALUES, ids=lambda value: repr(value)[:24])
def test_every_parameter_of_every_route_takes_hostile_values_without_a_500_or_a_leak(
        guarded: httpx.Client, store: ListeningStore, users_file: Path,
        value: str) -> None:
    log_in(guarded, "adrian")  # an admin reaches every route
    routes = [path for path in every_route(guarded, store, users_file)
              if path not in ("/login", "/logout")]
    for path in routes:
        for name in PARAMETERS:
            assert_clear(guarded.get(path, params={name: value}), f"{path}?{name}=")
        assert_clear(guarded.get(path.replace("/x", "/" + quote(value, safe=""))),
                     f"{path} with {value!r}")
    assert store.count() == COUNT


@pytest.mark.parametrize("path", [
    "/static/../../config.py",
    "/static/%2e%2e/%2e%2e/config.py",
    "/static/..%2f..%2fconfig.py",
    "/static/%2e%2e%2f%2e%2e%2f%2e%2e%2fetc/passwd",
    "/static//etc/passwd",
    "/static/....//....//config.py",
    "/static/%00console.css",
    "/static/console.css%00.py",
])
def test_static_paths_outside_the_static_folder_are_not_found(
        guarded: httpx.Client, path: str) -> None:
    answer = guarded.get(path)
    # 303: the client resolved the dots to a path outside /static, which is a login redirect
    assert answer.status_code in (303, 400, 404), (path, answer.status_code)
    assert answer.status_code != 303 or answer.headers["location"].startswith("/login")
    assert "root:" not in answer.text and "class Settings" not in answer.text


@pytest.mark.parametrize("cookie", [
    "garbage",
    "eyJ1IjoiYWRyaWFuIiwiYyI6ImZvcmdlZCJ9.forged.signature",
    "x" * 8000,
])
def test_a_forged_session_is_an_anonymous_one(guarded: httpx.Client, cookie: str) -> None:
    session_cookie = next(iter(guarded.get("/login").cookies.keys()), "session")
    guarded.cookies.clear()
    guarded.cookies.set(session_cookie, cookie)
    answer = guarded.get("/api/mentions")
    assert answer.status_code == 401
    assert_clear(guarded.get("/users"), "/users with a forged session")
    assert guarded.get("/users").status_code == 303
    forged = guarded.post("/preferences", data={"lang": "en", "csrf": "forged"})
    assert forged.status_code in (303, 403)


def test_huge_bodies_and_headers_get_a_clear_answer(
        guarded: httpx.Client, store: ListeningStore) -> None:
    assert_clear(guarded.post("/login", data={"csrf": "x", "username": "a" * 1_000_000,
                                              "password": "b"}), "a huge login form")
    assert_clear(guarded.get("/api/mentions", headers={"x-forwarded-for": "1." * 4000}),
                 "a huge header")
    assert store.count() == COUNT


@pytest.mark.parametrize("zone", ["Europe/../../etc/passwd", "x" * 5000, "\\x00"])
def test_a_hostile_time_zone_cookie_or_parameter_falls_back_or_is_refused(
        guarded: httpx.Client, zone: str) -> None:
    log_in(guarded, "vera")
    guarded.cookies.set("desk_tz", quote(zone, safe=""))
    assert guarded.get("/mentions").status_code == 200
    answer = guarded.get("/api/mentions", params={"tz": zone})
    assert answer.status_code == 400 and answer.json()["error"]["field"] == "tz"
