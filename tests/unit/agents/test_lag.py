"""The one lag sampler, over a stand-in consumer that loses a partition mid-sample."""

from __future__ import annotations

from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import KafkaTimeoutError
from prometheus_client import CollectorRegistry

from pipeline.agents.lag import positions, record_lag
from pipeline.metrics import PipelineMetrics

P0, P1, P2 = (TopicPartition("mentions.routed", n) for n in range(3))


class Consumer:
    """Owns P0-P2; P1 moves away while its position is awaited; P2's position fails."""

    def __init__(self) -> None:
        self.owned = {P0, P1, P2}
        self.highwaters: dict[Any, int | None] = {P0: 120, P1: 50, P2: None}

    def assignment(self) -> set[Any]:
        return set(self.owned)

    def highwater(self, tp: Any) -> int | None:
        assert tp in self.owned, "consumers assert on a partition they do not own"
        return self.highwaters[tp]

    async def position(self, tp: Any) -> int:
        if tp == P1:
            self.owned.discard(P1)  # a rebalance during the await
        if tp == P2:
            raise KafkaTimeoutError()
        return 100 if tp == P0 else 40


def lag(registry: CollectorRegistry, tp: TopicPartition) -> float | None:
    return registry.get_sample_value(
        "mentions_consumer_lag_messages", {"topic": tp.topic, "partition": str(tp.partition)},
    )


async def test_positions_skip_what_a_rebalance_took_and_what_the_broker_did_not_answer() -> None:
    consumer = Consumer()
    # P1 answered, but is gone now; the sampler must not ask for its highwater
    assert await positions(consumer, [P0, P1, P2]) == {P0: 100, P1: 40}
    registry = CollectorRegistry()
    record_lag(PipelineMetrics(registry), consumer, {P0: 100, P1: 40})
    assert lag(registry, P0) == 20
    assert lag(registry, P1) is None


def test_a_partition_without_a_highwater_yet_or_ahead_of_it_reports_no_negative_lag() -> None:
    consumer = Consumer()
    registry = CollectorRegistry()
    record_lag(PipelineMetrics(registry), consumer, {P0: 130, P2: 7})
    assert lag(registry, P0) == 0
    assert lag(registry, P2) is None
