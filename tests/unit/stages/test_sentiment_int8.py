"""Int8 smoothing: an exact rewrite in float, a smaller error in int8, calibration files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from transformers import BertForSequenceClassification

from pipeline.config import load_settings
from pipeline.stages.sentiment.engine import SentimentEngine, build_engine
from pipeline.stages.sentiment.int8 import (
    CALIBRATION_FILE,
    ChannelScaledLinear,
    load_calibration,
    quantize_int8,
    record_input_ranges,
    save_calibration,
    smooth_linears,
)
from tests.unit.stages.tiny_checkpoint import tiny_texts, write_tiny_checkpoint


class TwoLayers(nn.Module):
    """Stands in for a transformer body: its input has a few huge channels."""

    def __init__(self) -> None:
        super().__init__()
        self.up = nn.Linear(64, 128)
        self.down = nn.Linear(128, 16)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.down(torch.relu(self.up(inputs)))  # type: ignore[no-any-return]


def outlier_inputs(rows: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(rows, 64, generator=generator)
    inputs[:, :3] *= 60  # the outlier channels that ruin one scale per activation matrix
    return inputs


def test_record_input_ranges_is_the_largest_magnitude_per_channel() -> None:
    torch.manual_seed(0)
    model = TwoLayers()
    batches = [outlier_inputs(32, seed) for seed in range(3)]
    ranges = record_input_ranges(model, lambda: [model(b) for b in batches])
    assert set(ranges) == {"up", "down"}
    expected = torch.cat(batches).abs().amax(0)
    torch.testing.assert_close(ranges["up"], expected)
    hidden = torch.cat([torch.relu(model.up(b)) for b in batches]).abs().amax(0)
    torch.testing.assert_close(ranges["down"], hidden.detach())
    assert not model.up._forward_hooks  # the hooks are gone afterwards


def calibrated_model(rows: int) -> tuple[TwoLayers, torch.Tensor, torch.Tensor,
                                         dict[str, torch.Tensor]]:
    """A seeded model, test inputs, its float outputs on them, and ranges from other inputs."""
    torch.manual_seed(0)
    model = TwoLayers()
    inputs = outlier_inputs(rows, seed=7)
    ranges = record_input_ranges(model, lambda: model(outlier_inputs(rows, seed=2)))
    return model, inputs, model(inputs).detach(), ranges


def test_smoothing_keeps_the_function_in_float() -> None:
    model, inputs, before, ranges = calibrated_model(64)
    assert smooth_linears(model, ranges, alpha=0.85) == ["up.linear", "down.linear"]
    assert isinstance(model.up, ChannelScaledLinear)
    torch.testing.assert_close(model(inputs).detach(), before, rtol=1e-4, atol=1e-4)


def test_smoothing_shrinks_the_int8_error_on_outlier_channels() -> None:
    reference, inputs, exact, ranges = calibrated_model(256)
    plain = quantize_int8(_copy(reference))
    smoothed = quantize_int8(_copy(reference), ranges, alpha=0.85)
    plain_error = (plain(inputs) - exact).norm() / exact.norm()
    smoothed_error = (smoothed(inputs) - exact).norm() / exact.norm()
    assert smoothed_error < 0.5 * plain_error, (float(smoothed_error), float(plain_error))


def _copy(model: TwoLayers) -> TwoLayers:
    twin = TwoLayers()
    twin.load_state_dict(model.state_dict())
    return twin


def test_calibration_that_does_not_fit_is_refused() -> None:
    model = TwoLayers()
    with pytest.raises(ValueError, match="does not fit"):
        smooth_linears(model, {"up": torch.ones(65)})
    with pytest.raises(ValueError, match="does not fit"):
        smooth_linears(model, {"missing": torch.ones(64)})


def test_calibrated_folder_turns_int8_on_by_default(tmp_path: Path) -> None:
    folder = write_tiny_checkpoint(tmp_path / "tiny", {0: "negative", 1: "neutral",
                                                       2: "positive"})
    fp32 = SentimentEngine(folder, device="cpu", quantize_int8=None)
    assert not fp32.quantized  # nothing calibrated: auto stays fp32
    texts = tiny_texts(40)
    ranges = record_input_ranges(fp32.model, lambda: fp32.score(texts))
    assert all(name.startswith("bert.") for name in ranges)  # the head is left in float
    save_calibration(ranges, folder / CALIBRATION_FILE, alpha=0.7, description="test",
                     model=fp32.model)
    stored = load_calibration(folder)
    assert stored is not None and stored.alpha == 0.7
    assert stored.ranges.keys() == ranges.keys()
    assert stored.fits(fp32.model)

    auto = SentimentEngine(folder, device="cpu", quantize_int8=None)
    assert auto.quantized
    assert any(isinstance(m, ChannelScaledLinear) for m in auto.model.modules())
    assert not SentimentEngine(folder, device="cpu", quantize_int8=False).quantized
    for smoothed, exact in zip(auto.score(texts), fp32.score(texts), strict=True):
        for label, value in exact.scores.items():
            assert smoothed.scores[label] == pytest.approx(value, abs=0.05)
    settings = load_settings(sentiment_model=str(folder), sentiment_device="cpu")
    assert build_engine(settings).quantized


def test_calibration_recorded_on_other_weights_is_ignored(tmp_path: Path) -> None:
    folder = write_tiny_checkpoint(tmp_path / "tiny", {0: "negative", 1: "neutral",
                                                       2: "positive"})
    engine = SentimentEngine(folder, device="cpu")
    ranges = record_input_ranges(engine.model, lambda: engine.score(tiny_texts(20)))
    save_calibration(ranges, folder / CALIBRATION_FILE, alpha=0.85, description="test",
                     model=engine.model)
    assert SentimentEngine(folder, device="cpu", quantize_int8=None).quantized
    # the same folder after a retraining that forgot to re-calibrate
    retrained = BertForSequenceClassification.from_pretrained(folder)
    with torch.no_grad():
        retrained.bert.encoder.layer[0].intermediate.dense.weight.add_(0.01)
    retrained.save_pretrained(folder)
    stale = load_calibration(folder)
    assert stale is not None and not stale.fits(retrained)
    assert not SentimentEngine(folder, device="cpu", quantize_int8=None).quantized
    # asked for explicitly, int8 still runs, without the stale smoothing
    forced = SentimentEngine(folder, device="cpu", quantize_int8=True)
    assert forced.quantized
    assert not any(isinstance(m, ChannelScaledLinear) for m in forced.model.modules())
