from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pipeline.stages import dedup_partitions
from pipeline.stages.dedup import DedupInput
from pipeline.stages.dedup_partitions import JournalledPartitions

T0 = datetime(2026, 11, 22, 10, tzinfo=UTC).timestamp()
TEXT = "Acme Mobile lleva tres horas sin dar servicio en todo Madrid, vergonzoso"


def check(partitions: JournalledPartitions, partition: int, items: list[DedupInput]) -> list:
    journal = partitions.journal(partition)
    verdicts = journal.deduplicator.check(items)
    partitions.save(journal, datetime.fromtimestamp(max(item.seen_at for item in items), UTC))
    return verdicts


def test_one_table_entry_per_batch_and_memory_back_after_a_rebalance() -> None:
    table: dict[str, Any] = {}
    partitions = JournalledPartitions(table, timedelta(hours=24))
    check(partitions, 1, [DedupInput(f"m{n}", f"{TEXT} {n}", T0) for n in range(50)])
    check(partitions, 2, [DedupInput("x1", "Banco Nimbus abre oficinas en Lisboa", T0)])
    assert sorted(table) == ["1:000000000000", "2:000000000000"]
    # a rebalance: every partition is rebuilt from the table on its next batch
    partitions.forget()
    again = check(partitions, 1, [DedupInput("copy", f"RT @ana: {TEXT} 0", T0)])
    assert again[0].duplicate_of == "m0" and again[0].kind == "exact"
    assert sorted(table) == ["1:000000000000", "1:000000000001", "2:000000000000"]


def test_expired_deltas_leave_the_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dedup_partitions, "EXPIRE_EVERY", 2)
    table: dict[str, Any] = {}
    partitions = JournalledPartitions(table, timedelta(hours=1))
    check(partitions, 0, [DedupInput("old", TEXT, T0)])
    later = T0 + 3 * 3600
    # the second batch expires the first one's conversation: its delta is deleted
    check(partitions, 0, [DedupInput("new", f"{TEXT} otra vez", later)])
    assert list(table) == ["0:000000000001"]
    partitions.forget()
    # a replay after the rebalance has forgotten "old" too
    assert check(partitions, 0, [DedupInput("again", TEXT, later)])[0].duplicate_of != "old"
