import random
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from pipeline.stages import dedup_journal
from pipeline.stages.dedup import DedupInput
from pipeline.stages.dedup_journal import PartitionJournal, RecordingStore, parse_delta_key

T0 = datetime(2026, 11, 22, 10, tzinfo=UTC)
WINDOW = timedelta(hours=1)
SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "ze", "po", "qu", "fe"]


def firehose(count: int, seed: int = 7) -> list[DedupInput]:
    """Mentions a minute apart: new texts, retweets and one-word edits of earlier ones."""
    rng = random.Random(seed)

    def word() -> str:
        return "".join(rng.choice(SYLLABLES) for _ in range(3))

    texts: list[str] = []
    mentions = []
    for number in range(count):
        roll = rng.random()
        if texts and roll < 0.3:
            text = f"RT @fan{number}: {rng.choice(texts)}"
        elif texts and roll < 0.45:
            words = rng.choice(texts).split()
            words[rng.randrange(len(words))] = word()
            text = " ".join(words)
        else:
            text = " ".join(word() for _ in range(12))
            texts.append(text)
        seen_at = (T0 + timedelta(minutes=number)).timestamp()
        mentions.append(DedupInput(f"m{number}", text, seen_at))
    return mentions


def state(journal: PartitionJournal) -> dict[str, Any]:
    # the live band index keeps one-member bands as a list after an expiry; same content
    bands = {key: [members] if isinstance(members, str) else members
             for key, members in journal.deduplicator.bands.items()}
    return {
        "mentions": dict(journal.mentions.data), "exact": dict(journal.exact.data),
        "clusters": dict(journal.clusters.data), "variants": dict(journal.variants.data),
        "bands": bands,
    }


def run(
    journal: PartitionJournal, mentions: list[DedupInput], table: dict[str, Any],
    batch: int = 10, expire_every: int = 5, first_batch: int = 1,
) -> list[Any]:
    """Feed batches as the agent does; ``table`` gets the deltas through JSON, as Faust's."""
    verdicts = []
    for number, start in enumerate(range(0, len(mentions), batch), start=first_batch):
        chunk = mentions[start:start + batch]
        verdicts += journal.deduplicator.check(chunk)
        newest = datetime.fromtimestamp(chunk[-1].seen_at, UTC)
        gone = journal.expire(newest) if number % expire_every == 0 else []
        for key, delta in journal.take_deltas():
            table[key] = orjson.loads(orjson.dumps(delta))
        for key in gone:
            del table[key]
    return verdicts


def test_recording_store_reports_written_keys_once() -> None:
    store = RecordingStore()
    store["a"], store["b"] = 1, 2
    del store["b"]
    assert store.take_written() == {"a": 1}
    assert store.take_written() == {}
    assert store.get("a") == 1 and "a" in store and len(store) == 1
    assert store.get("b") is None and store.get("b", 0) == 0


def test_one_delta_per_batch_and_replay_rebuilds_the_same_memory() -> None:
    live = PartitionJournal(0, window=WINDOW)
    table: dict[str, Any] = {}
    mentions = firehose(300)
    run(live, mentions, table)
    assert live.variants.data  # near-copy memos are journaled too
    # 30 batches, 6 expiry sweeps; expired deltas were deleted, so the table stays bounded
    assert len(table) < 30
    assert all(parse_delta_key(key)[0] == 0 for key in table)
    rebuilt = PartitionJournal(0, window=WINDOW)
    assert rebuilt.replay(reversed(list(table.items()))) == len(table)
    assert state(rebuilt) == state(live)
    assert rebuilt.next_sequence == live.next_sequence


def test_a_replayed_journal_gives_the_verdicts_an_uninterrupted_one_gives() -> None:
    mentions = firehose(400, seed=3)
    uninterrupted = run(PartitionJournal(1, window=WINDOW), mentions, {})
    table: dict[str, Any] = {}
    first = run(PartitionJournal(1, window=WINDOW), mentions[:170], table)
    restarted = PartitionJournal(1, window=WINDOW)
    restarted.replay(table.items())
    # the same expiry schedule as the uninterrupted run (the restart comes mid-way)
    second = run(restarted, mentions[170:], table, first_batch=18)
    assert first + second == uninterrupted
    assert any(v.kind == "near" for v in uninterrupted)
    assert any(v.kind == "exact" for v in uninterrupted)


def test_redelivered_batch_writes_nothing_new() -> None:
    journal = PartitionJournal(0, window=WINDOW)
    batch = firehose(20)
    journal.deduplicator.check(batch)
    assert len(journal.take_deltas()) == 1
    journal.deduplicator.check(batch)
    assert journal.take_deltas() == []


def test_a_large_batch_is_split_over_several_records(monkeypatch: Any) -> None:
    monkeypatch.setattr(dedup_journal, "MAX_ENTRIES_PER_RECORD", 25)
    journal = PartitionJournal(2, window=WINDOW)
    journal.deduplicator.check(firehose(40))
    journal.expire(T0)
    records = journal.take_deltas()
    assert [parse_delta_key(key) for key, _ in records] == [(2, 0), (2, 1), (2, 2), (2, 3)]
    assert "x" in records[-1][1] and all("x" not in delta for _, delta in records[:-1])
    assert all(len(delta["m"]) + len(delta["e"]) + len(delta["c"]) <= 25
               for _, delta in records)


def test_every_record_of_a_split_batch_lives_as_long_as_the_batch(monkeypatch: Any) -> None:
    # 40 mention, 20 exact, 20 conversation and 4 variant entries: 5 records of <= 20
    monkeypatch.setattr(dedup_journal, "MAX_ENTRIES_PER_RECORD", 20)
    journal = PartitionJournal(2, window=WINDOW)
    journal.deduplicator.check(firehose(40))
    records = journal.take_deltas()
    # the split leaves records holding only exact-copy or variant entries
    assert any(not delta["m"] and not delta["c"] for _, delta in records)
    dies_at = {delta["d"] for _, delta in records}
    assert len(dies_at) == 1 and T0.timestamp() < dies_at.pop() < float("inf")
    # through JSON, as Faust stores them, and back
    table = {key: orjson.loads(orjson.dumps(delta)) for key, delta in records}
    rebuilt = PartitionJournal(2, window=WINDOW)
    assert rebuilt.replay(table.items()) == len(records)
    assert state(rebuilt) == state(journal)


def test_replay_keeps_a_record_saved_without_a_collection_time() -> None:
    journal = PartitionJournal(0, window=WINDOW)
    journal.deduplicator.check(firehose(5))
    [(key, delta)] = journal.take_deltas()
    delta["d"] = None  # what JSON made of -inf in older journals
    rebuilt = PartitionJournal(0, window=WINDOW)
    assert rebuilt.replay([(key, orjson.loads(orjson.dumps(delta)))]) == 1
    rebuilt.expire(T0 + 10 * WINDOW)
    assert key not in rebuilt.collectable()
