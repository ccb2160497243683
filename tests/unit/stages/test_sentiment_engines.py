"""Several engine processes behind the batcher: the same results as one engine, in order."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipeline.config import load_settings
from pipeline.stages.sentiment.batcher import SentimentBatcher
from pipeline.stages.sentiment.engine import SentimentEngine
from pipeline.stages.sentiment.engines import EngineProcesses, build_scorer
from pipeline.stages.sentiment.labels import LABELS
from tests.unit.stages.tiny_checkpoint import tiny_texts, write_tiny_checkpoint

os.environ.setdefault("HF_HUB_OFFLINE", "1")

OPTIONS: dict[str, Any] = {"max_tokens": 16, "max_batch_size": 8, "max_batch_tokens": 8 * 16,
           "label_overrides": {"Meh": "neutral"}}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_checkpoint(tmp_path_factory.mktemp("tiny"), {0: "Bad", 1: "Meh", 2: "Good"})


@pytest.fixture(scope="module")
def two_engines(tiny_dir: Path) -> Iterator[EngineProcesses]:
    with EngineProcesses(tiny_dir, count=2, device="cpu", **OPTIONS) as engines:
        yield engines


def scores(results: list) -> np.ndarray:  # type: ignore[type-arg]
    return np.array([[r.scores[label] for label in LABELS] for r in results])


def test_two_engine_processes_score_as_one_engine(tiny_dir: Path,
                                                  two_engines: EngineProcesses) -> None:
    one = SentimentEngine(tiny_dir, device="cpu", **OPTIONS)
    texts = [*tiny_texts(60), "", "good"]
    packed = one.encode_packed(texts)
    assert np.array_equal(two_engines.encode_packed(texts).ids, packed.ids)
    expected = one.score_packed(packed)
    got = two_engines.score_packed(packed)
    assert [r.label for r in got] == [r.label for r in expected]
    assert np.abs(scores(got) - scores(expected)).max() < 1e-6
    assert got[-2] == expected[-2]  # an empty text: neutral, no model call
    assert two_engines.alive and two_engines.parallel_batches == 2


def test_batcher_keeps_two_engine_processes_busy_and_order(
    tiny_dir: Path, two_engines: EngineProcesses,
) -> None:
    one = SentimentEngine(tiny_dir, device="cpu", **OPTIONS)
    requests = [tiny_texts(40 + i)[i:] for i in range(12)]

    async def run() -> tuple[list[list], int]:  # type: ignore[type-arg]
        async with SentimentBatcher(two_engines, max_batch_size=8, max_batch_tokens=8 * 16,
                                    max_wait=0.001) as batcher:
            assert batcher.parallel_batches == 2
            answers = await asyncio.gather(*(batcher.submit(texts) for texts in requests))
            return list(answers), len(batcher.batch_sizes)

    answers, batches = asyncio.run(run())
    assert batches > 2
    for texts, answer in zip(requests, answers, strict=True):
        expected = one.score(texts)
        assert [r.label for r in answer] == [r.label for r in expected]
        assert np.abs(scores(answer) - scores(expected)).max() < 1e-6


def test_a_failed_batch_fails_only_its_caller(two_engines: EngineProcesses) -> None:
    from pipeline.stages.sentiment.tokens import PackedTokens

    broken = PackedTokens(np.array([2, 10_000, 3], dtype=np.int32), np.array([3], np.int32))
    with pytest.raises(RuntimeError, match="failed a batch"):
        two_engines.score_packed(broken)  # an id past the vocabulary
    assert two_engines.alive
    assert len(two_engines.score_packed(two_engines.encode_packed(["good"]))) == 1


def test_settings_pick_one_engine_or_processes(tiny_dir: Path) -> None:
    settings = load_settings(sentiment_model=str(tiny_dir), sentiment_device="cpu",
                             sentiment_labels={"Meh": "neutral"})
    assert isinstance(build_scorer(settings), SentimentEngine)
    assert settings.sentiment_engines == 1 and not settings.sentiment_compile
