"""Dedup stage core: exact and near-duplicate mentions, in bounded, windowed state.

- **Exact copies** share the fingerprint of their matching text
  (:mod:`pipeline.stages.dedup_text`: no RT prefix, handles, URLs, emoji or punctuation,
  case and accents folded).
- **Near copies** (a word changed, hashtags appended, clauses reordered) share an LSH band
  of their MinHash signatures (:mod:`pipeline.stages.dedup_minhash`), and a candidate is
  accepted when the estimated Jaccard similarity is at least ``near_threshold`` (0.65, from
  the benchmark's sweep). Texts shorter than ``min_near_chars`` only match exactly.

State lives in injected ``MutableMapping`` stores with str keys and JSON-ready values, so the
agent passes Faust tables (changelog-backed: a restarted or rebalanced worker keeps its
memory) and tests or ``mentions process`` pass plain dicts:

``mentions``  mention id -> ``[first id or None, kind, similarity, seen at, copy count]``
              (idempotency: a redelivered mention gets its first verdict again, its copy
              count included, and counts nothing)
``exact``     fingerprint -> first id
``variants``  fingerprint of a near copy's text -> ``[first id, similarity]``: a verdict memo,
              so that the next exact repeat of that variant (its retweets, a bot farm's
              copies) takes the exact-copy path instead of another near search and joins
              the same conversation with the same similarity
``clusters``  first id -> ``{"n": copies, "t": first seen, "sig": signature (base64 of 64
              big-endian uint32), "fp": fingerprint, "lsh": indexed for near matching}``
``bands``     LSH band key (int) -> first id, or a list of them (at most ``band_capacity``,
              newest last) when several conversations share the band. Derived from
              ``clusters`` (:meth:`Deduplicator.rebuild_bands`), so the agent keeps it in
              memory instead of writing 16 changelog records per conversation.

"seen at" and "first seen" are event times (the mention's ``created_at``, Unix seconds).
:meth:`Deduplicator.expire` deletes every conversation first seen before ``now - window``
and every mention record older than ``redelivery_window`` (default: the window), so memory
is bounded by one window of conversations plus one redelivery window of mention records
(the bytes per conversation are in ``benchmarks/README.md``). The agent makes
the stores durable as a journal of per-batch changes (:mod:`pipeline.stages.dedup_journal`).

Copies meet on one partition by :mod:`pipeline.stages.routing`'s keys, which use
:func:`~pipeline.stages.dedup_text.normalise_for_matching` too.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal, NamedTuple

import numpy as np

from pipeline.event_time import parse_event_time
from pipeline.records import UniqueMention
from pipeline.stages.dedup_minhash import (
    Signatures,
    band_keys,
    decode_signature,
    encode_signature,
    signatures,
    similarity,
)
from pipeline.stages.dedup_text import matching_and_fingerprint

DuplicateKind = Literal["unique", "exact", "near"]
# chosen on the benchmark's threshold sweep (XLM-T train + val): one-word edits vs precision
NEAR_THRESHOLD = 0.65


# DedupInput and DedupVerdict are NamedTuples, not frozen dataclasses: two are built per
# mention, and a frozen dataclass's __init__ (object.__setattr__ per field) is slower than a
# NamedTuple's, which is just as immutable (measured: see benchmarks/README.md).
class DedupInput(NamedTuple):
    """What the dedup stage needs of a mention: ``seen_at`` is its event time, Unix seconds."""

    mention_id: str
    text: str
    seen_at: float


class DedupVerdict(NamedTuple):
    """``duplicate_of`` is the first copy's id (None when this is the first).

    ``copy_count`` is the first copy's running count of copies, this one included.
    """

    duplicate_of: str | None
    kind: DuplicateKind
    copy_count: int
    similarity: float | None = None


def apply_verdict(mention: UniqueMention, verdict: DedupVerdict) -> None:
    """Write a verdict onto a mention record (``duplicate_of``, ``copy_count``...).

    A first copy gets no ``duplicate_similarity``.
    """
    mention.duplicate_of = verdict.duplicate_of
    mention.duplicate_kind = verdict.kind
    mention.copy_count = verdict.copy_count
    if verdict.similarity is not None:
        mention.duplicate_similarity = verdict.similarity


def mark_duplicates(
    deduplicator: Deduplicator, mentions: Sequence[UniqueMention],
) -> tuple[list[DedupVerdict], datetime | None]:
    """Check a micro-batch of mention records and write each verdict onto its record.

    Returns the verdicts and the batch's newest event time (None for an empty batch), which
    the caller's expiry runs at. Every mention needs a readable event time: one without
    raises :class:`~pipeline.schema.InvalidMention` before the deduplicator is touched (a
    batch that may hold such goes through
    :func:`~pipeline.event_time.split_by_event_time` first, and its rejects to the dead
    letters).
    """
    times = [parse_event_time(mention.created_at) for mention in mentions]
    inputs = [DedupInput(mention.id, mention.text, created.timestamp())
              for mention, created in zip(mentions, times, strict=True)]
    verdicts = deduplicator.check(inputs)
    for mention, verdict in zip(mentions, verdicts, strict=True):
        apply_verdict(mention, verdict)
    return verdicts, max(times, default=None)


class Deduplicator:
    """Exact and near-duplicate detection over injected stores (see the module docstring)."""

    def __init__(
        self,
        *,
        window: timedelta = timedelta(hours=24),
        near_threshold: float = NEAR_THRESHOLD,
        min_near_chars: int = 20,
        band_capacity: int = 8,
        redelivery_window: timedelta | None = None,
        mentions: MutableMapping[str, Any] | None = None,
        exact: MutableMapping[str, Any] | None = None,
        clusters: MutableMapping[str, Any] | None = None,
        variants: MutableMapping[str, Any] | None = None,
        bands: MutableMapping[Any, Any] | None = None,
    ) -> None:
        self.window = window
        self.near_threshold = near_threshold
        self.min_near_chars = min_near_chars
        self.band_capacity = band_capacity
        # a mention's own record only guards against redelivery, which comes within minutes
        # of the first delivery: a shorter window here keeps one entry per mention for that
        # long instead of for the whole window
        self.redelivery_window = window if redelivery_window is None else redelivery_window
        self.mentions: MutableMapping[str, Any] = {} if mentions is None else mentions
        self.exact: MutableMapping[str, Any] = {} if exact is None else exact
        self.clusters: MutableMapping[str, Any] = {} if clusters is None else clusters
        self.variants: MutableMapping[str, Any] = {} if variants is None else variants
        self.bands: MutableMapping[Any, Any] = {} if bands is None else bands
        # first id -> decoded signature (a cache of clusters[first_id]["sig"])
        self._signatures: dict[str, Signatures] = {}

    def check(self, batch: Sequence[DedupInput]) -> list[DedupVerdict]:
        """Verdicts for a batch, in order; later items see earlier ones of the same batch."""
        if not batch:
            return []
        matched = [matching_and_fingerprint(item.text) for item in batch]
        # a text that a conversation or a memoised variant already explains is an exact
        # repeat and needs no MinHash signature; on a retweet-heavy firehose that is most
        # of them. The stores only grow within a batch, so what is explained here stays so.
        known = [self._explained(print_) for _text, print_ in matched]
        unexplained = [index for index, explained in enumerate(known) if explained is None]
        sigs = signatures([matched[index][0] for index in unexplained])
        keys = band_keys(sigs).tolist()
        signed: list[tuple[Signatures, list[int]] | None] = [None] * len(batch)
        for row, index in enumerate(unexplained):
            signed[index] = sigs[row], keys[row]
        return [
            self._check_one(item, text, print_, known[index], signed[index])
            for index, (item, (text, print_)) in enumerate(zip(batch, matched, strict=True))
        ]

    def _explained(self, print_: str) -> tuple[str, DuplicateKind, float] | None:
        """The conversation (first id, kind, similarity) a text's fingerprint already has."""
        first_id = self.exact.get(print_)
        if first_id is not None and first_id in self.clusters:
            return first_id, "exact", 1.0
        variant = self.variants.get(print_)
        if variant is not None and variant[0] in self.clusters:
            return variant[0], "near", variant[1]
        return None

    def _verdict_again(self, item: DedupInput, stored: list[Any]) -> DedupVerdict:
        first_id, kind, score = stored[:3]
        if len(stored) > 4:
            return DedupVerdict(first_id, kind, int(stored[4]), score)
        # a record journaled before counts were kept: the conversation's count now
        cluster = self.clusters.get(first_id or item.mention_id)
        count = int(cluster["n"]) if cluster else 1
        return DedupVerdict(first_id, kind, count, score)

    def _check_one(
        self, item: DedupInput, matching: str, print_: str,
        known: tuple[str, DuplicateKind, float] | None,
        signed: tuple[Signatures, list[int]] | None,
    ) -> DedupVerdict:
        """The verdict of one item.

        ``known`` is what explained its text before the batch; ``signed`` is its signature
        and band keys when nothing did.
        """
        stored = self.mentions.get(item.mention_id)
        if stored is not None:
            return self._verdict_again(item, stored)
        own = self.clusters.get(item.mention_id)
        if own is not None:
            # a first copy redelivered after its record expired: still not its own copy
            return DedupVerdict(None, "unique", int(own["n"]), None)
        seen_at = item.seen_at
        if known is None:
            # an earlier item of this batch may have started this text's conversation
            known = self._explained(print_)
        if known is not None:
            return self._record_copy(item, known[0], known[1], known[2], seen_at)
        if signed is None:
            raise AssertionError("check() signs every text that was not explained")
        sig, keys = signed
        indexed = len(matching) >= self.min_near_chars
        if indexed:
            # one lookup per band serves both the search and, for a new conversation, the
            # insert: the index is the hot path of a mostly-unique firehose
            members = [self.bands.get(key) for key in keys]
            best = self._best_near(sig, members)
            if best is not None:
                score = round(best[0], 4)
                self.variants[print_] = [best[1], score]
                return self._record_copy(item, best[1], "near", score, seen_at)
        # a new conversation: it becomes the first copy of its cluster
        self.exact[print_] = item.mention_id
        self.clusters[item.mention_id] = {
            "n": 1, "t": seen_at, "sig": encode_signature(sig), "fp": print_, "lsh": indexed,
        }
        if indexed:
            self._index(item.mention_id, keys, members)
        self.mentions[item.mention_id] = [None, "unique", None, seen_at, 1]
        return DedupVerdict(None, "unique", 1, None)

    def _best_near(
        self, sig: Signatures, members: Sequence[str | list[str] | None],
    ) -> tuple[float, str] | None:
        candidates: set[str] = set()
        for band in members:
            if band is None:
                continue
            if isinstance(band, str):
                candidates.add(band)
            else:
                candidates.update(band)
        best: tuple[float, str] | None = None
        best_time = 0.0
        for candidate in candidates:
            cluster = self.clusters.get(candidate)
            if cluster is None:
                continue
            score = similarity(sig, self._signature_of(candidate, cluster))
            # ties go to the earlier first copy, so the verdict does not depend on set order
            if score >= self.near_threshold and (
                best is None or score > best[0] or (score == best[0] and cluster["t"] < best_time)
            ):
                best, best_time = (score, candidate), cluster["t"]
        return best

    def _signature_of(self, first_id: str, cluster: Mapping[str, Any]) -> Signatures:
        # decoded signatures, kept beside the store: decoding base64 on every comparison was
        # the largest cost of a near-copy check. A conversation's signature never changes.
        sig = self._signatures.get(first_id)
        if sig is None:
            sig = self._signatures[first_id] = decode_signature(cluster["sig"])
        return sig

    def _index(
        self, first_id: str, keys: Sequence[int],
        members: Sequence[str | list[str] | None] | None = None,
    ) -> None:
        # most bands hold one conversation: a bare id there instead of a one-item list saves
        # an allocation per band and about half of the index's memory
        bands, capacity = self.bands, self.band_capacity
        for position, key in enumerate(keys):
            band = bands.get(key) if members is None else members[position]
            if band is None:
                bands[key] = first_id
            elif isinstance(band, str):
                bands[key] = [band, first_id]
            else:
                band.append(first_id)
                if len(band) > capacity:
                    del band[0]

    def rebuild_bands(self) -> int:
        """Rebuild the LSH band index from the clusters store; return how many were indexed."""
        for key in list(self.bands.keys()):
            del self.bands[key]
        ordered = sorted(
            ((first_id, cluster) for first_id, cluster in self.clusters.items()
             if cluster.get("lsh") and cluster.get("sig")),
            key=lambda item: item[1]["t"],
        )
        if not ordered:
            return 0
        # one NumPy pass over every signature: a restart rebuilds ~10^5 conversations
        rows = np.stack([decode_signature(cluster["sig"]) for _id, cluster in ordered])
        for (first_id, _cluster), keys in zip(ordered, band_keys(rows).tolist(), strict=True):
            self._index(first_id, keys)
        return len(ordered)

    def _record_copy(
        self, item: DedupInput, first_id: str, kind: DuplicateKind, score: float, seen_at: float,
    ) -> DedupVerdict:
        cluster = dict(self.clusters[first_id])
        cluster["n"] = int(cluster["n"]) + 1
        # reassigning (not mutating) the value is what makes a Faust table log the change
        self.clusters[first_id] = cluster
        self.mentions[item.mention_id] = [first_id, kind, score, seen_at, cluster["n"]]
        return DedupVerdict(first_id, kind, cluster["n"], score)

    def expire(self, now: datetime) -> int:
        """Forget everything first seen before ``now - window``; return how many entries.

        Copies of an expired conversation that arrive later start a new one. Mention records
        (the idempotency guard) go after ``redelivery_window``.
        """
        horizon = (now - self.window).timestamp()
        redelivery_horizon = (now - self.redelivery_window).timestamp()
        removed = 0
        old_clusters = [key for key, cluster in self.clusters.items() if cluster["t"] < horizon]
        for first_id in old_clusters:
            cluster = self.clusters.pop(first_id)
            self._signatures.pop(first_id, None)
            if self.exact.get(cluster["fp"]) == first_id:
                del self.exact[cluster["fp"]]
            removed += 1
        old_mentions = [
            key for key, value in self.mentions.items() if value[3] < redelivery_horizon
        ]
        for mention_id in old_mentions:
            del self.mentions[mention_id]
            removed += 1
        gone = set(old_clusters)
        if gone:
            # a variant memo goes with its conversation
            for print_ in [key for key, (first_id, _score) in self.variants.items()
                           if first_id in gone]:
                del self.variants[print_]
                removed += 1
            for key in list(self.bands.keys()):
                band = self.bands[key]
                if isinstance(band, str):
                    if band in gone:
                        del self.bands[key]
                    continue
                kept = [first_id for first_id in band if first_id not in gone]
                if not kept:
                    del self.bands[key]
                elif len(kept) != len(band):
                    self.bands[key] = kept
        return removed
