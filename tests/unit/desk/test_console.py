"""The console's pages over HTTP: a real uvicorn, the desk's store, no browser.

The browser tests (``tests/integration/test_console.py``) drive the same pages in Chromium;
these check what needs no script: what each page says and in which language, that it lists
what the API answers, and who may see it.
"""

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from pipeline.config import Settings
from pipeline.desk.i18n import CATALOGS
from pipeline.desk.server import DeskThread
from pipeline.desk.users import Role, add_user
from pipeline.store.client import ListeningStore
from tests.unit.desk.conftest import NOW

PAGES = ("/", "/mentions", "/incidents", "/voices", "/themes", "/inbox", "/preferences",
         "/users", "/api")
PASSWORD = "correct horse battery"
ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")


@contextmanager
def serving(store: ListeningStore, clock: Any = lambda: NOW,
            **settings: Any) -> Iterator[httpx.Client]:
    thread = DeskThread(Settings(desk_port=0, **settings), store, clock=clock)
    url = thread.start()
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            yield client
    finally:
        thread.stop()


@pytest.fixture(scope="module")
def users_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("users") / "users.yaml"
    for name, role in (("vera", Role.VIEWER), ("carla", Role.COMMUNITY_MANAGER),
                       ("adrian", Role.ADMIN)):
        add_user(path, name, role, PASSWORD)
    return path


@pytest.fixture
def guarded(store: ListeningStore, users_file: Path) -> Iterator[httpx.Client]:
    with serving(store, desk_users_file=users_file, desk_session_secret="unit") as client:
        yield client


def visible_text(html: str) -> str:
    html = re.sub(r"<script\b.*?</script>", " ", html, flags=re.S)
    return re.sub(r"<[^>]+>", " ", html)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF token on the page"
    return found.group(1)


def log_in(client: httpx.Client, name: str, password: str = PASSWORD) -> httpx.Response:
    form = client.get("/login")
    return client.post("/login", data={"csrf": csrf_of(form.text), "username": name,
                                       "password": password, "next": "/mentions"})


def listed_ids(html: str) -> list[str]:
    return re.findall(r'<li class="mention" data-id="([^"]+)"', html)


# -- pages and languages --------------------------------------------------------------------


@pytest.mark.parametrize("path", PAGES)
def test_every_page_renders_in_spanish_with_no_raw_timestamps(desk: httpx.Client,
                                                              path: str) -> None:
    answer = desk.get(path)
    assert answer.status_code == 200, answer.text[:2000]
    assert '<html lang="es">' in answer.text
    assert "Resumen" in answer.text and "Menciones" in answer.text
    assert not ISO_TIME.search(visible_text(answer.text)), path
    assert "default-src 'self'" in answer.headers["content-security-policy"]


def test_the_language_switch_turns_every_label_english(desk: httpx.Client) -> None:
    page = desk.get("/mentions")
    switched = desk.post("/preferences", data={"csrf": csrf_of(page.text), "lang": "en",
                                               "tz": "America/New_York", "next": "/mentions"})
    assert (switched.status_code, switched.headers["location"]) == (303, "/mentions")
    english = desk.get("/mentions")
    assert '<html lang="en">' in english.text
    text = visible_text(english.text)
    for key in ("mentions.title", "filters.search", "filters.brand", "nav.incidents"):
        assert CATALOGS["en"][key] in text
        assert CATALOGS["es"][key] not in text
    assert "America/New_York" in text
    desk.cookies.clear()


def test_the_catalogs_have_the_same_keys_and_placeholders() -> None:
    spanish, english = CATALOGS["es"], CATALOGS["en"]
    assert set(spanish) == set(english)
    for key, text in spanish.items():
        assert set(re.findall(r"{(\w+)}", text)) == set(re.findall(r"{(\w+)}", english[key])), key


def test_a_bad_filter_is_a_page_that_says_which_in_the_readers_language(
        desk: httpx.Client) -> None:
    answer = desk.get("/mentions", params={"period": "custom", "since": "yesterday"})
    assert answer.status_code == 400
    assert "Filtro no válido" in answer.text and "«desde»" in answer.text


# -- what the pages list ----------------------------------------------------------------------


@pytest.mark.parametrize("params", [
    {}, {"brand": "telvia"}, {"q": "factura"}, {"lang": "en"}, {"sentiment": "negative"},
    {"copies": "original"}, {"copies": "copies", "brand": "acme-mobile"},
    {"period": "custom", "since": "2026-11-02T10:00", "until": "2026-11-02T10:30"},
])
def test_the_explorer_lists_what_the_api_answers(desk: httpx.Client,
                                                 params: dict[str, str]) -> None:
    page = desk.get("/mentions", params=params)
    assert page.status_code == 200
    api_params = {name: value for name, value in params.items() if name != "period"}
    api_params.setdefault("since", (NOW - timedelta(hours=24)).isoformat())
    api_params.update(tz="Europe/Madrid", limit="25")
    api = desk.get("/api/mentions", params=api_params).json()
    assert listed_ids(page.text) == [mention["id"] for mention in api["mentions"]]
    assert ('data-load-more' in page.text) == (api["next"] is not None)


def test_load_more_and_live_fragments_answer_the_next_and_the_newer_mentions(
        desk: httpx.Client) -> None:
    first = desk.get("/fragments/mentions", params={"brand": "telvia"})
    cursor = first.headers["x-next-cursor"]
    more = desk.get("/fragments/mentions", params={"brand": "telvia", "cursor": cursor})
    api = desk.get("/api/mentions", params={"brand": "telvia", "limit": "50"}).json()
    assert listed_ids(first.text) + listed_ids(more.text) == [m["id"] for m in api["mentions"]]
    newest = api["mentions"][2]["created_at"]
    newer = desk.get("/fragments/mentions", params={"brand": "telvia", "newer_than": newest})
    assert listed_ids(newer.text) == [m["id"] for m in api["mentions"][:3]]


def test_the_status_line_says_when_the_data_is_stale(store: ListeningStore) -> None:
    later = lambda: datetime.now(UTC) + timedelta(hours=2)  # noqa: E731
    with serving(store, clock=later, desk_stale_after_s=600) as client:
        assert 'data-state="stale"' in client.get("/fragments/status").text
    with serving(store, clock=lambda: datetime.now(UTC)) as client:
        assert 'data-state="fresh"' in client.get("/fragments/status").text


# -- access ---------------------------------------------------------------------------------


def every_route(client: httpx.Client, store: ListeningStore, users_file: Path) -> list[str]:
    from pipeline.desk.app import build_desk

    app = build_desk(store, settings=Settings(desk_users_file=users_file))
    paths = [getattr(route, "path", "") for route in app.routes]
    return [re.sub(r"{[^}]+}", "x", path) for path in paths if path and path != "/static"]


def test_anonymous_requests_are_refused_everywhere_but_health(
        guarded: httpx.Client, store: ListeningStore, users_file: Path) -> None:
    routes = every_route(guarded, store, users_file)
    assert {"/", "/mentions", "/api/mentions", "/api/mentions.csv", "/fragments/status"} <= set(
        routes)
    for path in routes:
        answer = guarded.get(path)
        if path in ("/healthz", "/readyz", "/login"):
            assert answer.status_code == 200, path
        elif path.startswith(("/api", "/fragments/")):
            assert answer.status_code == 401, path
            assert answer.json()["error"]["reason"].startswith("log in first"), path
        else:
            assert answer.status_code == 303, path
            assert answer.headers["location"].startswith("/login?next="), path
    assert guarded.get("/static/console.css").status_code == 200


def test_log_in_then_out(guarded: httpx.Client) -> None:
    assert log_in(guarded, "vera", "not the password").status_code == 401
    answer = log_in(guarded, "vera")
    assert (answer.status_code, answer.headers["location"]) == (303, "/mentions")
    page = guarded.get("/mentions")
    assert page.status_code == 200 and "vera" in page.text
    assert guarded.get("/api/mentions", params={"limit": "1"}).status_code == 200
    out = guarded.post("/logout", data={"csrf": csrf_of(page.text)})
    assert (out.status_code, out.headers["location"]) == (303, "/login")
    assert guarded.get("/mentions").status_code == 303


def test_state_changing_posts_need_the_sessions_csrf_token(guarded: httpx.Client) -> None:
    form = guarded.get("/login")
    data = {"username": "vera", "password": PASSWORD}
    assert guarded.post("/login", data={**data, "csrf": "forged"}).status_code == 403
    foreign = guarded.post("/login", data={**data, "csrf": csrf_of(form.text)},
                           headers={"origin": "https://evil.example"})
    assert foreign.status_code == 403
    log_in(guarded, "vera")
    assert guarded.post("/logout", data={}).status_code == 403
    assert guarded.post("/preferences", data={"lang": "en"}).status_code == 403


def test_repeated_failed_logins_are_throttled(guarded: httpx.Client) -> None:
    for _ in range(5):
        assert log_in(guarded, "adrian", "wrong password!").status_code == 401
    throttled = log_in(guarded, "adrian")
    assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) > 0
    assert "Demasiados intentos" in throttled.text


@pytest.mark.parametrize(("name", "export", "users_page"), [
    ("vera", 403, 403), ("carla", 200, 403), ("adrian", 200, 200),
])
def test_roles_decide_who_exports_and_who_sees_the_users(
        guarded: httpx.Client, name: str, export: int, users_page: int) -> None:
    log_in(guarded, name)
    assert guarded.get("/api/mentions.csv", params={"limit": "5"}).status_code == export
    assert ("data-export" in guarded.get("/mentions").text) == (export == 200)
    assert guarded.get("/users").status_code == users_page
