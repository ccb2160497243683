"""Token ids carried on mentions: the wire form, what is refused, and that they equal the
engine's own tokenisation (so carrying changes no score)."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import orjson
import pytest

from pipeline.config import Settings
from pipeline.stages.brands import BrandMatcher, brand_rules_from_dicts
from pipeline.stages.ingest import Ingestor
from pipeline.stages.sentiment.bundled import DEFAULT_MODEL_DIR
from pipeline.stages.sentiment.carried import (
    CARRIED_KEY,
    CarryingTokenizer,
    TokenCarrier,
    build_carrying_tokenizer,
)
from pipeline.stages.sentiment.tokens import PackedTokens
from tests.unit.stages.test_sentiment import assert_close
from tests.unit.stages.test_sentiment_tokens import ODD_TEXTS
from tests.unit.stages.tiny_checkpoint import tiny_texts, write_tiny_checkpoint

os.environ.setdefault("HF_HUB_OFFLINE", "1")

CARRIER = TokenCarrier(vocab_size=1000, max_tokens=8, fingerprint="f00dcafe")


def wire_of(*rows: tuple[int, ...]) -> list[str]:
    return CARRIER.wire(PackedTokens.from_rows(list(rows)))


def test_ids_survive_the_wire_and_the_batch_decodes_in_order() -> None:
    rows = [(0, 5, 999, 2), (), (7,), (1, 2, 3, 4, 5, 6, 7, 8)]
    read = CARRIER.read(wire_of(*rows))
    assert read.rows.tolist() == [0, 1, 2, 3]
    assert read.packed.rows() == rows


def test_three_byte_ids_reach_past_two_bytes() -> None:
    carrier = TokenCarrier(vocab_size=250_002, max_tokens=8, fingerprint="f00dcafe")
    wire = carrier.wire(PackedTokens.from_rows([(250_001, 65_536, 65_535)]))
    assert carrier.read(wire).packed.rows() == [(250_001, 65_536, 65_535)]


def test_a_vocabulary_beyond_three_bytes_is_refused() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        TokenCarrier(vocab_size=2**24 + 1, max_tokens=8, fingerprint="f00dcafe")


@pytest.mark.parametrize("value", [
    None, 42, "", "f00dcafe", "othertok.AAAA", "f00dcafe.AAA", "f00dcafe.AA*A",
    "f00dcafe." + base64.b64encode((1000).to_bytes(3, "little")).decode(),  # outside vocab
    "f00dcafe." + "AAAA" * 9,  # more than max_tokens
])
def test_unusable_values_are_left_to_be_tokenised_from_text(value: object) -> None:
    good = wire_of((3, 4))[0]
    read = CARRIER.read([good, value, good])
    assert read.rows.tolist() == [0, 2]
    assert read.packed.rows() == [(3, 4), (3, 4)]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_checkpoint(tmp_path_factory.mktemp("tiny"), {0: "Bad", 1: "Meh", 2: "Good"})


def engine_rows(model_dir: Path, texts: list[str], max_tokens: int) -> list[tuple[int, ...]]:
    from pipeline.stages.sentiment.engine import SentimentEngine

    engine = SentimentEngine(model_dir, device="cpu", max_tokens=max_tokens,
                             label_overrides={"Meh": "neutral"})
    return engine.encode_packed(texts).rows()


def test_carried_ids_are_the_engines_own_tiny_model(tiny_dir: Path) -> None:
    texts = [*tiny_texts(50), *ODD_TEXTS]
    carrying = CarryingTokenizer(tiny_dir, max_tokens=16)
    read = carrying.carrier.read(carrying.wire(texts))
    assert read.rows.tolist() == list(range(len(texts)))
    assert read.packed.rows() == engine_rows(tiny_dir, texts, 16)


@pytest.mark.skipif(not (DEFAULT_MODEL_DIR / "tokenizer.json").exists(),
                    reason="the bundled model is built by make setup")
def test_carried_ids_are_the_engines_own_bundled_model() -> None:
    texts = ["Me encanta el nuevo plan de @acme 😍", "worst update EVER!!! #fail", "ok.",
             "नया फोन बहुत अच्छा है", "x" * 5000, *ODD_TEXTS]
    carrying = CarryingTokenizer(DEFAULT_MODEL_DIR, max_tokens=128)
    read = carrying.carrier.read(carrying.wire(texts))
    assert read.packed.rows() == engine_rows(DEFAULT_MODEL_DIR, texts, 128)


def test_another_truncation_is_another_fingerprint(tiny_dir: Path) -> None:
    short, long = CarryingTokenizer(tiny_dir, 16), CarryingTokenizer(tiny_dir, 32)
    assert short.carrier.fingerprint != long.carrier.fingerprint
    assert long.carrier.read(short.wire(["good day"])).rows.tolist() == []


def test_carrying_follows_the_setting(tiny_dir: Path, tmp_path: Path) -> None:
    assert build_carrying_tokenizer(Settings(sentiment_model=str(tiny_dir))) is None
    assert build_carrying_tokenizer(
        Settings(sentiment_model=str(tiny_dir), sentiment_carry_tokens=True)) is not None
    # asked for, with a model that has no tokenizer file here: fails loudly at start
    with pytest.raises(FileNotFoundError, match=r"tokenizer\.json"):
        build_carrying_tokenizer(Settings(sentiment_model=str(tmp_path),
                                          sentiment_carry_tokens=True))


def carrying_ingestor(tiny_dir: Path) -> Ingestor:
    return Ingestor(
        BrandMatcher(brand_rules_from_dicts([{"id": "acme", "query": "acme"}])),
        max_text_chars=1000, max_record_bytes=10_000,
        carrying_tokenizer=CarryingTokenizer(tiny_dir, max_tokens=16),
    )


def test_ingest_carries_the_ids_on_every_path(tiny_dir: Path) -> None:
    base = {"id": "1", "text": "acme good day", "created_at": "2026-11-22T10:00:00Z",
            "source": "twitter", "author": {"id": "u1"}}
    spelled_out = {**base, "url": None, "lang_hint": None,
                   "author": {"id": "u1", "handle": None, "followers": None}}
    forged = {**base, CARRIED_KEY: "f00dcafe.AAAA"}  # replaced, not trusted
    odd_date = {**base, "created_at": "2026-11-22 10:00:00+00:00"}
    core = carrying_ingestor(tiny_dir)
    outcome = core.process_encoded(
        [orjson.dumps(r) for r in (base, spelled_out, forged, odd_date)], ingested_at=5.0)
    records = [orjson.loads(m.encoded) for m in outcome.mentions]
    expected = core.carrying_tokenizer.wire(["acme good day"])[0]  # type: ignore[union-attr]
    assert [r[CARRIED_KEY] for r in records] == [expected] * 4
    # the carried key sits after the tags and before the ingest time on every path
    for record in records:
        keys = list(record)
        assert keys.index("brands") < keys.index(CARRIED_KEY) < keys.index("ingested_at")


def test_the_engine_reads_carried_ids_and_tokenises_only_the_rest(tiny_dir: Path) -> None:
    from pipeline.stages.sentiment.engine import SentimentEngine

    engine = SentimentEngine(tiny_dir, device="cpu", max_tokens=16,
                             label_overrides={"Meh": "neutral"})
    assert engine.carrier is not None
    carrying = CarryingTokenizer(tiny_dir, max_tokens=16)
    texts = ["good phone", "bad service", "fine", "good day"]
    # the first mention carries another text's ids: used as carried, so its text is not read
    carried = [carrying.wire(["bad day"])[0], None, "f00dcafe.AAAA", carrying.wire(["good day"])[0]]
    packed = engine.encode_carried(texts, carried)
    assert packed.rows() == engine.encode_packed(["bad day", "bad service", "fine",
                                                  "good day"]).rows()


async def test_the_batcher_scores_carried_ids_as_it_scores_texts(tiny_dir: Path) -> None:
    from pipeline.stages.sentiment.batcher import SentimentBatcher
    from pipeline.stages.sentiment.engine import SentimentEngine

    engine = SentimentEngine(tiny_dir, device="cpu", max_tokens=16,
                             label_overrides={"Meh": "neutral"})
    carrying = CarryingTokenizer(tiny_dir, max_tokens=16)
    texts = tiny_texts(40)
    carried: list[object] = list(carrying.wire(texts))
    carried[::3] = [None] * len(carried[::3])  # a third come from another producer
    async with SentimentBatcher(engine, max_batch_size=8, max_wait=0.01) as batcher:
        from_ids = await batcher.submit(texts, carried=carried)
        from_texts = await batcher.submit(texts)
    # batches of other compositions pad differently: equal up to float noise
    assert_close(from_ids, from_texts, 1e-5)
    assert_close(from_ids, engine.score(texts), 1e-5)
