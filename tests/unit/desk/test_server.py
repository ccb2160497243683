"""DeskThread's life, and the desk when its store fails or is slow, over a real uvicorn."""

import logging
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from pipeline.config import Settings
from pipeline.desk.server import DeskStartError, DeskThread
from pipeline.store.client import ListeningStore, StoreLocation, StoreUnavailable
from pipeline.store.queries import BoundQuery

SECRET = "password=hunter2"


class FailingStore(ListeningStore):
    """A store whose every query raises ``error`` (after ``delay_s``); no engine behind it."""

    def __init__(self, error: Exception | None, delay_s: float = 0.0) -> None:
        super().__init__(None, StoreLocation.parse("http://ch.invalid:8123/mentions"),
                         retention_days=90)
        self.error = error
        self.delay_s = delay_s

    def query(self, bound: BoundQuery) -> list[tuple[Any, ...]]:
        time.sleep(self.delay_s)
        if self.error is not None:
            raise self.error
        return [(1,)]


@contextmanager
def serving(store: ListeningStore) -> Iterator[httpx.Client]:
    thread = DeskThread(Settings(desk_port=0), store)
    url = thread.start()
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            yield client
    finally:
        thread.stop()


@pytest.fixture
def desk_of_a_down_store() -> Iterator[httpx.Client]:
    with serving(FailingStore(StoreUnavailable(
            "ClickHouse http://ch.invalid:8123/mentions: connection refused"))) as desk:
        yield desk


@pytest.fixture
def desk_of_a_broken_store() -> Iterator[httpx.Client]:
    with serving(FailingStore(RuntimeError(f"driver bug, {SECRET}"))) as desk:
        yield desk


def test_start_answers_the_url_of_the_real_port(store: ListeningStore) -> None:
    thread = DeskThread(Settings(desk_port=0), store)
    url = thread.start()
    host, port = urlsplit(url).hostname, urlsplit(url).port
    assert host == "127.0.0.1" and port not in (None, 0)
    assert thread.thread.name == "desk" and thread.thread.daemon
    assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}
    thread.stop()
    assert not thread.thread.is_alive()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/healthz")
    thread.stop()  # a second stop is harmless


def test_start_on_a_taken_port_fails_at_once(desk: httpx.Client, store: ListeningStore) -> None:
    taken = desk.base_url.port
    assert taken is not None
    thread = DeskThread(Settings(desk_port=taken), store, start_timeout_s=30)
    # "could not listen" is the bind error's message; waiting out the start timeout says
    # "did not listen ... within", so the match alone proves it failed at once
    with pytest.raises(DeskStartError, match=f"could not listen on 127.0.0.1:{taken}"):
        thread.start()
    assert not thread.thread.is_alive()
    assert desk.get("/healthz").status_code == 200


def test_a_thread_is_never_the_main_thread_so_signals_stay_with_the_process(
        store: ListeningStore) -> None:
    before = signal.getsignal(signal.SIGTERM)
    thread = DeskThread(Settings(desk_port=0), store)
    thread.start()
    assert signal.getsignal(signal.SIGTERM) is before
    thread.stop()
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_down_store_answers_503(desk_of_a_down_store: httpx.Client) -> None:
    desk = desk_of_a_down_store
    assert desk.get("/healthz").status_code == 200
    ready = desk.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["error"]["field"] is None
    assert "connection refused" in ready.json()["error"]["reason"]
    for path in ("/api/mentions", "/api/mentions.csv", "/api/volume?brand=telvia",
                 "/api/top-voices?brand=telvia", "/api/terms?brand=telvia",
                 "/api/share-of-voice?brands=telvia"):
        answer = desk.get(path)
        assert answer.status_code == 503, path
        assert answer.json() == {"error": {
            "field": None, "reason": "the store is unavailable: ClickHouse "
            "http://ch.invalid:8123/mentions: connection refused"}}


def test_a_bad_parameter_is_400_before_the_store_is_asked(
        desk_of_a_down_store: httpx.Client) -> None:
    assert desk_of_a_down_store.get("/api/mentions?limit=0").status_code == 400


def test_an_unexpected_error_is_logged_and_answers_500_without_details(
        desk_of_a_broken_store: httpx.Client, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="pipeline.desk.app")
    answer = desk_of_a_broken_store.get("/api/volume?brand=telvia")
    assert answer.status_code == 500
    assert answer.json() == {"error": {
        "field": None, "reason": "internal error (the desk's log has the details)"}}
    assert SECRET not in answer.text and "Traceback" not in answer.text
    logged = [record for record in caplog.records if record.name == "pipeline.desk.app"]
    assert len(logged) == 1 and logged[0].exc_info is not None
    assert SECRET in str(logged[0].exc_info[1])


def test_a_slow_store_call_leaves_the_desk_answering() -> None:
    with serving(FailingStore(None, delay_s=2.0)) as desk:
        answers: list[int] = []
        slow = threading.Thread(
            target=lambda: answers.append(httpx.get(desk.base_url.join("/readyz")).status_code))
        slow.start()
        time.sleep(0.3)  # the slow call is in the store by now
        assert desk.get("/healthz").status_code == 200
        # answered while the slow call still holds the store: nothing waited behind it
        assert slow.is_alive() and answers == []
        slow.join()
        assert answers == [200]
