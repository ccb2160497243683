"""The inbox in a real browser: a real ``mentions desk`` process, a real webhook server.

The store is an embedded folder loaded with a handful of scored mentions that need a reply
(``needs_reply`` set, as the reply classifier leaves them); the desk runs with a users file
(a community manager and a viewer), an alert routing file whose destinations are a local HTTP
server, and an inbox file with an SLA and a forwarding rule (billing complaints in Spanish go
to ``customer-care-es``). ``PIPELINE_SCREENSHOTS_DIR`` keeps the screenshots.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.integration.console_harness import (
    DESKTOP,
    PASSWORD,
    DeskProcess,
    browser_client,
    chromium,
    console_errors,
    mentions_cli,
    now_utc,
    screenshot,
    start_desk,
    wait_for,
)
from tests.integration.polling import wait_until
from tests.integration.test_console import log_in

pytestmark = pytest.mark.integration


class Webhooks:
    """A local HTTP server that records every POST (path, idempotency key, body)."""

    def __init__(self) -> None:
        self.received: list[tuple[str, str, dict[str, Any]]] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                received.append((self.path, self.headers.get("idempotency-key", ""),
                                 orjson.loads(self.rfile.read(length))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def to(self, path: str) -> list[tuple[str, str, dict[str, Any]]]:
        return [entry for entry in self.received if entry[0] == path]


def mention(mention_id: str, ago: timedelta, text: str, reason: str, *, lang: str = "es",
            brand: str = "acme-mobile", followers: int = 500, negative: float = 0.1,
            duplicate_of: str | None = None, now: datetime) -> dict[str, Any]:
    label = "negative" if negative > 0.5 else "neutral"
    return {
        "id": mention_id, "source": "test", "created_at": (now - ago).isoformat(),
        "text": text, "lang": lang, "brands": [brand], "url": f"https://x.example/{mention_id}",
        "author": {"id": f"u-{mention_id}", "handle": f"user_{mention_id}",
                   "followers": followers},
        "sentiment": {"label": label, "scores": {"negative": negative, "neutral": 0.9 - negative,
                                                 "positive": 0.1}},
        "needs_reply": reason, "duplicate_of": duplicate_of,
        "duplicate_kind": "near" if duplicate_of else "unique", "copy_count": 1,
    }


def inbox_mentions(now: datetime) -> list[dict[str, Any]]:
    hour = timedelta(hours=1)
    return [
        mention("late", 3 * hour, "@acme llevo tres días sin línea y nadie responde", "complaint",
                negative=0.9, followers=20_000, now=now),
        mention("late-copy", 2 * hour, "@acme llevo tres días sin línea y nadie responde",
                "complaint", negative=0.9, duplicate_of="late", now=now),
        mention("question", timedelta(minutes=5), "@acme ¿cómo activo el roaming en Francia?",
                "question", now=now),
        mention("spam", timedelta(minutes=8), "@acme gana dinero fácil en mi perfil",
                "request", now=now),
        mention("thanks", timedelta(minutes=12), "@acme thanks for the quick fix!", "praise",
                lang="en", brand="nimbus-bank", now=now),
        mention("billing", timedelta(minutes=20), "@acme me habéis cobrado dos veces la factura",
                "complaint", negative=0.8, now=now),
        mention("stale", timedelta(minutes=30), "@acme ¿tenéis tienda en Bilbao?", "question",
                now=now),
        mention("competitor", timedelta(minutes=3), "@telvia ¿por qué no funciona?", "question",
                brand="telvia", now=now),
        mention("none", timedelta(minutes=4), "@acme buenos días", "", now=now),
    ]


@pytest.fixture(scope="module")
def webhooks() -> Iterator[Webhooks]:
    hooks = Webhooks()
    yield hooks
    hooks.server.shutdown()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, webhooks: Webhooks) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("inbox")
    store_url = f"chdb://{folder / 'store'}"
    loaded = folder / "load.jsonl"
    records = [{**record, "needs_reply": record["needs_reply"] or None}
               for record in inbox_mentions(now_utc())]
    loaded.write_bytes(b"".join(orjson.dumps(record) + b"\n" for record in records))
    mentions_cli("store", "load", "--input", str(loaded), env={"PIPELINE_STORE_URL": store_url})
    users = folder / "users.yaml"
    for name, role in (("carla", "community_manager"), ("vera", "viewer"),
                       ("ana", "community_manager")):
        mentions_cli("desk", "user", "add", name, "--role", role, "--users-file", str(users),
                     stdin=PASSWORD + "\n")
    routes, inbox = folder / "routes.yaml", folder / "inbox.yaml"
    routes.write_text(
        f"destinations:\n  customer-care-es: {{url: '{webhooks.url}/care', style: json}}\n"
        f"  pr-team: {{url: '{webhooks.url}/pr', style: slack}}\nroutes: []\n",
        encoding="utf-8")
    inbox.write_text(
        "sla: {default_minutes: 240, brands: {acme-mobile: 60}}\n"
        "templates:\n"
        "  - {name: Disculpa, reason: complaint, lang: es, text: 'Hola @{handle}, lo sentimos'}\n"
        "  - {name: Respuesta, reason: question, lang: es, text: 'Hola @{handle}, te lo "
        "contamos por DM'}\n"
        "forward:\n  - {name: billing-es, reasons: [complaint], langs: [es], "
        "words: [factura, cobr], to: [customer-care-es]}\n", encoding="utf-8")
    env = {"PIPELINE_DESK_USERS_FILE": str(users), "PIPELINE_DESK_SESSION_SECRET": "inbox",
           "PIPELINE_ALERT_ROUTES_FILE": str(routes), "PIPELINE_INBOX_FILE": str(inbox),
           "PIPELINE_INBOX_DB_URL": f"sqlite:///{folder / 'inbox.sqlite'}",
           "PIPELINE_INBOX_POLL_S": "0.3"}
    return {"folder": folder, "store_url": store_url, "env": env}


@pytest.fixture(scope="module")
def desk(setup: dict[str, Any]) -> Iterator[DeskProcess]:
    process = start_desk(setup["store_url"], setup["folder"] / "desk.log", setup["env"])
    yield process
    process.stop()


@pytest.fixture(scope="module")
def browser(desk: DeskProcess) -> Iterator[Any]:
    with chromium() as driver:
        log_in(driver, desk.url, "/inbox")
        yield driver


def open_inbox(driver: Any, url: str, query: str = "") -> None:
    driver.get(f"{url}/inbox{query}")
    wait_for(driver, "document.readyState === 'complete'")


def card(driver: Any, mention_id: str) -> Any:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, f"li.inbox-item[data-id='{mention_id}']")


def listed(driver: Any) -> list[str]:
    return list(driver.execute_script(
        "return Array.from(document.querySelectorAll('li.inbox-item')).map(li => li.dataset.id);"))


def api_item(driver: Any, url: str, mention_id: str) -> dict[str, Any]:
    with browser_client(driver, url) as client:
        answer = client.get(f"/api/inbox/{mention_id}")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


@contextmanager
def logged_in(url: str, name: str) -> Iterator[tuple[httpx.Client, str]]:
    """An HTTP client logged in as ``name``, and its session's CSRF token."""
    with httpx.Client(base_url=url, timeout=30) as client:
        client.post("/login", data={"csrf": csrf_of(client.get("/login").text),
                                    "username": name, "password": PASSWORD, "next": "/inbox"})
        page = client.get("/inbox")
        assert page.status_code == 200 and f"{name} ·" in page.text, page.text[:500]
        yield client, csrf_of(page.text)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


def expect_notice(driver: Any, expected: str) -> None:
    """Wait for the notice ``expected``: until the action's page loads, the last page's shows."""
    wait_for(driver, "document.querySelector('[data-notice]') && "
             f"document.querySelector('[data-notice]').dataset.notice === '{expected}'",
             what=f"the notice {expected!r}")


def test_the_inbox_lists_own_brands_items_most_urgent_first_with_the_overdue_marked(
        browser: Any, desk: DeskProcess) -> None:
    open_inbox(browser, desk.url)
    ids = listed(browser)
    assert ids[0] == "late", ids
    assert set(ids) == {"late", "question", "spam", "thanks", "billing", "stale"}
    late = card(browser, "late")
    assert late.get_attribute("data-overdue") is not None
    assert late.find_element("css selector", "[data-overdue-marker]").is_displayed()
    assert late.find_element("css selector", "[data-copies]").get_attribute("data-copies") == "1"
    assert not card(browser, "question").find_elements("css selector", "[data-overdue-marker]")
    open_inbox(browser, desk.url, "?sort=newest&lang=es&reason=question")
    assert listed(browser) == ["question", "stale"]
    assert console_errors(browser) == []


def test_assign_then_answer_from_a_saved_template_keeps_the_reply(
        browser: Any, desk: DeskProcess) -> None:
    open_inbox(browser, desk.url)
    card(browser, "question").find_element("css selector", "[data-act='assign-me']").click()
    expect_notice(browser, "assign")
    assert "carla" in card(browser, "question").find_element(
        "css selector", "[data-state]").text
    item = card(browser, "question")
    item.find_element("css selector", "[data-panel='answer'] summary").click()
    box = item.find_element("css selector", "textarea[name=reply]")
    assert box.get_attribute("value") == "Hola @user_question, te lo contamos por DM"
    box.send_keys(" (enlace: acme.example/roaming)")
    item.find_element("css selector", "[data-act='answer']").click()
    expect_notice(browser, "answer")
    assert "question" not in listed(browser)
    found = api_item(browser, desk.url, "question")
    assert (found["status"], found["assignee"]) == ("answered", "carla")
    assert found["reply"].endswith("(enlace: acme.example/roaming)")
    assert [(entry["actor"], entry["action"]) for entry in found["history"]] == [
        ("carla", "assign"), ("carla", "answer")]


def test_dismiss_with_a_reason(browser: Any, desk: DeskProcess) -> None:
    from selenium.webdriver.support.ui import Select

    open_inbox(browser, desk.url)
    item = card(browser, "spam")
    item.find_element("css selector", "[data-panel='more'] summary").click()
    Select(item.find_element("css selector", "select[name=reason]")).select_by_value("spam")
    item.find_element("css selector", "[data-act='dismiss']").click()
    expect_notice(browser, "dismiss")
    found = api_item(browser, desk.url, "spam")
    assert (found["status"], found["dismiss_reason"]) == ("dismissed", "spam")


def test_forward_reaches_the_teams_webhook_once_with_its_key(
        browser: Any, desk: DeskProcess, webhooks: Webhooks) -> None:
    from selenium.webdriver.support.ui import Select

    open_inbox(browser, desk.url)
    item = card(browser, "late")
    item.find_element("css selector", "[data-panel='forward'] summary").click()
    Select(item.find_element("css selector", "select[name=destination]")).select_by_value(
        "pr-team")
    item.find_element("css selector", "input[name=note]").send_keys("Cliente con 20k seguidores")
    item.find_element("css selector", "[data-act='forward']").click()
    expect_notice(browser, "forwarded")
    wait_until(lambda: webhooks.to("/pr"), "the forward at the PR webhook", timeout_s=20)
    ((_, key, body),) = webhooks.to("/pr")
    assert key.startswith("inbox/mention/late/pr-team/carla:")
    assert "sin línea" in body["text"] and "Cliente con 20k seguidores" in body["text"]
    wait_until(lambda: api_item(browser, desk.url, "late")["forwards"][0]["state"]
               == "delivered", "the forward marked delivered", timeout_s=20)


def test_a_rule_forwards_billing_complaints_in_spanish_by_itself(
        browser: Any, desk: DeskProcess, webhooks: Webhooks) -> None:
    wait_until(lambda: webhooks.to("/care"), "the rule's forward", timeout_s=20)
    received = webhooks.to("/care")
    assert [(body["mention"]["id"], key) for _, key, body in received] == [
        ("billing", "inbox/mention/billing/customer-care-es/rule:billing-es")]


def test_two_people_on_one_item_the_second_gets_a_conflict(
        browser: Any, desk: DeskProcess) -> None:
    open_inbox(browser, desk.url)  # carla sees "stale" at version 0
    with logged_in(desk.url, "ana") as (client, csrf):  # ana, meanwhile, takes it
        answer = client.post("/api/inbox/stale/actions", headers={"x-csrf-token": csrf},
                             json={"action": "assign", "version": 0, "assignee": "ana"})
        assert answer.status_code == 200, answer.text
        again = client.post("/api/inbox/stale/actions", headers={"x-csrf-token": csrf},
                            json={"action": "dismiss", "version": 0, "reason": "spam"})
        assert again.status_code == 409
        assert again.json()["error"]["current"]["assignee"] == "ana"
    card(browser, "stale").find_element("css selector", "[data-act='assign-me']").click()
    expect_notice(browser, "conflict")
    assert "ana" in browser.find_element("css selector", "[data-notice]").text
    assert api_item(browser, desk.url, "stale")["assignee"] == "ana"


def test_viewers_and_forged_requests_cannot_act(desk: DeskProcess) -> None:
    with logged_in(desk.url, "vera") as (client, csrf):
        refused = client.post("/api/inbox/thanks/actions", headers={"x-csrf-token": csrf},
                              json={"action": "assign", "version": 0, "assignee": "vera"})
        assert refused.status_code == 403
        form = client.post("/inbox/act", data={"csrf": csrf, "id": "thanks", "version": "0",
                                               "action": "dismiss", "reason": "spam"})
        assert form.status_code == 403 and "data-problem=\"act_forbidden\"" in form.text
        forged = client.post("/inbox/act", data={"csrf": "forged", "id": "thanks",
                                                 "version": "0", "action": "dismiss"})
        assert forged.status_code == 403
        assert client.get("/api/inbox/thanks").json()["status"] == "open"


def test_screenshots_in_spanish_and_english(browser: Any, desk: DeskProcess) -> None:
    folder = Path(os.environ.get("PIPELINE_SCREENSHOTS_DIR") or desk.log_path.parent)
    folder.mkdir(parents=True, exist_ok=True)
    open_inbox(browser, desk.url, "?status=all")
    card(browser, "late").find_element("css selector", "[data-panel='answer'] summary").click()
    assert screenshot(browser, "inbox", folder, DESKTOP, most_height=2600).exists()
    browser.find_element("css selector", "button[data-language-switch]").click()
    wait_for(browser, "document.documentElement.lang === 'en'", what="English")
    assert screenshot(browser, "inbox-en", folder, DESKTOP, most_height=2600).exists()
    browser.find_element("css selector", "button[data-language-switch]").click()
    wait_for(browser, "document.documentElement.lang === 'es'", what="Spanish")


def test_the_workflow_survives_a_desk_restart(setup: dict[str, Any], desk: DeskProcess) -> None:
    desk.stop()
    again = start_desk(setup["store_url"], setup["folder"] / "desk-again.log", setup["env"])
    try:
        with logged_in(again.url, "vera") as (client, _):
            found = client.get("/api/inbox/question").json()
        assert (found["status"], found["assignee"]) == ("answered", "carla")
        assert [entry["action"] for entry in found["history"]] == ["assign", "answer"]
    finally:
        again.stop()
