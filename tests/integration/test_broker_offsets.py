"""End offsets under the producer settings our workers use: Faust's table recovery and every
lag figure read a partition's end offset, so it must count every record sent.

On the embedded Tansu broker that holds only with one record per producer batch (see
``pipeline.transport.broker.PRODUCER_BATCH_BYTES``); on a real Kafka with any batch size."""

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from pipeline.config import Settings
from pipeline.transport.connection import aiokafka_options

pytestmark = pytest.mark.integration

RECORDS = 40


async def send_and_read_end_offset(settings: Settings, topic: str) -> tuple[int, int]:
    """Send small records the way a worker's producer batches them; the end offset seen and
    the records a consumer reads back."""
    options = aiokafka_options(settings)
    producer = AIOKafkaProducer(**options, max_batch_size=settings.producer_batch_bytes,
                                linger_ms=20)
    await producer.start()
    try:
        # small table-changelog-sized values, sent without waiting so that they could share a
        # batch
        pending = [await producer.send(topic, value=b"v" * 300, partition=0)
                   for _ in range(RECORDS)]
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(**options, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        end = (await consumer.end_offsets([partition]))[partition]
        read = 0
        while batch := (await consumer.getmany(partition, timeout_ms=2000)).get(partition):
            read += len(batch)
        return end, read
    finally:
        await consumer.stop()


def test_end_offset_counts_every_record(pipeline_settings: Settings) -> None:
    topic = pipeline_settings.topic("offsets-check")
    end, read = asyncio.run(send_and_read_end_offset(pipeline_settings, topic))
    assert read == RECORDS
    assert end == RECORDS, f"end offset {end} after {RECORDS} records"
