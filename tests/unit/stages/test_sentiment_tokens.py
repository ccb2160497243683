"""Packed token ids, and the engine's batch planning and scoring paths on CPU."""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch

from pipeline.stages.sentiment.engine import SentimentEngine
from pipeline.stages.sentiment.labels import LABELS
from pipeline.stages.sentiment.planning import plan_batches
from pipeline.stages.sentiment.tokens import (
    PackedTokens,
    clean_for_sentiment,
    encode_packed,
    truncating_tokenizer,
)
from tests.unit.stages.tiny_checkpoint import tiny_texts, write_tiny_checkpoint

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ODD_TEXTS = ["", " \t", "\u200b", "😍", "x" * 10_000, "good " * 500, "@acme is good",
             "mixed скрипт 混合", "bad"]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_checkpoint(tmp_path_factory.mktemp("tiny"), {0: "Bad", 1: "Meh", 2: "Good"})


def tiny_engine(folder: Path, **options: object) -> SentimentEngine:
    return SentimentEngine(folder, device="cpu", max_tokens=16, max_batch_size=4,
                           label_overrides={"Meh": "neutral"}, **options)  # type: ignore[arg-type]


def test_packed_tokens_round_trip() -> None:
    rows = [(0, 5, 2), (), (0, 9, 9, 9, 2), (0, 2)]
    packed = PackedTokens.from_rows(rows)
    assert packed.rows() == rows
    assert [packed.row(i) for i in range(len(rows))] == rows
    assert packed.starts.tolist() == [0, 3, 3, 8]
    halves = PackedTokens.concat([PackedTokens.from_rows(rows[:1]),
                                  PackedTokens.from_rows(rows[1:])])
    assert halves.rows() == rows
    assert len(PackedTokens.concat([])) == 0


def greedy_reference(lengths: Sequence[int], max_rows: int, max_tokens: int,
                     sort: bool) -> list[list[int]]:
    """The batching rule written the obvious way, one position at a time."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i]) if sort else range(len(lengths))
    batches: list[list[int]] = []
    current: list[int] = []
    widest = 0
    for index in order:
        width = max(8, -(-lengths[index] // 8) * 8)
        if current and (len(current) == max_rows or max(widest, width) * (len(current) + 1)
                        > max_tokens):
            batches.append(current)
            current, widest = [], 0
        current.append(index)
        widest = max(widest, width)
    if current:
        batches.append(current)
    return batches


@pytest.mark.parametrize("sort", [True, False])
def test_batch_plan_matches_the_greedy_rule(sort: bool) -> None:
    draw = random.Random(7)
    for _ in range(200):
        lengths = [draw.randint(1, 130) for _ in range(draw.randint(1, 60))]
        max_rows, max_tokens = draw.randint(1, 16), draw.choice([64, 100, 256, 2048])
        assert plan_batches(lengths, max_rows, max_tokens, sort_by_length=sort) == \
            greedy_reference(lengths, max_rows, max_tokens, sort)


def test_packed_encoding_matches_per_text_encoding(tiny_dir: Path) -> None:
    engine = tiny_engine(tiny_dir, tokenize_threads=2)
    texts = ODD_TEXTS + tiny_texts(40)
    tokenizer = truncating_tokenizer(engine.encoder._backend.to_str(), 16)
    one_by_one = [encode_packed(tokenizer, [text], 16).row(0) for text in texts]
    assert encode_packed(tokenizer, texts, 16).rows() == one_by_one
    # a call large enough to be spread over threads, in order
    many = texts * 40
    assert engine.encode_packed(many).rows() == one_by_one * 40
    assert engine.encode_packed(texts).rows() == one_by_one
    assert one_by_one[:3] == [(), (), ()]  # nothing left after cleaning
    assert max(len(row) for row in one_by_one) == 16  # truncated


def test_every_distinct_text_reaches_the_model_once(tiny_dir: Path) -> None:
    batches: list[int] = []
    engine = tiny_engine(tiny_dir, on_batch=lambda rows, seconds: batches.append(rows))
    texts = tiny_texts(30) * 2 + ["", "\u200b"]
    results = engine.score(texts, chunk=7)  # several chunks, tokenised ahead
    assert sum(batches) == len(set(tiny_texts(30)))
    assert max(batches) <= engine.max_batch_size
    assert results[:30] == results[30:60]
    assert all(r.label in LABELS for r in results)
    assert results[-1].scores == {"negative": 0.0, "neutral": 1.0, "positive": 0.0}


def test_classes_mapped_onto_one_label_add_up(tmp_path: Path) -> None:
    stars = {0: "1 star", 1: "2 stars", 2: "3 stars", 3: "4 stars", 4: "5 stars"}
    engine = SentimentEngine(write_tiny_checkpoint(tmp_path, stars), device="cpu")
    texts = tiny_texts(12)
    encoded = engine.encode_packed(texts).rows()
    for text, item, result in zip(texts, encoded, engine.score(texts), strict=True):
        ids = torch.tensor([item])
        with torch.inference_mode():
            probabilities = torch.softmax(engine.model(input_ids=ids).logits.float(), -1)[0]
        expected = np.array([probabilities[:2].sum(), probabilities[2], probabilities[3:].sum()])
        got = np.array([result.scores[label] for label in LABELS])
        assert np.allclose(got, expected, atol=1e-5), text
        assert result.label == LABELS[int(expected.argmax())]


class ReplayedEagerly:
    """Stands in for a captured CUDA graph on CPU: same fixed shape, run eagerly."""

    shapes: ClassVar[list[tuple[int, int]]] = []

    def __init__(self, engine: SentimentEngine, rows: int, width: int, pool: object) -> None:
        self.engine, self.rows, self.width = engine, rows, width
        ReplayedEagerly.shapes.append((rows, width))

    def replay(self, input_ids: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
        assert input_ids.shape == attention.shape == (self.rows, self.width)
        return self.engine._forward(input_ids, attention)


def test_graph_batches_padded_to_their_row_bucket_score_as_eager_ones(
    tiny_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The CUDA-graph path's padding (rows up to a bucket), checked where CI can run it."""
    from pipeline.stages.sentiment import cuda_graphs, planning

    monkeypatch.setattr(cuda_graphs, "_CudaGraph", ReplayedEagerly)
    monkeypatch.setattr(torch.cuda, "graph_pool_handle", lambda: None)
    ReplayedEagerly.shapes = []
    texts = tiny_texts(70)
    eager = SentimentEngine(tiny_dir, device="cpu", max_batch_size=16,
                            label_overrides={"Meh": "neutral"})
    graphed = SentimentEngine(tiny_dir, device="cpu", max_batch_size=16,
                              label_overrides={"Meh": "neutral"})
    graphed._graphs = cuda_graphs._CudaGraphs(graphed)
    expected = eager.score(texts)
    got = graphed.score(texts)
    assert got is not expected
    for left, right in zip(got, expected, strict=True):
        assert left.label == right.label
        assert all(abs(left.scores[k] - right.scores[k]) < 1e-5 for k in LABELS)
    buckets = {width: planning._row_buckets(16, 8192, width) for width in (8, 16)}
    assert buckets == {8: [1, 4, 16], 16: [1, 4, 16]}
    assert ReplayedEagerly.shapes  # batches went through the stand-in graphs
    for rows, width in ReplayedEagerly.shapes:
        assert rows in buckets[width]
    assert len(set(ReplayedEagerly.shapes)) == len(ReplayedEagerly.shapes)  # captured once


def clean_by_the_book(text: str) -> str:
    """The cleaning rule written plainly: handles first, then invisible characters."""
    from pipeline.stages.sentiment import tokens

    handles = tokens._HANDLE.sub("@user", text)
    return " ".join(tokens._INVISIBLE.sub(" ", handles).split())


def test_cleaning_fast_paths_clean_as_the_rule_does() -> None:
    draw = random.Random(11)
    pieces = ["@acme", "@", "@@x", "a@b.com", "x", "héllo", "混合", "😍", " ", "\t", "\n",
              "\u200b", "\u200d", "\x00", "\x07", "\x7f", "\x85", "\xa0", "_", "#tag", "@ü_1"]
    texts = [chr(code) + "@a" + chr(code) + "b" for code in range(128)]
    texts += ["".join(draw.choice(pieces) for _ in range(draw.randint(0, 12)))
              for _ in range(5000)]
    for text in texts:
        assert clean_for_sentiment(text) == clean_by_the_book(text), repr(text)
