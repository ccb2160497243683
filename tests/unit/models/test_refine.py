"""The refinement's pure parts: the val halves and the low-rank export into the delta."""

from __future__ import annotations

import numpy as np
import torch

from models.refine_sentiment import append_low_rank, low_rank, val_halves
from models.sentiment_delta import merge_delta
from models.train_sentiment import Split


def test_val_halves_split_every_language_in_two_disjoint_halves() -> None:
    languages = np.repeat(np.arange(8), 323)
    split = Split([], np.zeros(len(languages), dtype=np.int64), languages)
    halves = val_halves(split)
    assert not np.any(halves["tune"] & halves["check"])
    assert np.all(halves["tune"] | halves["check"])
    for index in range(8):
        assert int(np.sum(halves["tune"] & (languages == index))) == 162
    # fixed by a seed: the same rows every run, so "check" stays untouched by tuning
    assert np.array_equal(val_halves(split)["tune"], halves["tune"])
    assert not np.array_equal(halves["tune"][:323], np.arange(323) < 162)


def test_low_rank_recovers_a_low_rank_matrix_and_divides_out_the_scale() -> None:
    generator = torch.Generator().manual_seed(0)
    residual = torch.randn(24, 3, generator=generator) @ torch.randn(3, 16, generator=generator)
    b, a = low_rank(residual, 3, scale=2.0)
    assert b.shape == (24, 3) and a.shape == (3, 16)
    torch.testing.assert_close(2.0 * b @ a, residual, atol=1e-5, rtol=1e-5)
    b1, a1 = low_rank(residual, 1, scale=2.0)
    assert torch.linalg.norm(2.0 * b1 @ a1 - residual) > 1e-2  # a cut loses the rest


def test_appended_factors_merge_to_the_old_update_plus_the_residual() -> None:
    generator = torch.Generator().manual_seed(1)
    weight = torch.randn(12, 8, generator=generator)
    name = "bert.encoder.layer.11.output.dense"
    delta = {f"{name}.lora_A": torch.randn(4, 8, generator=generator),
             f"{name}.lora_B": torch.randn(12, 4, generator=generator)}
    metadata = {"lora_alpha": "32", "lora_rank": "16"}
    before = merge_delta({f"{name}.weight": weight}, delta, metadata)[f"{name}.weight"]
    residual = torch.randn(12, 2, generator=generator) @ torch.randn(2, 8, generator=generator)
    append_low_rank(delta, name, residual, rank=2, scale=2.0)
    assert delta[f"{name}.lora_A"].shape == (6, 8)
    after = merge_delta({f"{name}.weight": weight}, delta, metadata)[f"{name}.weight"]
    torch.testing.assert_close(after, before + residual, atol=1e-4, rtol=1e-4)
