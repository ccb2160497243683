"""Routing: the keys that make copies meet, and the ingest side's remembered partitions."""

from __future__ import annotations

import itertools

import pytest

from pipeline.config import Settings
from pipeline.records import SCORED, ScoredMention
from pipeline.stages.ingest import EncodedMention
from pipeline.stages.routing import (
    Router,
    brand_partition,
    hot_brand_spread,
    mention_key,
    mention_partition,
    routing_key,
    scored_partitions,
)
from pipeline.transport.topics import join_batches, partition_for

TWEET = "Acme Mobile lleva tres horas sin dar servicio en todo Madrid, vergonzoso"
OTHER = "Nimbus Bank abre nuevas oficinas en Lisboa la próxima semana"
TEXTS = [
    "Acme Mobile is down again in Madrid",
    "RT @ana: Acme Mobile is down again in Madrid",
    "Banco Nimbus abre oficinas en Lisboa",
    "telvia and acme both dropped my calls",
    "new plans starting in March",
]
BRAND_SETS = [("acme",), ("telvia",), ("nimbus",), ("telvia", "acme"), ("acme", "nimbus"), ()]


def mentions() -> list[EncodedMention]:
    """Every text with every brand set, twice over, so that each key is seen again."""
    pairs = list(itertools.product(TEXTS, BRAND_SETS)) * 2
    return [EncodedMention(text, brands, "2026-11-02T12:00:00+00:00",
                           f'{{"id":"m{number}"}}'.encode())
            for number, (text, brands) in enumerate(pairs)]


def keyed_one_by_one(items: list[EncodedMention], settings: Settings) -> dict[int, list[bytes]]:
    """The records as keying each mention on its own makes them."""
    by_partition: dict[int, list[bytes]] = {}
    for item in items:
        key = routing_key(item.text, item.brands, hot_brands=settings.dedup_hot_brands)
        by_partition.setdefault(partition_for(key, settings.partitions), []).append(item.encoded)
    return {partition: join_batches(encoded) for partition, encoded in by_partition.items()}


@pytest.mark.parametrize("hot_brands", [{}, {"acme": 4}, {"acme": 3, "telvia": 2}])
@pytest.mark.parametrize("text_cache_size", [0, 2, 50_000])
def test_remembered_partitions_are_the_keyed_ones(
    hot_brands: dict[str, int], text_cache_size: int,
) -> None:
    settings = Settings(partitions=8, dedup_hot_brands=hot_brands)
    router = Router(settings, text_cache_size=text_cache_size)
    batch = mentions()
    # twice: the second pass answers from what the first remembered
    assert router.records(batch) == keyed_one_by_one(batch, settings)
    assert router.records(batch) == keyed_one_by_one(batch, settings)
    assert len(router._by_text) <= text_cache_size


def test_a_hot_brand_spreads_over_its_sub_keys_and_a_plain_brand_does_not() -> None:
    router = Router(Settings(partitions=16, dedup_hot_brands={"acme": 4}))
    texts = [f"acme outage report number {number} from another city" for number in range(200)]
    assert len({router.partition(text, ["acme"]) for text in texts}) > 1
    assert len({router.partition(text, ["telvia"]) for text in texts}) == 1
    # keyed by the first brand in sort order, whatever else a mention names
    assert router.partition(texts[0], ["zeta", "telvia"]) == router.partition("x", ["telvia"])


def test_routing_keys_bring_copies_together_and_spread_hot_brands() -> None:
    retweet = f"RT @x: {TWEET.upper()} https://t.co/y"
    assert routing_key(TWEET) == routing_key(retweet) != routing_key(OTHER)
    assert routing_key(TWEET, ["movil", "acme"]) == routing_key(OTHER, ["acme"]) == b"b:acme"
    hot = {"acme": 4}
    assert routing_key(TWEET, ["acme"], hot_brands=hot) == routing_key(
        retweet, ["acme"], hot_brands=hot,
    )
    # different conversations of a hot brand land on all of its sub-keys
    texts = [f"mention{n} about{n * 7} something{n * 13} else" for n in range(40)]
    sub_keys = {routing_key(text, ["acme"], hot_brands=hot) for text in texts}
    assert sub_keys == {f"b:acme/{n}".encode() for n in range(4)}
    assert hot_brand_spread({"acme": 0.5, "nimbus": 0.05, "zeta": 2.0}, partitions=8) == {
        "acme": 4, "zeta": 8,
    }


def test_the_unique_and_scored_keys_are_the_mention_id_and_the_brands() -> None:
    mention = {"id": "tw:1", "brands": ["acme", "telvia", "acme"]}
    assert mention_key(mention) == b"tw:1"
    assert mention_partition("tw:1", 8) == partition_for(b"tw:1", 8)
    scored = SCORED.from_dict({**mention, "text": "", "created_at": ""})
    assert scored_partitions(scored, 8) == {brand_partition("acme", 8),
                                            brand_partition("telvia", 8)}
    unbranded = ScoredMention(id="tw:2", text="", created_at="", brands=[])
    assert scored_partitions(unbranded, 8) == {mention_partition("tw:2", 8)}
