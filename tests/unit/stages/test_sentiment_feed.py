"""The batch assembler and the device feed on CPU: reused buffers, the same padding as before."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.stages.sentiment.assembly import BatchAssembler
from pipeline.stages.sentiment.engine import SentimentEngine
from pipeline.stages.sentiment.labels import LABELS
from pipeline.stages.sentiment.planning import _round_up
from pipeline.stages.sentiment.tokens import PackedTokens
from tests.unit.stages.tiny_checkpoint import tiny_texts, write_tiny_checkpoint

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def fresh_padding(ids: np.ndarray, starts: np.ndarray, lengths: np.ndarray, pad_id: int,
                  rows: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The engine's padding before the assembler: new arrays for every batch."""
    columns = np.arange(width)
    present = columns[None, :] < lengths[:, None]
    input_ids = np.full((rows, width), pad_id, dtype=np.int64)
    input_ids[: len(lengths)][present] = ids[(starts[:, None] + columns[None, :])[present]]
    attention = np.zeros((rows, width), dtype=np.int64)
    attention[: len(lengths)] = present
    attention[len(lengths) :, 0] = 1
    return input_ids, attention


def random_packed(draw: np.random.Generator, texts: int, longest: int) -> PackedTokens:
    lengths = draw.integers(1, longest + 1, size=texts).astype(np.int32)
    return PackedTokens(draw.integers(3, 50_000, size=int(lengths.sum())).astype(np.int32),
                        lengths)


def test_assembled_batches_equal_fresh_padding_while_the_buffers_are_reused() -> None:
    draw = np.random.default_rng(5)
    assembler = BatchAssembler(pad_id=1, capacity=64 * 40, slots=3)
    pointers: list[int] = []
    for batch in range(12):
        packed = random_packed(draw, int(draw.integers(1, 65)), 40)
        picked = draw.permutation(len(packed))[: int(draw.integers(1, len(packed) + 1))]
        lengths, starts = packed.lengths[picked], packed.starts[picked]
        width = int(_round_up(int(lengths.max())))
        rows = len(picked) + int(draw.integers(0, 3)) * (batch % 2)  # spare rows, some batches
        if rows * width > assembler.capacity:
            rows = len(picked)
        assembled = assembler.assemble(packed.ids, starts, lengths, rows=rows, width=width)
        expected_ids, expected_attention = fresh_padding(packed.ids, starts, lengths, 1,
                                                         rows, width)
        assert np.array_equal(assembled.input_ids.numpy(), expected_ids)
        assert np.array_equal(assembled.attention.numpy(), expected_attention)
        pointers.append(assembled.input_ids.data_ptr())
    # a wide batch then a narrow one in the same slot left nothing stale, and no batch got
    # buffers of its own: three slots, taken in turn
    assert len(set(pointers)) == 3
    assert pointers[:3] * 4 == pointers


def test_an_oversized_batch_gets_buffers_of_its_own() -> None:
    assembler = BatchAssembler(pad_id=0, capacity=16, slots=2)
    packed = PackedTokens.from_rows([(5,) * 20, (6, 7)])
    assembled = assembler.assemble(packed.ids, packed.starts, packed.lengths, rows=2, width=24)
    expected_ids, expected_attention = fresh_padding(packed.ids, packed.starts,
                                                     packed.lengths, 0, 2, 24)
    assert np.array_equal(assembled.input_ids.numpy(), expected_ids)
    assert np.array_equal(assembled.attention.numpy(), expected_attention)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_checkpoint(tmp_path_factory.mktemp("tiny"), {0: "Bad", 1: "Meh", 2: "Good"})


def test_assembled_batch_equals_the_tokenizers_own_padding(tiny_dir: Path) -> None:
    engine = SentimentEngine(tiny_dir, device="cpu", label_overrides={"Meh": "neutral"})
    texts = tiny_texts(23)
    packed = engine.encode_packed(texts)
    by_the_book = engine.tokenizer(texts, padding=True, pad_to_multiple_of=8,
                                   return_tensors="np")
    width = int(_round_up(int(packed.lengths.max())))
    assembled = BatchAssembler(engine.pad_id, 32 * 16, 2).assemble(
        packed.ids, packed.starts, packed.lengths, rows=len(texts), width=width)
    assert np.array_equal(assembled.input_ids.numpy(), by_the_book["input_ids"])
    assert np.array_equal(assembled.attention.numpy(), by_the_book["attention_mask"])


def test_engine_through_the_feed_scores_as_the_model_does_on_tokenizer_padding(
    tiny_dir: Path,
) -> None:
    engine = SentimentEngine(tiny_dir, device="cpu", max_batch_size=4,
                             label_overrides={"Meh": "neutral"})
    texts = tiny_texts(37)
    results = engine.score(texts)
    with torch.inference_mode():
        batch = engine.tokenizer(texts, padding=True, return_tensors="pt")
        expected = torch.softmax(engine.model(**batch).logits, dim=-1).numpy()
    got = np.array([[r.scores[label] for label in LABELS] for r in results])
    # the tiny model's classes are Bad, Meh, Good: the labels' order
    assert np.abs(got - expected).max() < 1e-5
    assert [r.label for r in results] == [LABELS[i] for i in expected.argmax(axis=1)]


def test_fresh_buffers_per_batch_score_as_reused_ones(tiny_dir: Path) -> None:
    """The feed kept to measure against (reuse_buffers=False) is the same computation."""
    texts = tiny_texts(90)
    reused = SentimentEngine(tiny_dir, device="cpu", max_batch_size=8,
                             label_overrides={"Meh": "neutral"})
    fresh = SentimentEngine(tiny_dir, device="cpu", max_batch_size=8,
                            label_overrides={"Meh": "neutral"}, reuse_buffers=False)
    assert fresh.score(texts) == reused.score(texts)


def test_an_int8_model_is_not_compiled(tiny_dir: Path) -> None:
    """torch.compile changes dynamic int8 layers' scores: the engine keeps int8 uncompiled."""
    engine = SentimentEngine(tiny_dir, device="cpu", quantize_int8=True, compile_model=True,
                             label_overrides={"Meh": "neutral"})
    assert engine.quantized and not engine.compiled
    plain = SentimentEngine(tiny_dir, device="cpu", quantize_int8=True,
                            label_overrides={"Meh": "neutral"})
    assert engine.score(tiny_texts(20)) == plain.score(tiny_texts(20))
