"""Sentiment core: label mapping, the engine (any checkpoint, default model) and the batcher."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch

from pipeline.config import load_settings
from pipeline.records import ScoredMention, Sentiment
from pipeline.stages.sentiment.batcher import SentimentBatcher, SentimentExpiredError
from pipeline.stages.sentiment.engine import (
    AUTO_BATCH_SIZE,
    DEFAULT_MODEL_DIR,
    SentimentEngine,
    batch_size_for,
    build_engine,
)
from pipeline.stages.sentiment.labels import LABELS, SentimentResult, label_mapping
from pipeline.stages.sentiment.mentions import CopyMemory, score_mentions
from pipeline.stages.sentiment.tokens import PackedTokens, clean_for_sentiment
from tests.unit.stages.tiny_checkpoint import tiny_texts, write_tiny_checkpoint

os.environ.setdefault("HF_HUB_OFFLINE", "1")

GOLDEN = Path(__file__).with_name("sentiment_golden.json")
EDGE_CASES = [
    "",
    "   \t\n  ",
    "\u200b\u200d",
    "\x00\x07",
    "😍😍😍",
    "🫠",
    "@acme",
    "http://t.co/x",
    "x" * 100_000,
    "great " * 20_000,
    "混合 mixed スクリプト текст عربي हिन्दी",
    "Ünïcödé ñ ç ß ø",
]


# --- label mapping and cleaning -------------------------------------------------------

@pytest.mark.parametrize(
    ("id2label", "expected"),
    [
        ({0: "negative", 1: "neutral", 2: "positive"}, ["negative", "neutral", "positive"]),
        ({0: "Positive", 1: "Negative", 2: "Neutral"}, ["positive", "negative", "neutral"]),
        ({0: "NEG", 1: "NEU", 2: "POS"}, ["negative", "neutral", "positive"]),
        ({0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}, ["negative", "neutral", "positive"]),
        ({0: "NEGATIVE", 1: "POSITIVE"}, ["negative", "positive"]),
        ({0: "1 star", 1: "2 stars", 2: "3 stars", 3: "4 stars", 4: "5 stars"},
         ["negative", "negative", "neutral", "positive", "positive"]),
        ({0: "very negative", 1: "neutral", 2: "very positive"},
         ["negative", "neutral", "positive"]),
    ],
)
def test_label_mapping(id2label: dict[int, str], expected: list[str]) -> None:
    assert label_mapping(id2label) == expected


def test_label_mapping_overrides_and_failures() -> None:
    assert label_mapping({0: "Bad", 1: "Meh", 2: "Good"}, {"meh": "neutral"}) == [
        "negative", "neutral", "positive",
    ]
    with pytest.raises(ValueError, match="cannot map"):
        label_mapping({0: "joy", 1: "anger", 2: "fear"})
    with pytest.raises(ValueError, match="not one of"):
        label_mapping({0: "a"}, {"a": "happy"})


def test_clean_for_sentiment() -> None:
    assert clean_for_sentiment("RT  @acme_help: thanks!! ") == "RT @user: thanks!!"
    assert clean_for_sentiment("mail me at ana@example.com") == "mail me at ana@example.com"
    assert clean_for_sentiment(" \n\t ") == ""


# --- any checkpoint: a tiny random BERT with its own label names ---------------------

@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_checkpoint(tmp_path_factory.mktemp("tiny"), {0: "Bad", 1: "Meh", 2: "Good"})


@pytest.fixture(scope="module")
def tiny_engine(tiny_dir: Path) -> SentimentEngine:
    return SentimentEngine(tiny_dir, device="cpu", max_tokens=16, max_batch_size=4,
                           label_overrides={"Meh": "neutral"})


def assert_close(a: Sequence[SentimentResult], b: Sequence[SentimentResult],
                 tolerance: float) -> None:
    assert [r.label for r in a] == [r.label for r in b]
    for left, right in zip(a, b, strict=True):
        for label in LABELS:
            assert left.scores[label] == pytest.approx(right.scores[label], abs=tolerance)


def test_any_checkpoint_with_its_own_labels(tiny_engine: SentimentEngine) -> None:
    assert tiny_engine.classes == ["negative", "neutral", "positive"]
    results = tiny_engine.score(tiny_texts(10))
    assert len(results) == 10
    for result in results:
        assert result.label == max(result.scores, key=result.scores.__getitem__)
        assert sum(result.scores.values()) == pytest.approx(1.0, abs=1e-5)


def test_five_star_checkpoint_sums_classes(tmp_path: Path) -> None:
    folder = write_tiny_checkpoint(
        tmp_path, {0: "1 star", 1: "2 stars", 2: "3 stars", 3: "4 stars", 4: "5 stars"},
    )
    engine = SentimentEngine(folder, device="cpu")
    with torch.inference_mode():
        batch = engine.tokenizer(["good phone"], return_tensors="pt")
        stars = torch.softmax(engine.model(**batch).logits, dim=-1)[0].tolist()
    (result,) = engine.score(["good phone"])
    assert result.scores["negative"] == pytest.approx(stars[0] + stars[1], abs=1e-5)
    assert result.scores["positive"] == pytest.approx(stars[3] + stars[4], abs=1e-5)


def test_tiny_batch_invariance(tiny_engine: SentimentEngine) -> None:
    texts = tiny_texts(11)
    one_at_a_time = [tiny_engine.score([t])[0] for t in texts]
    assert_close(tiny_engine.score(texts), one_at_a_time, 1e-5)


def test_batches_respect_budgets(tiny_dir: Path) -> None:
    engine = SentimentEngine(tiny_dir, device="cpu", max_batch_size=3, max_batch_tokens=40,
                             label_overrides={"Meh": "neutral"})
    lengths = [3, 30, 5, 12, 7, 9, 20, 2, 4]
    batches = engine.plan_batches(lengths)
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    for batch in batches:
        assert len(batch) <= 3
        width = max(-(-lengths[i] // 8) * 8 for i in batch)
        assert width * len(batch) <= 40 or len(batch) == 1
    unsorted = SentimentEngine(tiny_dir, device="cpu", max_batch_size=3, sort_by_length=False,
                               label_overrides={"Meh": "neutral"})
    assert unsorted.plan_batches(lengths)[0] == [0, 1, 2]


def test_identical_texts_scored_once(tiny_dir: Path) -> None:
    rows_seen: list[int] = []
    engine = SentimentEngine(tiny_dir, device="cpu", label_overrides={"Meh": "neutral"},
                             on_batch=lambda rows, seconds: rows_seen.append(rows))
    results = engine.score(["good phone", "bad", "good phone", "bad"])
    assert sum(rows_seen) == 2
    assert results[0] == results[2] and results[1] == results[3]
    rows_seen.clear()
    # texts that differ only where cleaning erases the difference share their token ids
    packed = engine.encode_packed(["good phone", "good   phone", "good phone\u200b", "bad"])
    assert packed.row(0) == packed.row(1) == packed.row(2)
    assert engine.score_packed(packed)[1] == results[0]


def test_int8_quantised_engine_runs(tiny_dir: Path) -> None:
    engine = SentimentEngine(tiny_dir, device="cpu", quantize_int8=True,
                             label_overrides={"Meh": "neutral"})
    assert engine.quantized
    assert all(r.label in LABELS for r in engine.score(tiny_texts(5)))


def test_missing_model_says_how_to_build(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no model"):
        SentimentEngine(tmp_path / "nowhere")


# --- the default model ------------------------------------------------------------------

@pytest.fixture(scope="module")
def default_engine() -> SentimentEngine:
    if not (DEFAULT_MODEL_DIR / "model.safetensors").exists():
        from models.build_default import build

        build()
    return SentimentEngine(DEFAULT_MODEL_DIR, device="cpu")


def test_default_model_labels(default_engine: SentimentEngine) -> None:
    assert default_engine.classes == list(LABELS)


def test_default_edge_cases_never_fail_the_batch(default_engine: SentimentEngine) -> None:
    results = default_engine.score(EDGE_CASES)
    assert len(results) == len(EDGE_CASES)
    for text, result in zip(EDGE_CASES, results, strict=True):
        assert result.label in LABELS, text[:20]
        assert sum(result.scores.values()) == pytest.approx(1.0, abs=1e-4)
    # nothing left to read after cleaning: neutral by definition, no model call
    for result in results[:4]:
        assert result.label == "neutral" and result.scores["neutral"] == 1.0
    long_tokens = default_engine.encode_packed(["x" * 100_000]).row(0)
    assert len(long_tokens) <= default_engine.max_tokens


def test_default_batch_invariance(default_engine: SentimentEngine) -> None:
    golden = json.loads(GOLDEN.read_text())
    texts = [case["text"] for case in golden] + EDGE_CASES[4:8]
    one_at_a_time = [default_engine.score([t])[0] for t in texts]
    assert_close(default_engine.score(texts), one_at_a_time, 1e-4)


def test_default_golden_snapshot(default_engine: SentimentEngine) -> None:
    golden = json.loads(GOLDEN.read_text())
    results = default_engine.score([case["text"] for case in golden])
    for case, result in zip(golden, results, strict=True):
        assert result.label == case["label"], case["text"]
        for label in LABELS:
            assert result.scores[label] == pytest.approx(case["scores"][label], abs=2e-3)


def regenerate_golden() -> None:
    """Rewrite the snapshot after a deliberate model change (then review the diff)."""
    engine = SentimentEngine(DEFAULT_MODEL_DIR, device="cpu")
    golden = json.loads(GOLDEN.read_text())
    for case, result in zip(golden, engine.score([c["text"] for c in golden]), strict=True):
        case["label"] = result.label
        case["scores"] = {k: round(v, 5) for k, v in result.scores.items()}
    GOLDEN.write_text(json.dumps(golden, ensure_ascii=False, indent=1) + "\n")


# --- the async batcher ------------------------------------------------------------------

class GatedEngine:
    """Wraps an engine: records what reaches the model; can hold the model thread."""

    def __init__(self, engine: SentimentEngine) -> None:
        self.engine = engine
        self.seen: list[tuple[int, ...]] = []
        self.batch_lengths: list[list[int]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def encode_carried(self, texts: Sequence[str],
                       carried: Sequence[object] | None = None) -> PackedTokens:
        return self.engine.encode_carried(texts, carried)

    def score_packed(self, packed: PackedTokens) -> list[SentimentResult]:
        self.entered.set()
        self.gate.wait(timeout=10)
        self.seen += packed.rows()
        self.batch_lengths.append(packed.lengths.tolist())
        return self.engine.score_packed(packed)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_batcher_keeps_order_across_concurrent_requests(
    tiny_engine: SentimentEngine,
) -> None:
    requests = [tiny_texts(n)[n % 3:] for n in (5, 9, 3, 12)]
    async with SentimentBatcher(tiny_engine, max_batch_size=8, max_wait=0.01) as batcher:
        answers = await asyncio.gather(*(batcher.submit(texts) for texts in requests))
    for texts, answer in zip(requests, answers, strict=True):
        assert_close(answer, tiny_engine.score(texts), 1e-5)


async def test_batcher_size_and_token_bounds(tiny_engine: SentimentEngine) -> None:
    async with SentimentBatcher(tiny_engine, max_batch_size=4, max_wait=0.01) as batcher:
        await batcher.submit(tiny_texts(10))
    assert sum(batcher.batch_sizes) == 10
    assert max(batcher.batch_sizes) <= 4
    # every tiny text pads to 8 or 16 tokens: a 16-token budget fits at most 2 of width 8
    async with SentimentBatcher(tiny_engine, max_batch_size=64, max_batch_tokens=16,
                                max_wait=0.01) as batcher:
        await batcher.submit(tiny_texts(6))
    assert sum(batcher.batch_sizes) == 6
    assert max(batcher.batch_sizes) <= 2


async def test_batcher_closes_a_batch_when_full_or_when_the_wait_ends(
    tiny_engine: SentimentEngine,
) -> None:
    # a full batch goes out without waiting out a long max_wait
    async with SentimentBatcher(tiny_engine, max_batch_size=2, max_wait=60) as batcher:
        await asyncio.wait_for(
            asyncio.gather(batcher.submit(["good"]), batcher.submit(["bad"])), timeout=30,
        )
        assert list(batcher.batch_sizes) == [2]
    # a lone text goes out once max_wait has passed, though the batch is far from full
    async with SentimentBatcher(tiny_engine, max_batch_size=64, max_wait=0.01) as batcher:
        (result,) = await asyncio.wait_for(batcher.submit(["fine"]), timeout=30)
        assert list(batcher.batch_sizes) == [1]
    assert result.label in LABELS


async def test_batcher_drops_expired_work_before_the_model(
    tiny_engine: SentimentEngine,
) -> None:
    gated = GatedEngine(tiny_engine)
    gated.gate.clear()
    clock = FakeClock()
    batcher = SentimentBatcher(gated, max_batch_size=1, max_wait=0.0, clock=clock)  # type: ignore[arg-type]
    await batcher.start()
    first = asyncio.create_task(batcher.submit(["good phone"]))
    await asyncio.to_thread(gated.entered.wait, 10)  # the model thread now holds batch 1
    late = asyncio.create_task(batcher.submit(["bad service"], timeout=5))
    fresh = asyncio.create_task(batcher.submit(["fine"], timeout=500))
    await asyncio.sleep(0.05)  # both are queued behind the busy model
    clock.now += 60
    gated.gate.set()
    assert (await first)[0].label in LABELS
    with pytest.raises(SentimentExpiredError):
        await late
    assert (await fresh)[0].label in LABELS
    await batcher.stop()
    bad_service = tiny_engine.encode_packed(["bad service"]).row(0)
    assert bad_service not in gated.seen
    assert batcher.expired == 1


async def backlog_batch_lengths(tiny_engine: SentimentEngine, texts: list[str],
                                sort_window: int) -> list[int]:
    """Queue ``texts`` behind a busy model; the lengths the model then saw, in order."""
    gated = GatedEngine(tiny_engine)
    gated.gate.clear()
    batcher = SentimentBatcher(gated, max_batch_size=4, max_batch_tokens=4 * 64,  # type: ignore[arg-type]
                               max_wait=0.0, sort_window=sort_window)
    await batcher.start()
    busy = asyncio.create_task(batcher.submit(["good"]))
    await asyncio.to_thread(gated.entered.wait, 10)  # the model thread holds the first batch
    backlog = asyncio.create_task(batcher.submit(texts))
    await asyncio.sleep(0.05)
    gated.gate.set()
    assert_close(await backlog, tiny_engine.score(texts), 1e-5)
    await busy
    await batcher.stop()
    return [length for batch in gated.batch_lengths[1:] for length in batch]


async def test_batcher_sorts_a_backlog_by_length(tiny_engine: SentimentEngine) -> None:
    texts = tiny_texts(24)  # 1 to 9 words, interleaved
    sorted_window = await backlog_batch_lengths(tiny_engine, texts, sort_window=8)
    assert sorted_window == sorted(sorted_window)
    arrival_order = await backlog_batch_lengths(tiny_engine, texts, sort_window=1)
    assert sorted(arrival_order) == sorted(sorted_window)
    assert arrival_order != sorted(arrival_order)


async def test_batcher_empty_texts_and_stop_drains(tiny_engine: SentimentEngine) -> None:
    batcher = SentimentBatcher(tiny_engine, max_batch_size=4, max_wait=0.5)
    await batcher.start()
    results = await batcher.submit(["", "   "])
    assert [r.label for r in results] == ["neutral", "neutral"]
    pending = asyncio.create_task(batcher.submit(tiny_texts(3)))
    await asyncio.sleep(0)
    await batcher.stop()
    assert len(await pending) == 3
    with pytest.raises(RuntimeError, match="start"):
        await batcher.submit(["good"])


if __name__ == "__main__":
    regenerate_golden()


# --- copies skip the model ---------------------------------------------------------------

def _result(label: str) -> SentimentResult:
    scores = dict.fromkeys(LABELS, 0.0)
    scores[label] = 1.0
    return SentimentResult(label, scores)


def _mention(mention_id: str, text: str = "", duplicate_of: str | None = None) -> ScoredMention:
    return ScoredMention(id=mention_id, text=text, created_at="", duplicate_of=duplicate_of)


def test_copies_inherit_within_a_batch_and_across_batches() -> None:
    memory = CopyMemory(capacity=10)
    batch = [
        _mention("a", "terrible"),
        _mention("b", "RT terrible", duplicate_of="a"),
        _mention("c", "copy of an unseen first", duplicate_of="zz"),
    ]
    plan = memory.plan(batch)
    assert plan[0] == [0, 2] and plan[1] == {} and plan[2] == {1: 0}
    inherited = score_mentions(batch, [_result("negative"), _result("neutral")], plan, memory)
    assert inherited == 1
    first = batch[0].sentiment
    assert isinstance(first, Sentiment) and not first.inherited
    assert batch[1].sentiment == Sentiment(first.label, first.scores, inherited=True)
    assert isinstance(batch[2].sentiment, Sentiment) and not batch[2].sentiment.inherited

    later = [_mention("d", "terrible!!", duplicate_of="a"), _mention("e", "x")]
    plan = memory.plan(later)
    assert plan[0] == [1] and list(plan[1]) == [0]
    score_mentions(later, [_result("positive")], plan, memory)
    assert later[0].sentiment == Sentiment("negative", first.scores, inherited=True)


def test_copy_memory_forgets_oldest_first() -> None:
    memory = CopyMemory(capacity=2)
    for name in ("a", "b", "c"):
        memory.remember(_mention(name), _result("neutral"))
    assert len(memory) == 2
    plan = memory.plan([_mention("x", duplicate_of="a"), _mention("y", duplicate_of="c")])
    assert plan[0] == [0] and list(plan[1]) == [1]


def test_unknown_local_folder_is_not_taken_for_a_hub_id(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no model"):
        SentimentEngine(str(tmp_path / "org" / "missing"), device="cpu")


def test_engine_from_settings(tiny_dir: Path) -> None:
    settings = load_settings(sentiment_model=str(tiny_dir), sentiment_device="cpu",
                             sentiment_labels="Bad:negative,Meh:neutral,Good:positive",
                             sentiment_batch_size=3)
    engine = build_engine(settings)
    assert engine.classes == ["negative", "neutral", "positive"]
    assert engine.max_batch_size == 3 and engine.device.type == "cpu"


def test_batch_size_auto_follows_the_device() -> None:
    auto = load_settings()
    assert batch_size_for(auto, torch.device("cpu")) == AUTO_BATCH_SIZE["cpu"]
    assert batch_size_for(auto, torch.device("cuda", 1)) == AUTO_BATCH_SIZE["cuda"]
    assert batch_size_for(load_settings(sentiment_batch_size=7), torch.device("cuda")) == 7
