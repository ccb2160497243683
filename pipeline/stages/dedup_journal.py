"""Dedup state as a journal of per-batch deltas: one durable record per micro-batch.

The :class:`~pipeline.stages.dedup.Deduplicator` writes 2-3 store entries per mention. Made
durable one key at a time (a Faust table per store), that is 2-3 changelog records per
mention, and Faust's producer sends changelog records one at a time: draining a backlog, its
buffer filled and the worker stalled. :class:`PartitionJournal` instead keeps one
partition's stores in memory, remembers which keys a batch wrote, and hands back the batch's
*delta*: every entry the batch wrote, with its value, as one JSON-ready dict. The agent saves
each delta under a key of its own (``"<partition>:<sequence>"``) in a Faust table, so the
changelog gets one record per micro-batch, whatever its size.

Rebuild (:meth:`PartitionJournal.replay`): the partition's deltas in sequence order, later
values over earlier ones, then one expiry at the latest recorded expiry time, then the LSH
band index from the clusters. Deletions are never journaled: the core deletes only when it
expires old entries, and that is a deterministic function of the state and the expiry time,
so a delta records *that* an expiry ran (``"x"``: its time) instead of one tombstone per key.

Bounded: every delta carries ``"d"``, the event time after which everything its batch wrote
has expired (the latest ``seen at + redelivery window`` of its mention records and ``first
seen + window`` of its conversations; an expiry marker lives one window; all records of a
split batch share it). After each expiry,
:meth:`PartitionJournal.collectable` names the deltas past that time, and the agent deletes
them (one tombstone each, and the compacted changelog forgets them). A later delta may
re-state an expired conversation (a copy's count update carries the whole cluster); the
final expiry of a replay removes it again, exactly as it was removed live.

Wire form of a delta (short keys: it is most of the changelog's bytes)::

    {"m": {mention id: record}, "e": {fingerprint: first id},
     "c": {first id: cluster}, "v": {fingerprint: [first id, similarity]},
     "x": expiry time or absent, "d": collectable after}

(Deltas written before near-copy variants were memoised have no ``"v"``; they replay as
they are.)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, MutableMapping
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.stages.dedup import Deduplicator

# a delta larger than this many entries is split over several records: a micro-batch of a
# hot partition must not exceed the broker's record size limit (~600 B per new conversation)
MAX_ENTRIES_PER_RECORD = 1000
_STORES = ("m", "e", "c", "v")


class RecordingStore(MutableMapping[str, Any]):
    """A dict that remembers which keys were set since :meth:`take_written`.

    Deleting a key forgets that it was written (deletions are not journaled, see the module
    docstring).
    """

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.written: set[str] = set()
        # The core's hot path calls get(), several times per mention. Mapping's get goes
        # through __getitem__ and an exception per miss, and a method of ours that calls the
        # dict's is still a Python frame per call, slower than the dict's own bound method
        # (timeit, hits and misses alike; measured: see benchmarks/README.md).
        self.get = self.data.get  # type: ignore[method-assign]  # same signature, a C call

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.data[key] = value
        self.written.add(key)

    def __delitem__(self, key: str) -> None:
        del self.data[key]
        self.written.discard(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def __contains__(self, key: object) -> bool:
        return key in self.data

    def take_written(self) -> dict[str, Any]:
        """The entries set since the last call, with their current values."""
        written = {key: self.data[key] for key in self.written}
        self.written.clear()
        return written


def delta_key(partition: int, sequence: int) -> str:
    """Key of a delta in the journal table; sorts by sequence within a partition.

    >>> delta_key(3, 42)
    '3:000000000042'
    """
    return f"{partition}:{sequence:012d}"


def parse_delta_key(key: str) -> tuple[int, int]:
    """``(partition, sequence)`` of a journal key (inverse of :func:`delta_key`)."""
    partition, _, sequence = key.partition(":")
    return int(partition), int(sequence)


class PartitionJournal:
    """One partition's dedup memory, and the deltas that make it durable.

    >>> journal = PartitionJournal(0, window=timedelta(hours=24))
    >>> from pipeline.stages.dedup import DedupInput
    >>> at = datetime(2026, 11, 2, tzinfo=UTC).timestamp()
    >>> [v.kind for v in journal.deduplicator.check([
    ...     DedupInput("a", "Acme is down again in Madrid", at),
    ...     DedupInput("b", "RT @x: Acme is down again in Madrid", at)])]
    ['unique', 'exact']
    >>> [(key, sorted(delta["m"])) for key, delta in journal.take_deltas()]
    [('0:000000000000', ['a', 'b'])]
    """

    def __init__(
        self, partition: int, *, window: timedelta, redelivery_window: timedelta | None = None,
        **deduplicator_options: Any,
    ) -> None:
        self.partition = partition
        self.mentions = RecordingStore()
        self.exact = RecordingStore()
        self.clusters = RecordingStore()
        self.variants = RecordingStore()
        self.deduplicator = Deduplicator(
            window=window, redelivery_window=redelivery_window, mentions=self.mentions,
            exact=self.exact, clusters=self.clusters, variants=self.variants, bands={},
            **deduplicator_options,
        )
        self.window_s = self.deduplicator.window.total_seconds()
        self.redelivery_s = self.deduplicator.redelivery_window.total_seconds()
        self.next_sequence = 0
        # delta key -> the event time after which all it wrote has expired
        self.live: dict[str, float] = {}
        self.expired_at: float | None = None
        # an expiry is journaled once, in the first delta after it ran
        self._unjournaled_expiry: float | None = None

    def expire(self, now: datetime) -> list[str]:
        """Expire old entries (as :meth:`Deduplicator.expire`) and return the deltas to delete.

        The expiry time goes into the next delta, so that a replay expires the same way.
        """
        self.deduplicator.expire(now)
        self.expired_at = self._unjournaled_expiry = now.timestamp()
        return self.collectable()

    def collectable(self) -> list[str]:
        """Deltas whose entries have all expired by the last expiry; forgotten here."""
        if self.expired_at is None:
            return []
        gone = [key for key, dies_at in self.live.items() if dies_at < self.expired_at]
        for key in gone:
            del self.live[key]
        return gone

    def take_deltas(self) -> list[tuple[str, dict[str, Any]]]:
        """The entries written since the last call, as journal records (none if nothing).

        Usually one record; more when the batch wrote over ``MAX_ENTRIES_PER_RECORD``
        entries. The expiry marker, if an expiry ran, goes in the last one.
        """
        written = {
            "m": self.mentions.take_written(), "e": self.exact.take_written(),
            "c": self.clusters.take_written(), "v": self.variants.take_written(),
        }
        expired_at, self._unjournaled_expiry = self._unjournaled_expiry, None
        entries = [(name, key, value) for name in _STORES for key, value in
                   written[name].items()]
        if not entries and expired_at is None:
            return []
        records = []
        for start in range(0, max(len(entries), 1), MAX_ENTRIES_PER_RECORD):
            delta: dict[str, Any] = {name: {} for name in _STORES}
            for name, key, value in entries[start:start + MAX_ENTRIES_PER_RECORD]:
                delta[name][key] = value
            records.append(delta)
        if expired_at is not None:
            records[-1]["x"] = expired_at
        # one time for the whole batch: a split can leave a record with only exact or variant
        # entries, which must live as long as the conversations in its sibling records
        dies_at = max(self._dies_at(delta) for delta in records)
        result = []
        for delta in records:
            delta["d"] = dies_at
            key = delta_key(self.partition, self.next_sequence)
            self.next_sequence += 1
            self.live[key] = dies_at
            result.append((key, delta))
        return result

    def _dies_at(self, delta: dict[str, Any]) -> float:
        ends = [record[3] + self.redelivery_s for record in delta["m"].values()]
        ends += [cluster["t"] + self.window_s for cluster in delta["c"].values()]
        # an exact or variant entry is removed with its conversation, which this delta
        # wrote too (a copy's count update carries the whole cluster);
        # an expiry marker is kept for a window, so that the newest one survives
        if "x" in delta:
            ends.append(delta["x"] + self.window_s)
        # nothing that expires (never so for a whole batch): collectable at the next expiry;
        # 0, not -inf, which JSON cannot carry
        return max(ends, default=0.0)

    def replay(self, deltas: Iterable[tuple[str, dict[str, Any]]]) -> int:
        """Rebuild the memory from this partition's deltas (any order); return how many.

        Later deltas win, then one expiry at the latest recorded expiry time, then the band
        index. Deltas already collectable are listed by :meth:`collectable` afterwards.
        """
        ordered = sorted(deltas, key=lambda item: parse_delta_key(item[0])[1])
        stores = {"m": self.mentions.data, "e": self.exact.data, "c": self.clusters.data,
                  "v": self.variants.data}
        expired_at: float | None = None
        for key, delta in ordered:
            for name in _STORES:
                stores[name].update(delta.get(name) or {})
            if delta.get("x") is not None:
                expired_at = max(expired_at or delta["x"], delta["x"])
            # null: a split record saved with -inf before every record of a batch shared one
            # time; kept, since its entries may belong to conversations still alive
            dies_at = delta.get("d")
            self.live[key] = float("inf") if dies_at is None else float(dies_at)
            self.next_sequence = max(self.next_sequence, parse_delta_key(key)[1] + 1)
        if expired_at is not None:
            self.deduplicator.expire(datetime.fromtimestamp(expired_at, UTC))
            self.expired_at = expired_at
        for store in (self.mentions, self.exact, self.clusters, self.variants):
            store.written.clear()
        self.deduplicator.rebuild_bands()
        return len(ordered)
