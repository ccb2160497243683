"""The console's browser harness: a real ``mentions desk`` process and a headless Chromium.

Chromium and its driver are Debian's (``/usr/bin/chromium``, ``/usr/bin/chromedriver``;
``.ci/run`` installs them). Selenium is handed both paths, so Selenium Manager never looks for
(or downloads) a browser; a missing one fails the tests with the command that installs it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from pipeline.config import Settings
from pipeline.connectors.generator import CrisisPlan, FirehoseGenerator, daily_factor
from pipeline.stages.brands import load_brand_rules
from pipeline.stages.crisis import CrisisConfig, PartitionMonitor
from tests.crisis_scenario import typed

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
DESKTOP = (1366, 900)
PHONE = (390, 844)
PASSWORD = "correct horse battery staple"

# what a page shows, less what the data says and code (API parameter names): for the
# language checks
CHROME_TEXT_JS = """
const parts = [];
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
while (walker.nextNode()) {
  const node = walker.currentNode, parent = node.parentElement;
  if (!parent || parent.closest('.user-content, code, script, style, [hidden]')) continue;
  if (!parent.getClientRects().length) continue;
  if (node.textContent.trim()) parts.push(node.textContent.trim());
}
return parts.join('\\n');
"""


def mentions_cli(*args: str, env: dict[str, str] | None = None,
                 stdin: str | None = None) -> str:
    """Run ``mentions ...`` in a new process; its standard output."""
    completed = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args], input=stdin, capture_output=True,
        text=True, timeout=300, check=False, env={**os.environ, "HF_HUB_OFFLINE": "1",
                                                  **(env or {})})
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed.stdout


# the crisis detector learns a day of each brand before it may alert: 34 hours of history, a
# crisis 6 hours before now (inside the pages' default 24 hours)
HISTORY = timedelta(hours=34)


def firehose_mentions(now: datetime, count: int = 2500) -> list[dict[str, Any]]:
    """Generated raw mentions over the 34 hours before ``now``, with a crisis 6 hours ago."""
    start = now - HISTORY
    crisis_start, crisis_duration = now - timedelta(hours=6), timedelta(hours=2)
    # the generator thins a crisis at night like the background: scaled back up by its
    # quietest moment, so the loaded store holds a detected incident whatever the hour of the run
    quietest = min(daily_factor(crisis_start + crisis_duration * step / 8) for step in range(9))
    crisis = CrisisPlan(brand_id="acme-mobile", start_after=crisis_start - start,
                        duration=crisis_duration, intensity=5.0 / quietest)
    firehose = FirehoseGenerator(
        seed=5, start=start, rate_per_s=count / (HISTORY.total_seconds() * 0.8), crisis=crisis)
    end = now - timedelta(minutes=10)
    mentions = []
    for mention in firehose.mentions():
        if datetime.fromisoformat(mention["created_at"]) >= end:
            break
        mentions.append(mention)
    return mentions


def crisis_alerts(mentions: list[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """The alerts the crisis stage's core raises over ``mentions`` (in event-time order)."""
    rules = load_brand_rules(Settings().brands_file)
    monitor = PartitionMonitor(
        CrisisConfig.for_brands({rule.id: rule.min_crisis_volume for rule in rules
                                 if rule.min_crisis_volume}),
        brand_names={rule.id: rule.name for rule in rules})
    ordered = typed(sorted(mentions, key=lambda mention: mention["created_at"]))
    alerts = []
    for offset, start in enumerate(range(0, len(ordered), 20), 1):
        alerts += monitor.apply(offset, ordered[start:start + 20]).alerts
    alerts += monitor.close_until(now)
    return [alert.to_dict() for alert in alerts]


def load_store(folder: Path, store_url: str,
               now: datetime) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Generated mentions through the offline pipeline and the crisis core into the store.

    Answers the scored mentions and the alerts, both loaded by ``mentions store load``.
    """
    raw, scored = folder / "raw.jsonl", folder / "scored.jsonl"
    raw.write_bytes(b"".join(orjson.dumps(mention) + b"\n"
                             for mention in firehose_mentions(now)))
    mentions_cli("process", "--input", str(raw), "--output", str(scored))
    mentions = [orjson.loads(line) for line in scored.read_bytes().splitlines()]
    alerts = crisis_alerts(mentions, now)
    loaded = folder / "load.jsonl"
    loaded.write_bytes(scored.read_bytes() + b"".join(orjson.dumps(alert) + b"\n"
                                                      for alert in alerts))
    mentions_cli("store", "load", "--input", str(loaded), env={"PIPELINE_STORE_URL": store_url})
    return mentions, alerts


@dataclass
class DeskProcess:
    """A running ``mentions desk`` and where it listens."""

    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_desk(store_url: str, log_path: Path, env: dict[str, str]) -> DeskProcess:
    """``mentions desk --port 0`` over ``store_url``; waits until it answers /readyz."""
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "desk", "--port", "0", "--store-url", store_url],
        env={**os.environ, **env}, stdout=log_path.open("wb"), stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    desk = DeskProcess(process, "", log_path)
    while time.monotonic() < deadline and process.poll() is None:
        found = re.search(r"desk on (http://[\d.]+:\d+)/", desk.log())
        if found:
            desk.url = found.group(1)
            try:
                if httpx.get(f"{desk.url}/readyz", timeout=5).status_code == 200:
                    return desk
            except httpx.HTTPError:
                pass
        time.sleep(0.3)
    desk.stop()
    pytest.fail(f"mentions desk did not start:\n{desk.log()[-3000:]}")


def require_browser() -> None:
    """Fail (never skip) where Debian's Chromium or its driver is missing."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing:
        pytest.fail(f"the console's browser tests need {' and '.join(missing)}: "
                    "apt-get install chromium chromium-driver (.ci/run does)")


@contextmanager
def chromium(size: tuple[int, int] = DESKTOP, language: str = "es-ES") -> Iterator[Any]:
    """A headless Chromium driven by Selenium through Debian's chromedriver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    require_browser()
    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", f"--window-size={size[0]},{size[1]}",
                     "--force-device-scale-factor=1", "--hide-scrollbars", f"--lang={language}"):
        options.add_argument(argument)
    options.add_experimental_option("prefs", {"intl.accept_languages": language})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # the browser's own widgets (a date field) follow its process locale, not --lang (with
    # Debian's chromium-l10n; without it they stay en-US)
    locale = language.replace("-", "_") + ".UTF-8"
    service = Service(executable_path=str(CHROMEDRIVER),
                      env={**os.environ, "LANG": locale, "LANGUAGE": language.split("-")[0]})
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def console_errors(driver: Any) -> list[str]:
    """The browser console's errors since the last call."""
    return [entry["message"] for entry in driver.get_log("browser")
            if entry["level"] == "SEVERE"]


def wait_for(driver: Any, script: str, timeout_s: float = 20, what: str = "") -> Any:
    """Poll a JavaScript expression until it is truthy; its value."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = driver.execute_script(f"return {script};")
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what or script}")


def open_page(driver: Any, url: str) -> None:
    """Load ``url`` and wait until its script has drawn the charts and the status line."""
    driver.get(url)
    wait_for(driver, "document.readyState === 'complete'")
    wait_for(driver, "!document.getElementById('status') || "
             "document.querySelector('#status [data-state]')", what="the status line")
    wait_for(driver, "Array.from(document.querySelectorAll('[data-chart]'))"
             ".every(holder => holder.querySelector('canvas'))", what="the charts")


def listed_ids(driver: Any) -> list[str]:
    """The ids of the mentions a page lists, in order."""
    return list(driver.execute_script(
        "return Array.from(document.querySelectorAll('ul.mentions > li[data-id]'))"
        ".map(item => item.dataset.id);"))


def browser_client(driver: Any, url: str) -> httpx.Client:
    """An HTTP client holding the browser's session (for the API the page is compared with)."""
    cookies = {cookie["name"]: cookie["value"] for cookie in driver.get_cookies()}
    return httpx.Client(base_url=url, cookies=cookies, timeout=60)


def screenshot(driver: Any, name: str, folder: Path, size: tuple[int, int],
               most_height: int = 2000) -> Path:
    """A PNG of the page at ``size``'s width, as tall as the page up to ``most_height``."""
    width = size[0]
    height = min(most_height, int(driver.execute_script(
        "return document.documentElement.scrollHeight;")))
    driver.set_window_size(width, max(size[1], height))
    time.sleep(0.5)  # the charts follow the new size
    path = folder / f"{name}.png"
    driver.save_screenshot(str(path))
    driver.set_window_size(*size)
    return path


def now_utc() -> datetime:
    return datetime.now(UTC)
