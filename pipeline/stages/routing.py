"""Routing: the key, and so the partition, of a mention on each internal topic.

Every stateful stage needs some mentions to meet on one partition; this module is the one
place that says which, for the stages that write a topic and those that read it:

- ``mentions.routed`` (ingest writes, dedup reads): copies of one text must meet. A mention
  with brands is keyed by its first brand (sorted): copies of one text name the same brands,
  so they always meet. A hot brand (one brand may be most of the firehose) would then load
  one partition, so a brand listed in ``hot_brands`` is split into that many sub-keys by a
  content bucket: one MinHash value of the words of the matching text
  (:func:`~pipeline.stages.dedup_text.normalise_for_matching`), which two texts with word-set
  Jaccard similarity J share with probability J (exact copies always). Near copies of a hot
  brand meet with probability about ``J + (1 - J) / spread``, so near-copy recall is lost
  only there; cold brands keep all of it. Mentions without a brand are keyed by the content
  bucket alone. :func:`hot_brand_spread` sizes the split from brand shares. The recall and
  balance of each keying are measured by ``benchmarks/dedup.py`` (benchmarks/README.md).
  :class:`Router` is the ingest side's fast form of :func:`routing_key`.
- ``mentions.unique`` (dedup writes): by mention id (:func:`mention_partition`).
- ``mentions.scored`` (sentiment writes, crisis reads): by brand, once per distinct partition
  of the brands a mention names (:func:`scored_partitions`); the crisis stage counts a brand
  on the partition :func:`brand_partition` gives it, so each brand's state lives on one.

Partitions come from :func:`~pipeline.transport.topics.partition_for` (CRC-32 of the key),
the same in every process.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pipeline.caching import BoundedCache
from pipeline.config import Settings
from pipeline.records import RoutedMention, brands_of
from pipeline.stages.dedup_text import normalise_for_matching
from pipeline.transport.topics import join_batches, partition_for

if TYPE_CHECKING:  # only its shape: the crisis worker needs the keys, not the ingest core
    from pipeline.stages.ingest import EncodedMention


def content_bucket(text: str) -> int:
    """One MinHash value of a mention's matching text: the smallest hash of its words.

    Two texts with Jaccard similarity J over their word sets share it with probability J;
    exact copies (after normalisation) always do, reordered clauses nearly always. Words
    rather than 4-grams because a one-word edit changes fewer words than 4-grams (measured in
    the benchmark). An empty matching text gets 0.
    """
    words = set(normalise_for_matching(text).split())
    return min(
        (int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "big")
         for word in words),
        default=0,
    )


def routing_key(
    text: str, brands: Sequence[str] = (), *, hot_brands: Mapping[str, int] | None = None,
) -> bytes:
    """Kafka key on ``mentions.routed`` so copies of one text meet on one partition.

    Keyed by the first brand (sorted); a hot brand is split into ``hot_brands[brand]``
    sub-keys by :func:`content_bucket`; without brands, by the content bucket alone (see the
    module docstring for what that costs).

    >>> routing_key("Acme down again", ["acme"])
    b'b:acme'
    """
    if brands:
        brand = min(brands)
        spread = (hot_brands or {}).get(brand, 1)
        if spread <= 1:
            return f"b:{brand}".encode()
        return f"b:{brand}/{content_bucket(text) % spread}".encode()
    return f"c:{content_bucket(text):016x}".encode()


def hot_brand_spread(
    brand_shares: Mapping[str, float], partitions: int, *, fair_share: float = 1.0,
) -> dict[str, int]:
    """How many routing sub-keys each hot brand needs, from its share of the traffic.

    A brand carrying share ``s`` of all mentions is split into ``ceil(s * partitions /
    fair_share)`` sub-keys (at most ``partitions``), so no sub-key carries much more than one
    partition's fair share. Brands that need one key are left out.

    >>> hot_brand_spread({"acme": 0.5, "nimbus": 0.05}, partitions=8)
    {'acme': 4}
    """
    spread = {}
    for brand, share in brand_shares.items():
        keys = min(partitions, math.ceil(share * partitions / fair_share))
        if keys > 1:
            spread[brand] = keys
    return spread


class Router:
    """Groups tagged mentions into micro-batch records of ``mentions.routed``, by partition.

    The partitions are :func:`routing_key`'s. A brand that is not hot sends every mention to
    one partition, so its partition is remembered instead of keyed and hashed again per
    mention (measured: see benchmarks/README.md); keys that depend on the text (a hot
    brand's sub-key, or the content bucket of a mention without brands) are remembered per
    text for the newest ``text_cache_size`` texts.
    """

    def __init__(self, settings: Settings, *, text_cache_size: int = 50_000) -> None:
        self.hot_brands = settings.dedup_hot_brands
        self.partitions = settings.partitions
        self._by_brand: dict[str, int] = {}
        self._by_text = BoundedCache[tuple[str | None, str], int](text_cache_size)

    def partition(self, text: str, brands: Sequence[str]) -> int:
        """The routed partition of a mention with this text and these brands."""
        brand = min(brands) if brands else None
        if brand is not None and brand not in self.hot_brands:
            partition = self._by_brand.get(brand)
            if partition is None:
                partition = self._by_brand[brand] = self._keyed(text, brands)
            return partition
        partition = self._by_text.get((brand, text))
        if partition is None:
            partition = self._by_text.remember((brand, text), self._keyed(text, brands))
        return partition

    def records(self, mentions: Sequence[EncodedMention]) -> dict[int, list[bytes]]:
        """The micro-batch records of ``mentions``, by partition, in their order."""
        by_brand = self._by_brand
        by_partition: dict[int, list[bytes]] = {}
        for mention in mentions:
            brands = mention.brands
            # the usual mention, one brand that is not hot, without a call (a Python frame
            # per mention was a large part of the routing's cost)
            partition = by_brand.get(brands[0]) if len(brands) == 1 else None
            if partition is None:
                partition = self.partition(mention.text, brands)
            by_partition.setdefault(partition, []).append(mention.encoded)
        return {partition: join_batches(encoded) for partition, encoded in by_partition.items()}

    def _keyed(self, text: str, brands: Sequence[str]) -> int:
        return partition_for(
            routing_key(text, brands, hot_brands=self.hot_brands), self.partitions,
        )


def mention_key(mention: Mapping[str, Any]) -> bytes:
    """The ``mentions.unique`` key of a mention record: its id."""
    return str(mention["id"]).encode()


def mention_partition(mention_id: str, partitions: int) -> int:
    """The ``mentions.unique`` partition of the mention with this id (:func:`mention_key`'s)."""
    return partition_for(mention_id.encode(), partitions)


def brand_partition(brand: str, partitions: int) -> int:
    """The ``mentions.scored`` partition that counts ``brand`` (the crisis stage's owner)."""
    return partition_for(brand.encode(), partitions)


def scored_partitions(mention: RoutedMention, partitions: int) -> set[int]:
    """The ``scored`` partitions a mention goes to: one per distinct brand partition.

    A mention without brands goes to its id's partition.

    >>> mention = RoutedMention(id="1", text="", created_at="", brands=["acme", "acme"])
    >>> scored_partitions(mention, 8) == {brand_partition("acme", 8)}
    True
    """
    brands = brands_of(mention)
    if not brands:
        return {partition_for(mention.id.encode(), partitions)}
    return {brand_partition(brand, partitions) for brand in brands}
