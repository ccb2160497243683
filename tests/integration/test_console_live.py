"""The console live: a mention or an incident stored while a page is open appears on it.

An embedded store opens in one process, so new mentions reach it the way they do in the
demo: a worker runs the store sink on the real broker and serves the desk itself
(``PIPELINE_DESK_IN_WORKER``); the test sends scored mentions to ``mentions.scored`` and a
crisis alert to the alerts topic, which the sink stores too.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from pipeline.config import Settings
from pipeline.desk.users import Role, add_user
from pipeline.stages.alerts.record import OPENED
from pipeline.transport.broker import free_port
from tests.incident_alerts import incident
from tests.integration.conftest import produce
from tests.integration.console_harness import (
    PASSWORD,
    browser_client,
    chromium,
    console_errors,
    now_utc,
    open_page,
    wait_for,
)
from tests.integration.polling import wait_until
from tests.integration.test_console import log_in
from tests.integration.test_store_roundtrip import scored_records

pytestmark = pytest.mark.integration


def scored_mention(index: int, minutes_ago: float, label: str = "negative") -> dict[str, Any]:
    return {
        "id": f"live{index}", "text": f"la factura de acme mobile llega mal otra vez ({index})",
        "created_at": (now_utc() - timedelta(minutes=minutes_ago)).isoformat(),
        "source": "twitter", "author": {"id": f"a{index}", "handle": f"vecina{index}",
                                        "followers": 100 + index},
        "url": f"https://x.example/vecina{index}/{index}", "brands": ["acme-mobile"],
        "lang": "es", "duplicate_of": None, "duplicate_kind": "unique", "copy_count": 1,
        "sentiment": {"label": label, "scores": {"negative": 0.8, "neutral": 0.1,
                                                 "positive": 0.1}},
    }


def send(settings: Settings, mentions: list[dict[str, Any]]) -> None:
    for partition, value in scored_records(mentions, settings.partitions):
        produce(settings, [value], topic=settings.topic("scored"), partition=partition)


def test_a_new_mention_appears_on_open_pages_without_a_reload(
        pipeline_settings: Settings, start_worker: Any, tmp_path: Path) -> None:
    users = tmp_path / "users.yaml"
    add_user(users, "carla", Role.COMMUNITY_MANAGER, PASSWORD)
    desk_port = free_port()
    start_worker(pipeline_settings, "store", PIPELINE_STORE_URL=f"chdb://{tmp_path / 'store'}",
                 PIPELINE_DESK_IN_WORKER="true", PIPELINE_DESK_PORT=str(desk_port),
                 PIPELINE_STORE_BATCH_WAIT_S="0.2", PIPELINE_DESK_USERS_FILE=str(users),
                 PIPELINE_DESK_SESSION_SECRET="live", PIPELINE_DESK_REFRESH_S="1")
    url = f"http://127.0.0.1:{desk_port}"
    send(pipeline_settings, [scored_mention(index, 60 - index) for index in range(20)])
    with chromium() as driver:
        log_in(driver, url, then="/mentions")
        with browser_client(driver, url) as client:
            wait_until(lambda: len(client.get("/api/mentions").json()["mentions"]) == 20,
                       "the first mentions in the store")
        for path in ("/mentions", "/"):
            open_page(driver, f"{url}{path}")
            driver.execute_script("window.notReloaded = true;")
            fresh = scored_mention(100 + len(path), 0)
            send(pipeline_settings, [fresh])
            wait_for(driver, f"document.querySelector('li[data-id=\"{fresh['id']}\"]')",
                     timeout_s=60, what=f"{fresh['id']} on {path}")
            assert driver.execute_script("return window.notReloaded;") is True
            first = driver.execute_script(
                "return document.querySelector('ul.mentions > li').dataset.id;")
            assert first == fresh["id"]
            assert console_errors(driver) == []
        # a crisis opens: the incidents page lists it, every page's navigation counts it
        open_page(driver, f"{url}/incidents")
        driver.execute_script("window.notReloaded = true;")
        alerts = incident("acme-mobile", now_utc() - timedelta(minutes=10), (OPENED,))
        produce(pipeline_settings, [orjson.dumps(alert) for alert in alerts],
                topic=pipeline_settings.alerts_topic)
        opened = alerts[0]["incident_id"]
        wait_for(driver, f"document.querySelector('[data-incident=\"{opened}\"]')",
                 timeout_s=60, what="the new incident on /incidents")
        wait_for(driver, "document.querySelector('[data-open-incidents]').textContent === '1'",
                 what="the navigation's count of open incidents")
        assert driver.execute_script("return window.notReloaded;") is True
        assert console_errors(driver) == []
