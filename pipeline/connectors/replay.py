"""Feed mentions into the raw topic: replay a JSONL file or stream the synthetic firehose.

Lines are sent as they are, byte for byte: validation belongs to the ingest stage, so a
broken line reaches ``mentions.deadletter`` with its reason instead of vanishing here.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from pipeline.config import Settings
from pipeline.transport.connection import kafka_client_options


def jsonl_records(path: Path) -> Iterator[bytes]:
    """Non-empty lines of a JSONL file, as raw bytes (without the newline)."""
    with path.open("rb") as lines:
        for line in lines:
            record = line.rstrip(b"\r\n")
            if record.strip():
                yield record


def source_key(raw: bytes) -> bytes | None:
    """The record key upstream sources use: the mention id, when the record has one."""
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if isinstance(document, dict) and isinstance(document.get("id"), str):
        return str(document["id"]).encode()
    return None


class Pacer:
    """Sleeps just enough to hold an average rate (no sleep when ``rate`` is None)."""

    def __init__(self, rate_per_s: float | None) -> None:
        self.rate_per_s = rate_per_s
        self.started = time.monotonic()
        self.sent = 0

    def tick(self) -> None:
        """Account for one record and sleep if we are ahead of the schedule."""
        self.sent += 1
        if not self.rate_per_s:
            return
        ahead = self.sent / self.rate_per_s - (time.monotonic() - self.started)
        if ahead > 0.005:
            time.sleep(ahead)


# a feeder's records are small, so it batches widely (kafka-python's batch_size, per partition)
WIDE_BATCH_BYTES = 256 * 1024


def produce_records(
    settings: Settings, records: Iterable[bytes], *, rate_per_s: float | None = None,
    topic: str | None = None, on_progress: Any = None, batch_bytes: int | None = None,
) -> int:
    """Send raw records to the raw topic (kafka-python producer); return how many were sent.

    ``batch_bytes`` overrides the producer batch size chosen from the settings.
    """
    from kafka import KafkaProducer

    # wide batches, unless the broker needs one record per batch (Settings.producer_batch_bytes)
    if batch_bytes is None:
        batch_bytes = 1 if settings.producer_batch_bytes == 1 else WIDE_BATCH_BYTES
    producer = KafkaProducer(
        client_id=f"{settings.app_id}-replay", linger_ms=5, batch_size=batch_bytes,
        # leader acks are enough for a feeder; idempotence would need acks=all
        acks=1, enable_idempotence=False, **kafka_client_options(settings),
    )
    target = topic or settings.topic("raw")
    pacer = Pacer(rate_per_s)
    sent = 0
    try:
        for raw in records:
            producer.send(target, key=source_key(raw), value=raw)
            sent += 1
            pacer.tick()
            if on_progress is not None and sent % 1000 == 0:
                on_progress(sent)
        producer.flush()
    finally:
        producer.close()
    return sent
