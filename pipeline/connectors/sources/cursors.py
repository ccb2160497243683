"""Durable cursors: where each source resumes after a restart or a disconnect.

A cursor is a small JSON object per (source, key): Jetstream's last ``time_us``, a feed's
ETag, Last-Modified and recently seen entry ids. They live in a compacted Kafka topic
(``<prefix>.source-cursors``, one partition, keyed ``source/key``) beside the mentions they
describe, so a connector needs no disk of its own and the newest value of each key survives
compaction. The runtime saves a cursor only after every record before it was acknowledged
by the broker: a crash replays from the last saved point (at least once), it never skips.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Protocol

import orjson

from pipeline.config import Settings
from pipeline.transport.connection import aiokafka_options, kafka_client_options

CURSOR_TOPIC = "source-cursors"


class CursorStore(Protocol):
    """Loads and saves one source's cursors."""

    async def load(self, source: str) -> dict[str, Any]:
        """Every saved cursor of ``source``, by key."""
        ...

    async def save(self, source: str, cursors: dict[str, Any]) -> None:
        """Save these cursors of ``source`` durably (returns once they are)."""
        ...


class MemoryCursorStore:
    """Cursors in a dict: for unit tests and the offline benchmark."""

    def __init__(self) -> None:
        self.saved: dict[str, dict[str, Any]] = {}

    async def load(self, source: str) -> dict[str, Any]:
        """A copy of what was saved."""
        return dict(self.saved.get(source, {}))

    async def save(self, source: str, cursors: dict[str, Any]) -> None:
        """Remember the cursors."""
        self.saved.setdefault(source, {}).update(cursors)


def ensure_cursor_topic(settings: Settings) -> str:
    """Create the compacted cursor topic when it is missing; return its name."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    name = settings.topic(CURSOR_TOPIC)
    admin = KafkaAdminClient(client_id=f"{settings.app_id}-sources-admin",
                             **kafka_client_options(settings))
    try:
        if name not in set(admin.list_topics()):
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics([NewTopic(
                    name=name, num_partitions=1, replication_factor=settings.replication_factor,
                    topic_configs={"cleanup.policy": "compact"},
                )])
    finally:
        admin.close()
    return name


class TopicCursorStore:
    """Cursors in the compacted topic; saves go through the connector's own producer."""

    def __init__(self, settings: Settings, producer: Any) -> None:
        self.settings = settings
        self.topic = settings.topic(CURSOR_TOPIC)
        self.producer = producer

    async def load(self, source: str, *, timeout_s: float = 30.0) -> dict[str, Any]:
        """Read the topic to its end; the newest value of each of ``source``'s keys wins."""
        from aiokafka import AIOKafkaConsumer, TopicPartition

        partition = TopicPartition(self.topic, 0)
        consumer = AIOKafkaConsumer(enable_auto_commit=False, **aiokafka_options(self.settings))
        await consumer.start()
        cursors: dict[str, Any] = {}
        prefix = f"{source}/".encode()
        try:
            consumer.assign([partition])
            await consumer.seek_to_beginning(partition)
            end = (await consumer.end_offsets([partition]))[partition]
            async with asyncio.timeout(timeout_s):
                while await consumer.position(partition) < end:
                    batches = await consumer.getmany(partition, timeout_ms=500)
                    for record in batches.get(partition, []):
                        if record.key and record.key.startswith(prefix) and record.value:
                            cursors[record.key[len(prefix):].decode()] = orjson.loads(
                                record.value)
        finally:
            await consumer.stop()
        return cursors

    async def save(self, source: str, cursors: dict[str, Any]) -> None:
        """Send each cursor and wait for the broker's acknowledgement."""
        sent = [
            await self.producer.send(self.topic, key=f"{source}/{key}".encode(),
                                     value=orjson.dumps(value))
            for key, value in cursors.items()
        ]
        await asyncio.gather(*sent)
