"""Faust's aiokafka transport with the consumer's fetch wait taken from our settings.

Faust creates its worker consumer with ``fetch_max_wait_ms=1500`` written into the call and
no setting for it. On Apache Kafka that costs nothing while data flows, because the broker
answers a waiting fetch as soon as data arrives. The embedded Tansu broker answers only when
the wait has passed if the partition was empty when the fetch came, so every agent that
caught up with its input waited up to 1.5 s for the next record: most of the dedup hop's
latency and the idle tail of every drain in ``benchmarks/pipeline.py``.

:func:`install` replaces the app's consumer transport with this subclass before the worker
starts; everything else is Faust's own code. aiokafka 0.14 reads the wait from the
consumer's ``_fetch_max_wait_ms`` when the consumer starts (its Fetcher is built then), so
setting that attribute on the freshly built, not yet started, consumer is the whole change.
``tests/unit/test_faust_kafka.py`` checks that this still holds for the installed versions.

The same consumer also guards against records Faust skips (:class:`OffsetGuard`). Faust's
fetch loop silently passes over the records of a partition it holds paused while the
aiokafka position has already moved past them; if the partition is resumed while a fetch
result holding them is being handed out, the rest of that result is delivered, and Faust
books the records it passed over as a gap in the offsets (as a compacted topic has) and
commits past them. Seen in the scale-out test after a rebalance: one worker passed over routed
offsets 25-41, delivered 42-49, and the commit went past 41; 13 micro-batches were never
processed. Our stream topics are never compacted nor transactional, so their offsets have
no gaps: a record that comes after a hole means records were passed over, and the consumer
seeks back to the first one missing instead of delivering it. (Topics that may have gaps
are Faust's changelogs, which the guard leaves alone, and any topic written with
transactions, whose commit markers take offsets: Faust's exactly-once mode, which this app
does not use, would need the guard to learn about those.)
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, cast

from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, Message

log = logging.getLogger(__name__)


# rewinds to one offset before the records are taken as gone from the broker
REWINDS_BEFORE_GIVING_UP = 3
# the guard's verdicts on a record
DELIVER, REWIND, DROP, GIVE_UP = "deliver", "rewind", "drop", "give_up"
# called with (topic, outcome): "reread" after a rewind, "given_up" when records are gone
RewindListener = Callable[[str, str], None]


@dataclass
class OffsetGuard:
    """The next offset each stream partition must deliver, and what to do with a record.

    :meth:`deliver` answers ``DELIVER``; ``REWIND`` (records before this one were passed
    over: seek back to :meth:`next_offset`); ``DROP`` (the rest of the partition's records
    in a fetch result after a rewind: they come again); or ``GIVE_UP`` (deliver it: after a
    few rewinds to one offset, a record still past it means the records before it are gone
    from the broker, deleted by retention; the loss is logged as an error).
    """

    expected: dict[TP, int] = field(default_factory=dict)
    rewinds: dict[TP, tuple[int, int]] = field(default_factory=dict)
    rewinding: set[TP] = field(default_factory=set)

    def start_at(self, partition: TP, offset: int | None) -> None:
        """The partition was sought to ``offset`` (``None``: unknown, take what comes)."""
        if offset is None:
            self.expected.pop(partition, None)
        else:
            self.expected[partition] = offset

    def forget(self) -> None:
        """A new assignment: nothing is known until the partitions are sought."""
        self.expected.clear()
        self.rewinds.clear()
        self.rewinding.clear()

    def next_offset(self, partition: TP) -> int:
        """The offset to seek back to after a "rewind"."""
        return self.expected[partition]

    def deliver(self, partition: TP, offset: int) -> str:
        """The verdict for the record at ``offset`` of ``partition``."""
        if partition in self.rewinding:
            return DROP
        expected = self.expected.get(partition)
        if expected is None or offset == expected:
            self.expected[partition] = offset + 1
            return DELIVER
        if offset < expected:
            # a record read again: Faust's own read offset tells whether it was delivered
            return DELIVER
        rewound_to, times = self.rewinds.get(partition, (expected, 0))
        times = times + 1 if rewound_to == expected else 1
        if times > REWINDS_BEFORE_GIVING_UP:
            log.error("%s: records %d-%d are no longer on the broker; going on from %d",
                      partition, expected, offset - 1, offset)
            self.expected[partition] = offset + 1
            return GIVE_UP
        self.rewinds[partition] = (expected, times)
        self.rewinding.add(partition)
        return REWIND

    def fetch_done(self) -> None:
        """One fetch result has been handed out: after a rewind, the next one is fresh."""
        self.rewinding.clear()


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = transport.fetch_max_wait_ms
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.offset_guard = OffsetGuard()

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def perform_seek(self) -> None:
        await super().perform_seek()
        # Faust's read offsets now hold the committed offsets: the next records to deliver
        for partition, offset in list(self._read_offset.items()):
            if not self._is_changelog_tp(partition):
                self.offset_guard.start_at(partition, offset)

    async def seek(self, partition: TP, offset: int) -> None:
        await super().seek(partition, offset)
        if not self._is_changelog_tp(partition):
            self.offset_guard.start_at(partition, offset)

    async def on_partitions_assigned(self, assigned: Any, generation_id: int = 0) -> None:
        self.offset_guard.forget()
        await super().on_partitions_assigned(assigned, generation_id)

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Message]]:
        guard = self.offset_guard
        try:
            async for partition, message in super().getmany(timeout):
                # changelogs may be compacted: gaps there are real, Faust handles them
                if self._is_changelog_tp(partition):
                    yield partition, message
                    continue
                verdict = guard.deliver(partition, message.offset)
                if verdict == DELIVER:
                    yield partition, message
                elif verdict == GIVE_UP:
                    self._report_rewind(partition, "given_up")
                    yield partition, message
                elif verdict == REWIND:
                    back_to = guard.next_offset(partition)
                    log.warning("%s: records from %d were passed over (now at %d); reading "
                                "them again", partition, back_to, message.offset)
                    await self.seek(partition, back_to)
                    self._report_rewind(partition, "reread")
        finally:
            guard.fetch_done()

    def _report_rewind(self, partition: TP, outcome: str) -> None:
        listener = cast(Transport, self.transport).on_rewind
        if listener is not None:
            listener(partition.topic, outcome)


class Transport(faust_aiokafka.Transport):
    """Faust's aiokafka transport whose worker consumers wait at most ``fetch_max_wait_ms``."""

    Consumer = _Consumer

    def __init__(
        self, *args: Any, fetch_max_wait_ms: int, on_rewind: RewindListener | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.on_rewind = on_rewind


def install(app: Any, fetch_max_wait_ms: int, on_rewind: RewindListener | None = None) -> None:
    """Make ``app`` consume through :class:`Transport` (before the worker starts)."""
    app.transport = Transport(
        app.conf.broker_consumer, app, fetch_max_wait_ms=fetch_max_wait_ms, on_rewind=on_rewind,
    )
