"""Dedup stage core: exact and near-duplicate mentions, in bounded, windowed state.

Matching text: :func:`normalise_for_matching` drops a retweet prefix, @handles, URLs (so
tracking parameters do not matter), emoji and punctuation, and folds case and accents. The
original text is never touched.

- **Exact copies** share the fingerprint (BLAKE2b, 8 bytes) of the matching text.
- **Near copies** (a word changed, hashtags appended, clauses reordered): MinHash over
  character 4-grams of the matching text (``rensa``, Rust: ~375k signatures/s measured here),
  64 permutations in 16 LSH bands of 4 rows; a candidate from a shared band is accepted when
  the estimated Jaccard similarity is at least ``near_threshold``.

State lives in four injected ``MutableMapping`` stores with JSON-ready values, so the agent
passes Faust tables (changelog-backed: a restarted or rebalanced worker keeps its memory) and
tests or ``mentions process`` pass plain dicts:

``mentions``  mention id -> ``[first id or None, kind, similarity, seen at]``
              (idempotency: a redelivered mention gets its first verdict again)
``exact``     fingerprint -> first id
``clusters``  first id -> ``{"n": copies, "t": first seen, "sig": signature, "fp": fp}``
``bands``     "band:hash" -> first ids (at most ``band_capacity``, newest last); derived
              from ``clusters`` (:meth:`Deduplicator.rebuild_bands`), so the agent keeps it
              in memory instead of writing 16 changelog records per new conversation

Entries older than ``window`` (event time) are deleted by :meth:`Deduplicator.expire`, which
bounds memory to one window of traffic.

Routing (``mentions.routed`` key): copies must meet on one partition. The key is the first
MinHash value of the mention's signature: exact copies always share it, and two texts with
Jaccard similarity J share it with probability J (the MinHash property). Keying by brand
instead would put all of a hot brand (a third of the demo firehose) on one partition; this
key spreads every brand over all partitions and costs near-copy recall where copies land
apart (measured in ``benchmarks/dedup.py``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from rensa import RMinHash

from pipeline.stages.brands import fold

DuplicateKind = Literal["unique", "exact", "near"]

_RETWEET = re.compile(r"^\s*RT\s+@\w+\s*:?\s*", re.IGNORECASE)
_STRIP = re.compile(r"(?:https?://|www\.)\S+|@\w+")
_WORDS = re.compile(r"\w+")

NUM_PERM = 64
BANDS = 16
ROWS = NUM_PERM // BANDS
SEED = 1729


def normalise_for_matching(text: str) -> str:
    """The text two copies have in common: no RT prefix, handles, URLs, emoji or punctuation.

    >>> normalise_for_matching("RT @ana: ¡Acme CAÍDO otra vez!!! 😡 https://t.co/x?utm=1")
    'acme caido otra vez'
    """
    text = _RETWEET.sub("", text)
    text = _STRIP.sub(" ", text)
    return " ".join(_WORDS.findall(fold(text)))


def fingerprint(matching_text: str) -> str:
    """Exact-copy key of a normalised text (16 hex digits)."""
    return hashlib.blake2b(matching_text.encode(), digest_size=8).hexdigest()


def shingles(matching_text: str, size: int = 4) -> list[str]:
    """Character n-grams of the normalised text (the whole text when it is shorter)."""
    if len(matching_text) <= size:
        return [matching_text]
    return [matching_text[i:i + size] for i in range(len(matching_text) - size + 1)]


def signature(matching_text: str) -> list[int]:
    """MinHash signature (``NUM_PERM`` values) of a normalised text; same in every process."""
    minhash = RMinHash(num_perm=NUM_PERM, seed=SEED)
    minhash.update(shingles(matching_text))
    return [int(value) for value in minhash.digest()]


def similarity(left: Sequence[int], right: Sequence[int]) -> float:
    """Estimated Jaccard similarity of two signatures."""
    return sum(a == b for a, b in zip(left, right, strict=True)) / len(left)


def routing_key(text: str) -> bytes:
    """Kafka key on ``mentions.routed``: the first MinHash value (see the module docstring)."""
    matching = normalise_for_matching(text)
    if not matching:
        return b"empty"
    return str(signature(matching)[0]).encode()


@dataclass(frozen=True, slots=True)
class DedupInput:
    """What the dedup stage needs of a mention."""

    mention_id: str
    text: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class DedupVerdict:
    """``duplicate_of`` is the first copy's id (None when this is the first)."""

    duplicate_of: str | None
    kind: DuplicateKind
    copy_count: int
    similarity: float | None = None


def apply_verdict(mention: dict[str, Any], verdict: DedupVerdict) -> None:
    """Write a verdict onto a mention record (``duplicate_of``, ``copy_count``...)."""
    mention["duplicate_of"] = verdict.duplicate_of
    mention["duplicate_kind"] = verdict.kind
    mention["copy_count"] = verdict.copy_count
    if verdict.similarity is not None:
        mention["duplicate_similarity"] = verdict.similarity


class Deduplicator:
    """Exact and near-duplicate detection over injected stores (see the module docstring)."""

    def __init__(
        self,
        *,
        window: timedelta = timedelta(hours=24),
        near_threshold: float = 0.68,
        min_near_chars: int = 20,
        band_capacity: int = 8,
        mentions: MutableMapping[str, Any] | None = None,
        exact: MutableMapping[str, Any] | None = None,
        clusters: MutableMapping[str, Any] | None = None,
        bands: MutableMapping[str, Any] | None = None,
    ) -> None:
        self.window = window
        self.near_threshold = near_threshold
        self.min_near_chars = min_near_chars
        self.band_capacity = band_capacity
        self.mentions: MutableMapping[str, Any] = {} if mentions is None else mentions
        self.exact: MutableMapping[str, Any] = {} if exact is None else exact
        self.clusters: MutableMapping[str, Any] = {} if clusters is None else clusters
        self.bands: MutableMapping[str, Any] = {} if bands is None else bands

    def check(self, batch: Sequence[DedupInput]) -> list[DedupVerdict]:
        """Verdicts for a batch, in order; later items see earlier ones of the same batch."""
        matching = [normalise_for_matching(item.text) for item in batch]
        # one call into rensa for the whole batch: the per-item Python overhead dominates
        signatures = RMinHash.digests_from_token_sets(
            [shingles(text) for text in matching], num_perm=NUM_PERM, seed=SEED,
        )
        return [
            self._check_one(item, text, [int(v) for v in sig] if text else [])
            for item, text, sig in zip(batch, matching, signatures, strict=True)
        ]

    def _verdict_again(self, item: DedupInput, stored: list[Any]) -> DedupVerdict:
        first_id, kind, score, _seen = stored
        cluster = self.clusters.get(first_id or item.mention_id)
        count = int(cluster["n"]) if cluster else 1
        return DedupVerdict(first_id, kind, count, score)

    def _check_one(self, item: DedupInput, matching: str, sig: list[int]) -> DedupVerdict:
        stored = self.mentions.get(item.mention_id)
        if stored is not None:
            return self._verdict_again(item, stored)
        seen_at = item.created_at.timestamp()
        print_ = fingerprint(matching)
        first_id = self.exact.get(print_)
        if first_id is not None and first_id in self.clusters:
            return self._record_copy(item, first_id, "exact", 1.0, seen_at)
        band_keys = band_keys_of(sig) if sig else []
        if len(matching) >= self.min_near_chars:
            best: tuple[float, str] | None = None
            for key in band_keys:
                for candidate in self.bands.get(key, ()):
                    cluster = self.clusters.get(candidate)
                    if cluster is None:
                        continue
                    score = similarity(sig, cluster["sig"])
                    if score >= self.near_threshold and (best is None or score > best[0]):
                        best = (score, candidate)
            if best is not None:
                return self._record_copy(item, best[1], "near", round(best[0], 4), seen_at)
        # a new conversation: it becomes the first copy of its cluster
        self.exact[print_] = item.mention_id
        indexed = len(matching) >= self.min_near_chars
        self.clusters[item.mention_id] = {
            "n": 1, "t": seen_at, "sig": sig, "fp": print_, "lsh": indexed,
        }
        if indexed:
            self._index(item.mention_id, band_keys)
        self.mentions[item.mention_id] = [None, "unique", None, seen_at]
        return DedupVerdict(None, "unique", 1, None)

    def _index(self, first_id: str, band_keys: Sequence[str]) -> None:
        for key in band_keys:
            members = list(self.bands.get(key, ()))
            members.append(first_id)
            self.bands[key] = members[-self.band_capacity:]

    def rebuild_bands(self) -> int:
        """Rebuild the LSH band index from the clusters store; return how many were indexed."""
        for key in list(self.bands.keys()):
            del self.bands[key]
        indexed = 0
        ordered = sorted(self.clusters.items(), key=lambda item: item[1]["t"])
        for first_id, cluster in ordered:
            sig = cluster.get("sig") or []
            if cluster.get("lsh") and sig:
                self._index(first_id, band_keys_of(sig))
                indexed += 1
        return indexed

    def _record_copy(
        self, item: DedupInput, first_id: str, kind: DuplicateKind, score: float, seen_at: float,
    ) -> DedupVerdict:
        cluster = dict(self.clusters[first_id])
        cluster["n"] = int(cluster["n"]) + 1
        # reassigning (not mutating) the value is what makes a Faust table log the change
        self.clusters[first_id] = cluster
        self.mentions[item.mention_id] = [first_id, kind, score, seen_at]
        return DedupVerdict(first_id, kind, cluster["n"], score)

    def expire(self, now: datetime) -> int:
        """Forget everything first seen before ``now - window``; return how many entries."""
        horizon = (now - self.window).timestamp()
        removed = 0
        old_clusters = [key for key, cluster in self.clusters.items() if cluster["t"] < horizon]
        for first_id in old_clusters:
            cluster = self.clusters.pop(first_id)
            if self.exact.get(cluster["fp"]) == first_id:
                del self.exact[cluster["fp"]]
            removed += 1
        old_mentions = [key for key, value in self.mentions.items() if value[3] < horizon]
        for mention_id in old_mentions:
            del self.mentions[mention_id]
            removed += 1
        gone = set(old_clusters)
        if gone:
            for key in list(self.bands.keys()):
                members = [m for m in self.bands[key] if m not in gone]
                if not members:
                    del self.bands[key]
                elif len(members) != len(self.bands[key]):
                    self.bands[key] = members
        return removed


def band_keys_of(sig: Sequence[int]) -> list[str]:
    """The LSH band keys of a signature (``BANDS`` of ``ROWS`` values each)."""
    return [f"{band}:{hash_band(sig[band * ROWS:(band + 1) * ROWS])}" for band in range(BANDS)]


def hash_band(values: Sequence[int]) -> int:
    """Stable key of one LSH band's rows.

    Python's hash of a tuple of ints does not depend on PYTHONHASHSEED (only str and bytes
    hashes are salted), so every worker process computes the same key.
    """
    return hash(tuple(values))
