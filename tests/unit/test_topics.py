"""The micro-batch codec: records under the size limit, nothing lost, order kept."""

import orjson

from pipeline.transport.topics import decode_batch, encode_batches, join_batches


def test_a_large_batch_is_split_into_records_under_the_limit_in_order() -> None:
    mentions = [{"id": str(number), "text": "x" * (50 + number % 400)} for number in range(300)]
    records = encode_batches(mentions, max_bytes=4096)
    assert len(records) > 1
    assert all(len(record) <= 4096 for record in records)
    assert [mention for record in records for mention in decode_batch(record)] == mentions


def test_a_small_batch_is_one_record_and_an_oversized_mention_still_goes() -> None:
    assert len(encode_batches([{"id": "1"}, {"id": "2"}], max_bytes=4096)) == 1
    huge = {"id": "big", "text": "y" * 10_000}
    records = encode_batches([{"id": "1"}, huge, {"id": "2"}], max_bytes=4096)
    assert [decode_batch(record) for record in records] == [[{"id": "1"}], [huge], [{"id": "2"}]]


def test_joined_mentions_make_the_records_encoding_them_makes() -> None:
    mentions = [{"id": str(number), "text": "é" * (50 + number % 400), "n": number / 7}
                for number in range(300)]
    encoded = [orjson.dumps(mention) for mention in mentions]
    for limit in (4096, 1 << 20):
        assert join_batches(encoded, max_bytes=limit) == encode_batches(mentions, max_bytes=limit)
