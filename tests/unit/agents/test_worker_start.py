import logging

import pytest
from kafka.errors import KafkaTimeoutError

from pipeline.agents.worker import ensure_topics_when_reachable
from pipeline.config import Settings, load_settings


def test_a_worker_waits_for_its_broker_with_backoff_and_says_so_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    attempts: list[int] = []
    slept: list[float] = []

    def broker_up_on_the_seventh_try(settings: Settings) -> list[str]:
        attempts.append(1)
        if len(attempts) < 7:
            raise KafkaTimeoutError("Unable to bootstrap")
        return ["t.raw"]

    with caplog.at_level(logging.ERROR):
        created = ensure_topics_when_reachable(
            load_settings(broker="127.0.0.1:1"), ensure=broker_up_on_the_seventh_try,
            sleep=slept.append)
    assert created == ["t.raw"]
    assert slept == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0]
    said = [record.getMessage() for record in caplog.records]
    assert len(said) == 1 and "broker not reachable at 127.0.0.1:1" in said[0]
