"""The themes' embeddings from the real e5-small encoder (built by ``make setup``)."""

from __future__ import annotations

import numpy as np

from pipeline.embeddings import mean_pooled_embeddings, shared_encoder

TEXTS = [
    "Telvia me ha cobrado la factura dos veces este mes",
    "Telvia charged my bill twice this month",
    "Qué partidazo del Madrid anoche, golazo en el último minuto",
    "",
]


def test_rows_are_unit_float32_and_an_empty_text_is_zeros() -> None:
    vectors = mean_pooled_embeddings(TEXTS)
    assert vectors.dtype == np.float32 and vectors.shape == (4, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors[:3], axis=1), 1.0, atol=1e-5)
    assert not vectors[3].any()


def test_one_topic_in_two_languages_is_closer_than_another_topic() -> None:
    spanish_bill, english_bill, football, _ = mean_pooled_embeddings(TEXTS)
    assert float(spanish_bill @ english_bill) > float(spanish_bill @ football) + 0.05


def test_a_batch_gives_each_text_what_it_gets_alone() -> None:
    # length-sorted, padded batches must not change a text's vector
    together = mean_pooled_embeddings(TEXTS[:3], batch_size=3)
    alone = np.vstack([mean_pooled_embeddings([text]) for text in TEXTS[:3]])
    np.testing.assert_allclose(together, alone, atol=2e-5)
    assert shared_encoder() is shared_encoder()
