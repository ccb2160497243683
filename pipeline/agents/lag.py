"""Consumer lag on /metrics: one sampler for Faust's consumer and the batched consumers.

A partition's lag is its high watermark less the next offset its consumer reads. Faust's
consumer (the agents) is sampled on a timer from its positions (:func:`positions`); a batched
consumer (:mod:`pipeline.agents.batch_consumer`) after each commit, from the offsets it
committed. Both go through :func:`record_lag`, so both skip partitions the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka.errors import KafkaError

from pipeline.metrics import PipelineMetrics


def record_lag(metrics: PipelineMetrics, consumer: Any, next_offsets: Mapping[Any, int]) -> None:
    """Set the lag of each partition in ``next_offsets`` that ``consumer`` still owns.

    ``consumer`` is Faust's or aiokafka's (``assignment()``, ``highwater(tp)``). A rebalance
    during the caller's awaits may have taken partitions away, and both consumers assert (or
    raise) on the highwater of a partition they do not own; one without a known highwater
    yet is skipped too.
    """
    owned = consumer.assignment()
    for tp, next_offset in next_offsets.items():
        highwater = consumer.highwater(tp) if tp in owned else None
        if highwater is not None:
            metrics.consumer_lag.labels(topic=tp.topic, partition=str(tp.partition)).set(
                max(0, highwater - next_offset)
            )


async def positions(consumer: Any, partitions: Iterable[Any]) -> dict[Any, int]:
    """The next offset ``consumer`` reads of each of ``partitions`` it still owns.

    Checked before each await, because a rebalance during one may take a partition away;
    a partition the broker gives no position for is left out.
    """
    found: dict[Any, int] = {}
    for tp in partitions:
        if tp not in consumer.assignment():
            continue
        try:
            position = await consumer.position(tp)
        except KafkaError:
            continue
        if position is not None:
            found[tp] = position
    return found
