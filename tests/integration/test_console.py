"""The console in a real browser: headless Chromium against a real ``mentions desk`` process.

The store is an embedded (chDB) folder loaded with the generated firehose (22 hours up to
now, with a crisis) through ``mentions process`` and ``mentions store load``; the desk runs
with a users file, so every test logs in. Each page is compared with what the JSON API says.
``PIPELINE_SCREENSHOTS_DIR=docs/screenshots`` keeps the screenshots (``make screenshots``).
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from pipeline.desk.i18n import CATALOGS
from tests.integration.console_harness import (
    CHROME_TEXT_JS,
    DESKTOP,
    PASSWORD,
    PHONE,
    DeskProcess,
    browser_client,
    chromium,
    console_errors,
    listed_ids,
    load_store,
    mentions_cli,
    now_utc,
    open_page,
    screenshot,
    start_desk,
    wait_for,
)

pytestmark = pytest.mark.integration

# every page a community manager may open (the users page is an admin's: unit tests)
PAGES = ("/", "/mentions", "/incidents", "/voices", "/themes", "/inbox", "/preferences", "/api")
ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[dict[str, Any]]]:
    folder = tmp_path_factory.mktemp("console")
    store_url = f"chdb://{folder / 'store'}"
    mentions, alerts = load_store(folder, store_url, now_utc())
    assert {alert["status"] for alert in alerts} >= {"open", "resolved"}, alerts
    # the themes job, once, with the real encoder (the desk's own runs are 15 minutes apart)
    mentions_cli("themes", env={"PIPELINE_STORE_URL": store_url})
    return store_url, mentions


@pytest.fixture(scope="module")
def desk(loaded: tuple[str, list[dict[str, Any]]],
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[DeskProcess]:
    folder = tmp_path_factory.mktemp("desk")
    users = folder / "users.yaml"
    mentions_cli("desk", "user", "add", "carla", "--role", "community_manager",
                 "--users-file", str(users), stdin=PASSWORD + "\n")
    process = start_desk(loaded[0], folder / "desk.log", {
        "PIPELINE_DESK_USERS_FILE": str(users), "PIPELINE_DESK_SESSION_SECRET": "integration",
        "PIPELINE_DESK_REFRESH_S": "1"})
    yield process
    process.stop()


@pytest.fixture(scope="module")
def browser(desk: DeskProcess) -> Iterator[Any]:
    with chromium() as driver:
        log_in(driver, desk.url)
        yield driver


def log_in(driver: Any, url: str, then: str = "/") -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{url}{then}")
    assert "/login?next=" in driver.current_url
    driver.find_element(By.ID, "username").send_keys("carla")
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "form[action='/login'] button[type=submit]").click()
    wait_for(driver, f"location.pathname === '{then}' && document.readyState === 'complete'",
             what="the page after login")


def set_language(driver: Any, url: str, language: str) -> None:
    from selenium.webdriver.common.by import By

    open_page(driver, f"{url}/mentions")
    if driver.execute_script("return document.documentElement.lang;") != language:
        driver.find_element(By.CSS_SELECTOR, "button[data-language-switch]").click()
        wait_for(driver, f"document.documentElement.lang === '{language}'", what=language)


def chrome_text(driver: Any) -> str:
    return str(driver.execute_script(CHROME_TEXT_JS))


def foreign_strings(text: str, language: str) -> list[str]:
    """The other language's catalog strings (those that differ) found in ``text``."""
    other = "en" if language == "es" else "es"
    own = set(CATALOGS[language].values())
    found = []
    for value in CATALOGS[other].values():
        if value in own or "{" in value:
            continue
        if re.search(rf"(?<!\w){re.escape(value)}(?!\w)", text):
            found.append(value)
    return found


# -- every page ---------------------------------------------------------------------------


def first_incident(browser: Any, desk: DeskProcess) -> str:
    with browser_client(browser, desk.url) as client:
        incidents = client.get("/api/incidents").json()["incidents"]
    assert incidents, "the crisis core raised no incident over the generated crisis"
    return str(incidents[0]["incident_id"])


def test_every_page_renders_without_console_errors_in_either_language(
        browser: Any, desk: DeskProcess) -> None:
    pages = (*PAGES, f"/incidents/{first_incident(browser, desk)}")
    for language in ("es", "en"):
        set_language(browser, desk.url, language)
        console_errors(browser)
        for path in pages:
            open_page(browser, f"{desk.url}{path}")
            assert browser.execute_script("return document.documentElement.lang;") == language
            assert console_errors(browser) == [], path
            text = chrome_text(browser)
            assert foreign_strings(text, language) == [], (language, path)
            assert not ISO_TIME.search(browser.find_element("tag name", "body").text), path
    set_language(browser, desk.url, "es")


def test_the_overview_draws_a_chart_per_brand_and_the_share_of_voice(
        browser: Any, desk: DeskProcess) -> None:
    open_page(browser, f"{desk.url}/")
    charts = browser.execute_script("return document.querySelectorAll('.plot canvas').length;")
    cards = browser.execute_script("return document.querySelectorAll('article.card').length;")
    assert cards == 3 and charts == cards + 1
    assert browser.execute_script("return document.querySelectorAll('ol.terms li').length;") > 0
    negatives = listed_ids(browser)
    with browser_client(browser, desk.url) as client:
        api = client.get("/api/mentions", params={"kind": "brand", "sentiment": "negative",
                                                  "limit": "6"}).json()
    assert negatives == [mention["id"] for mention in api["mentions"]]


# -- the explorer ---------------------------------------------------------------------------


def search_word(mentions: list[dict[str, Any]]) -> str:
    """A word a few dozen mentions (not all) contain."""
    counts: dict[str, int] = {}
    for mention in mentions:
        for word in set(re.findall(r"[a-z]{6,}", mention["text"].lower())):
            counts[word] = counts.get(word, 0) + 1
    return min((word for word, count in counts.items() if 20 <= count <= 200),
               key=lambda word: (abs(counts[word] - 60), word))


def fill_filters(driver: Any, url: str, **fields: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    open_page(driver, f"{url}/mentions")
    for name, value in fields.items():
        element = driver.find_element(By.ID, name)
        if element.tag_name == "select":
            Select(element).select_by_value(value)
        else:
            element.clear()
            element.send_keys(value)
    driver.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]").click()
    wait_for(driver, "document.readyState === 'complete' && location.search.length > 0")
    open_page(driver, driver.current_url)


def test_search_and_each_filter_narrow_the_list_as_the_api_says(
        browser: Any, desk: DeskProcess, loaded: tuple[str, list[dict[str, Any]]]) -> None:
    mentions = loaded[1]
    source = sorted({mention["source"] for mention in mentions})[0]
    cases = [{"q": search_word(mentions)}, {"brand": "telvia"}, {"lang": "en"},
             {"sentiment": "negative"}, {"source": source}, {"copies": "original"},
             {"copies": "copies"}, {"brand": "acme-mobile", "sentiment": "negative"}]
    with browser_client(browser, desk.url) as client:
        everything = len(every_id(client))
        for fields in cases:
            fill_filters(browser, desk.url, **fields)
            shown = listed_ids(browser)
            api = client.get("/api/mentions", params={**fields, "limit": "25"}).json()
            assert shown and shown == [mention["id"] for mention in api["mentions"]], fields
            assert 0 < len(every_id(client, **fields)) < everything, fields
            assert console_errors(browser) == [], fields


def every_id(client: Any, **params: str) -> list[str]:
    """The ids of every mention the API lists for ``params``, following its cursor."""
    ids: list[str] = []
    cursor = None
    while True:
        page = client.get("/api/mentions", params={
            **params, "limit": "500", **({"cursor": cursor} if cursor else {})}).json()
        ids += [mention["id"] for mention in page["mentions"]]
        if not (cursor := page["next"]):
            return ids


def test_load_more_appends_the_next_page_in_place(browser: Any, desk: DeskProcess) -> None:
    from selenium.webdriver.common.by import By

    open_page(browser, f"{desk.url}/mentions?brand=acme-mobile")
    browser.execute_script("window.notReloaded = true;")
    browser.find_element(By.CSS_SELECTOR, "a[data-load-more]").click()
    wait_for(browser, "document.querySelectorAll('ul.mentions > li').length === 50")
    assert browser.execute_script("return window.notReloaded;") is True
    with browser_client(browser, desk.url) as client:
        api = client.get("/api/mentions", params={"brand": "acme-mobile", "limit": "50"}).json()
    assert listed_ids(browser) == [mention["id"] for mention in api["mentions"]]


def test_the_csv_export_holds_what_the_api_lists(browser: Any, desk: DeskProcess) -> None:
    from selenium.webdriver.common.by import By

    fill_filters(browser, desk.url, brand="telvia", copies="original")
    href = browser.find_element(By.CSS_SELECTOR, "a[data-export]").get_attribute("href")
    # the export's filters: the page's, its period included (the last 24 hours)
    filters = dict(parse_qsl(urlsplit(href).query))
    assert {"brand": "telvia", "copies": "original"}.items() <= filters.items()
    with browser_client(browser, desk.url) as client:
        exported = client.get(href)
        assert exported.status_code == 200
        rows = list(csv.DictReader(io.StringIO(exported.text.lstrip("\ufeff"))))
        ids = every_id(client, **filters)
    assert [row["id"] for row in rows] == ids and ids


# -- incidents ------------------------------------------------------------------------------


def test_the_incidents_page_lists_the_apis_and_opens_one(browser: Any, desk: DeskProcess) -> None:
    from selenium.webdriver.common.by import By

    open_page(browser, f"{desk.url}/incidents")
    shown = browser.execute_script(
        "return Array.from(document.querySelectorAll('[data-incident]'))"
        ".map(item => item.dataset.incident);")
    with browser_client(browser, desk.url) as client:
        api = client.get("/api/incidents").json()["incidents"]
        history = client.get(f"/api/incidents/{api[0]['incident_id']}").json()["history"]
    assert shown == [incident["incident_id"] for incident in api]
    browser.find_element(By.CSS_SELECTOR, "[data-incident] h2 a").click()
    wait_for(browser, "location.pathname.startsWith('/incidents/')")
    open_page(browser, browser.current_url)
    steps = browser.execute_script(
        "return document.querySelectorAll('ol.history > li').length;")
    assert steps == len(history)
    assert browser.execute_script("return !!document.querySelector('.plot canvas');")
    assert console_errors(browser) == []


# -- opinion leaders -------------------------------------------------------------------------


def test_the_voices_page_ranks_what_the_api_ranks_and_opens_the_why(
        browser: Any, desk: DeskProcess) -> None:
    from selenium.webdriver.common.by import By

    open_page(browser, f"{desk.url}/voices?brand=acme-mobile")
    shown = browser.execute_script(
        "const ids = group => Array.from(document.querySelectorAll("
        "`table.leaders[data-group=${group}] tbody.leader`)).map(row => row.dataset.author);"
        "return [ids('outside'), ids('inside')];")
    with browser_client(browser, desk.url) as client:
        api = client.get("/api/leaders", params={"brand": "acme-mobile", "limit": "15"}).json()
    assert shown[0] == [leader["author_id"] for leader in api["outside"]] and shown[0]
    assert shown[1] == [leader["author_id"] for leader in api["inside"]]
    first = browser.find_element(By.CSS_SELECTOR, "table.leaders tbody.leader tr.why summary")
    assert not browser.find_element(By.CSS_SELECTOR, "tbody.leader .recent").is_displayed()
    first.click()
    recent = browser.find_element(By.CSS_SELECTOR, "tbody.leader .recent")
    assert recent.is_displayed()
    assert len(recent.find_elements(By.TAG_NAME, "li")) == len(api["outside"][0]["recent"])
    # every component's points drawn, none wider than the score's bar
    widths = browser.execute_script(
        "return Array.from(document.querySelectorAll('tbody.leader')[0]"
        ".querySelectorAll('.points span')).map(span => span.getBoundingClientRect().width);")
    assert len(widths) == len(api["weights"]) and sum(widths) <= 8 * 16 + 1
    assert console_errors(browser) == []


# -- access ---------------------------------------------------------------------------------


def test_the_themes_page_shows_the_apis_themes_emerging_first(
        browser: Any, desk: DeskProcess) -> None:
    from selenium.webdriver.common.by import By

    open_page(browser, f"{desk.url}/themes")
    brand = browser.find_element(By.ID, "brand").get_attribute("value")
    shown = browser.execute_script(
        "return Array.from(document.querySelectorAll('[data-theme]'))"
        ".map(card => Number(card.dataset.theme));")
    with browser_client(browser, desk.url) as client:
        report = client.get("/api/themes", params={"brand": brand}).json()
    assert report["themes"], report
    assert shown == [theme["theme_id"] for theme in report["themes"]]
    first = browser.find_element(By.CSS_SELECTOR, "[data-theme]")
    assert " · ".join(report["themes"][0]["label"]) in first.text
    emerging = browser.find_elements(By.CSS_SELECTOR, "[data-theme].emerging")
    assert len(emerging) == sum(theme["emerging"] for theme in report["themes"])
    # the first theme shows its samples; the others open on a click
    assert first.find_element(By.CSS_SELECTOR, "details.samples").get_attribute("open")


def test_log_in_and_out(desk: DeskProcess) -> None:
    from selenium.webdriver.common.by import By

    with chromium() as driver:
        log_in(driver, desk.url, then="/mentions")
        assert "carla" in driver.find_element(By.CSS_SELECTOR, ".who").text
        driver.find_element(By.CSS_SELECTOR, "button[data-logout]").click()
        wait_for(driver, "location.pathname === '/login'", what="the login page")
        driver.get(f"{desk.url}/voices")
        assert "/login?next=%2Fvoices" in driver.current_url
        assert console_errors(driver) == []


# -- screenshots ----------------------------------------------------------------------------


def test_screenshots(browser: Any, desk: DeskProcess, tmp_path: Path) -> None:
    folder = Path(os.environ.get("PIPELINE_SCREENSHOTS_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    set_language(browser, desk.url, "es")
    incident = f"/incidents/{first_incident(browser, desk)}"
    for name, path in (("overview", "/"), ("mentions", "/mentions"),
                       ("incidents", "/incidents"), ("incident", incident),
                       ("themes", "/themes"), ("voices", "/voices")):
        open_page(browser, f"{desk.url}{path}")
        assert screenshot(browser, name, folder, DESKTOP).stat().st_size > 10_000
    set_language(browser, desk.url, "en")
    open_page(browser, f"{desk.url}/themes")
    assert screenshot(browser, "themes-en", folder, DESKTOP).stat().st_size > 10_000
    set_language(browser, desk.url, "es")
    browser.set_window_size(*PHONE)
    open_page(browser, f"{desk.url}/mentions")
    assert screenshot(browser, "mentions-phone", folder, PHONE,
                      most_height=PHONE[1]).stat().st_size > 10_000
    browser.set_window_size(*DESKTOP)
