"""Topic names, their creation at start-up, and the micro-batch wire codec.

The raw topic carries one mention per record, as upstream sources send it. Internal topics
carry *micro-batches*: one record is a JSON array of enriched mentions that all belong to the
same partition. A Faust hop costs a fixed amount per record (measured: see
benchmarks/README.md, Pipeline), so batching inside the hop moves the ceiling of every
internal hop from records per second to mentions per second. Producers compute the partition
themselves (:func:`partition_for`) so that every mention in a batch shares the key-derived
partition the stateful stage downstream needs.
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson

from pipeline.config import Settings
from pipeline.transport.connection import kafka_client_options

# Largest micro-batch record: half of Kafka's default message.max.bytes and of Faust's
# producer_max_request_size (both ~1 MB), leaving room for the record and request framing.
# A bigger ingest batch or long posts would otherwise make a record the broker refuses.
MICRO_BATCH_MAX_BYTES = 512 * 1024
T = TypeVar("T")

# (logical name, description); the full name is "<topic_prefix>.<name>"
MENTION_TOPICS: tuple[tuple[str, str], ...] = (
    ("raw", "one raw mention per record, keyed by source id"),
    ("routed", "micro-batches of valid, brand-tagged mentions, partitioned by dedup key"),
    ("unique", "micro-batches after dedup (duplicates marked, not dropped)"),
    ("scored", "micro-batches with sentiment, partitioned by brand"),
    ("deadletter", "invalid input and undeliverable records, with the reason"),
)


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic the pipeline needs, with the settings it is created with."""

    name: str
    partitions: int
    retention_ms: int
    description: str


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """Every topic this deployment uses (created at start-up when missing)."""
    retention_ms = int(settings.retention_hours * 3600 * 1000)
    specs = [
        TopicSpec(settings.topic(name), settings.partitions, retention_ms, description)
        for name, description in MENTION_TOPICS
    ]
    specs.append(TopicSpec(
        settings.alerts_topic, settings.partitions, retention_ms * 10, "crisis alert events",
    ))
    specs.append(TopicSpec(
        f"{settings.alerts_topic}.deadletter", 1, retention_ms * 10,
        "alerts no webhook destination accepted",
    ))
    return specs


def ensure_topics(settings: Settings, *, timeout_s: float = 30.0) -> list[str]:
    """Create the missing topics; return the names that were created."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(
        client_id=f"{settings.app_id}-admin", request_timeout_ms=int(timeout_s * 1000),
        **kafka_client_options(settings),
    )
    try:
        existing = set(admin.list_topics())
        missing = [spec for spec in topic_specs(settings) if spec.name not in existing]
        if missing:
            # another worker may create them at the same moment
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics([
                    NewTopic(
                        name=spec.name, num_partitions=spec.partitions,
                        replication_factor=settings.replication_factor,
                        topic_configs={"retention.ms": str(spec.retention_ms)},
                    )
                    for spec in missing
                ])
        return [spec.name for spec in missing]
    finally:
        admin.close()


# --------------------------------------------------------------------------------------------
# micro-batch codec and partitioning
# --------------------------------------------------------------------------------------------


def encode_batch(mentions: Sequence[dict[str, Any]]) -> bytes:
    """One internal-topic record: the mentions as a JSON array."""
    return orjson.dumps(mentions)


def encode_batches(
    mentions: Sequence[dict[str, Any]], max_bytes: int = MICRO_BATCH_MAX_BYTES,
) -> list[bytes]:
    """The mentions as records of at most ``max_bytes`` each (halved until they fit), in order.

    Usually one record. A mention larger than ``max_bytes`` on its own is still one record.

    >>> [len(record) for record in encode_batches([{"t": "x" * 10}] * 4, max_bytes=40)]
    [39, 39]
    """
    return records_within(mentions, encode_batch, max_bytes)


def join_batches(
    encoded_mentions: Sequence[bytes | bytearray], max_bytes: int = MICRO_BATCH_MAX_BYTES,
) -> list[bytes]:
    """Like :func:`encode_batches`, for mentions already encoded one by one (JSON objects).

    ``orjson`` writes an array as its items' own encodings joined by commas, so this makes
    the same records as encoding the decoded mentions again, without decoding them.

    >>> join_batches([b'{"id":"1"}', b'{"id":"2"}'])
    [b'[{"id":"1"},{"id":"2"}]']
    """
    return records_within(encoded_mentions, _json_array, max_bytes)


def _json_array(encoded_items: Sequence[bytes | bytearray]) -> bytes:
    return b"[" + b",".join(encoded_items) + b"]"


def records_within(
    items: Sequence[T], encode: Callable[[Sequence[T]], bytes], max_bytes: int,
) -> list[bytes]:
    """``items`` encoded as records of at most ``max_bytes`` each, halved until they fit."""
    encoded = encode(items)
    if len(encoded) <= max_bytes or len(items) <= 1:
        return [encoded]
    middle = len(items) // 2
    return (records_within(items[:middle], encode, max_bytes)
            + records_within(items[middle:], encode, max_bytes))


def decode_batch(value: bytes) -> list[dict[str, Any]]:
    """Inverse of :func:`encode_batch`; raises ``ValueError`` if it is not a JSON array."""
    decoded = orjson.loads(value)
    if not isinstance(decoded, list):
        raise ValueError(f"expected a JSON array of mentions, got {type(decoded).__name__}")
    return decoded


def partition_for(key: bytes, partitions: int) -> int:
    """Stable partition of a key (CRC-32, the same in every process and language)."""
    return zlib.crc32(key) % partitions


def group_by_partition(
    mentions: Iterable[dict[str, Any]], key_of: Callable[[dict[str, Any]], bytes],
    partitions: int,
) -> dict[int, list[dict[str, Any]]]:
    """Split mentions into per-partition micro-batches, keeping their order."""
    groups: dict[int, list[dict[str, Any]]] = {}
    for mention in mentions:
        groups.setdefault(partition_for(key_of(mention), partitions), []).append(mention)
    return groups


def uncommitted_by_partition(
    admin: Any, consumer: Any, group: str, topic: str,
) -> dict[int, int]:
    """Records of ``topic`` past ``group``'s committed offsets, by partition.

    ``admin`` and ``consumer`` are kafka-python clients; a partition with no commit counts
    from offset 0.
    """
    from kafka import TopicPartition

    committed = admin.list_group_offsets(group).get(group, {})
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
    behind = {}
    for tp, end in consumer.end_offsets(partitions).items():
        meta = committed.get(tp)
        done = meta.offset if meta is not None and meta.offset >= 0 else 0
        behind[tp.partition] = max(0, end - done)
    return behind
