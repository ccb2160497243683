"""Dynamic int8 ``Linear`` layers for CPU inference, with activation smoothing.

Dynamic quantisation gives each weight row its own int8 scale, but each activation
matrix only one: a few input channels with large values (transformers have them) force a
coarse step on all the others. Smoothing (SmoothQuant, Xiao et al. 2023) moves that range
from the activations into the weights before quantising: ``x @ W.T == (x / s) @ (W * s).T``
for any per-input-channel ``s``, chosen from the channel's largest activation seen on
calibration texts and its largest weight, ``s = max|x| ** alpha / max|W| ** (1 - alpha)``.
The division is one elementwise multiply per layer, cheap next to the matmul.

The ranges come from :func:`record_input_ranges` on real texts and travel with the model
as ``int8_calibration.safetensors`` (``models/calibrate_int8.py`` writes it). A model folder
without that file is quantised plainly, which costs more accuracy.
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

logger = logging.getLogger(__name__)

CALIBRATION_FILE = "int8_calibration.safetensors"
# a retrained layer moves its weight norm by far more; rounding differences by far less
_NORM_TOLERANCE = 1e-5
# Smoothing strength, from a sweep on val with the bundled model (models/MODEL_CARD.md): the
# middle of the plateau where int8 stays closest to fp32.
DEFAULT_ALPHA = 0.85


class ChannelScaledLinear(nn.Module):
    """``linear(x * inverse_scale)``: the input side of a smoothed layer."""

    inverse_scale: torch.Tensor

    def __init__(self, inverse_scale: torch.Tensor, linear: nn.Module) -> None:
        super().__init__()
        self.register_buffer("inverse_scale", inverse_scale)
        self.linear = linear

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.linear(inputs * self.inverse_scale)


def record_input_ranges(model: nn.Module, run: Callable[[], object]) -> dict[str, torch.Tensor]:
    """Largest absolute input per channel of every ``Linear`` in the model's body.

    ``run`` feeds calibration texts through the model; the classification head (outside
    ``base_model``) is left out: it sees one vector per text and costs nothing.
    """
    body = getattr(model, "base_model", model)
    prefix = next((name + "." for name, module in model.named_modules()
                   if module is body and name), "")
    ranges: dict[str, torch.Tensor] = {}
    handles = []
    for name, module in body.named_modules():
        if not isinstance(module, nn.Linear):
            continue

        def remember(_module: nn.Module, inputs: tuple[torch.Tensor, ...], _output: object,
                     key: str = prefix + name) -> None:
            seen = inputs[0].detach().abs().reshape(-1, inputs[0].shape[-1]).amax(0).float()
            ranges[key] = torch.maximum(ranges[key], seen) if key in ranges else seen

        handles.append(module.register_forward_hook(remember))
    try:
        run()
    finally:
        for handle in handles:
            handle.remove()
    return ranges


def smooth_linears(model: nn.Module, ranges: Mapping[str, torch.Tensor],
                   alpha: float = DEFAULT_ALPHA) -> list[str]:
    """Move input range into the weights of the ``Linear`` layers ``ranges`` names.

    In place; the model computes the same function afterwards (up to rounding). Returns
    the names of the weight-carrying ``Linear`` modules, now ``<name>.linear``.
    """
    smoothed = []
    for name, input_range in ranges.items():
        owner_name, _, attribute = name.rpartition(".")
        owner = model.get_submodule(owner_name)
        linear = getattr(owner, attribute, None)
        if not isinstance(linear, nn.Linear) or input_range.shape != (linear.in_features,):
            raise ValueError(f"int8 calibration does not fit this model at {name}")
        weight_range = linear.weight.detach().abs().amax(0).float().clamp(min=1e-5)
        scale = (input_range.float().clamp(min=1e-5) ** alpha
                 / weight_range ** (1 - alpha)).clamp(min=1e-5)
        with torch.no_grad():
            linear.weight.mul_(scale.to(linear.weight.dtype))
        setattr(owner, attribute, ChannelScaledLinear((1 / scale).to(linear.weight.dtype), linear))
        smoothed.append(f"{name}.linear")
    return smoothed


def quantize_int8(model: nn.Module, ranges: Mapping[str, torch.Tensor] | None = None,
                  alpha: float = DEFAULT_ALPHA) -> nn.Module:
    """The model with dynamic int8 ``Linear`` layers (weights: one scale per row).

    With ``ranges``, the layers they name are smoothed first and only those are
    quantised; without, every ``Linear`` is quantised as it is.
    """
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    targets: dict[str, object] | set[type[nn.Module]]
    if ranges:
        targets = dict.fromkeys(smooth_linears(model, ranges, alpha),
                                per_channel_dynamic_qconfig)
    else:
        targets = {nn.Linear: per_channel_dynamic_qconfig}  # type: ignore[dict-item]
    # torch marks torch.ao.quantization deprecated in favour of torchao, yet it is the
    # dependency-free path on this torch; the warning is known, not news.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        return quantize_dynamic(model, targets, dtype=torch.qint8)


@dataclass(frozen=True)
class Calibration:
    """Input ranges recorded on one model's weights, and the smoothing strength to use."""

    ranges: dict[str, torch.Tensor]
    alpha: float
    # the calibrated layers' weight norms when the ranges were recorded (a file written
    # without them fits no model: nothing shows which weights it belongs to)
    weight_norms: dict[str, float] = field(default_factory=dict)

    def fits(self, model: nn.Module) -> bool:
        """Whether these ranges were recorded on this model's weights.

        Compared by norm with a relative tolerance rather than by a digest of the bytes:
        rebuilding the model on another CPU may round the merged weights differently in the
        last bits, which is no reason to drop int8; a retrained model moves them far more.
        """
        try:
            norms = weight_norms(model, self.ranges)
        except (AttributeError, ValueError):
            return False
        return norms.keys() == self.weight_norms.keys() and all(
            math.isclose(norms[name], self.weight_norms[name], rel_tol=_NORM_TOLERANCE)
            for name in norms
        )


def weight_norms(model: nn.Module, names: Iterable[str]) -> dict[str, float]:
    """The Frobenius norm of each named ``Linear`` layer's weight (before any smoothing).

    Ranges recorded on other weights (a retrained delta without a new calibration) would
    smooth with the wrong factors, silently costing accuracy: the engine checks this first.
    """
    norms = {}
    for name in names:
        layer = model.get_submodule(name)
        if not isinstance(layer, nn.Linear):
            raise ValueError(f"{name} is not a Linear layer")
        norms[name] = float(torch.linalg.vector_norm(layer.weight.detach().double()))
    return norms


def load_calibration(model_dir: Path) -> Calibration | None:
    """The calibration stored with a model, if it has one."""
    path = model_dir / CALIBRATION_FILE
    if not path.is_file():
        return None
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
        ranges = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    return Calibration(ranges, float(metadata.get("alpha", DEFAULT_ALPHA)),
                       json.loads(metadata.get("weight_norms", "{}")))


def save_calibration(ranges: Mapping[str, torch.Tensor], path: Path, *, alpha: float,
                     description: str, model: nn.Module) -> None:
    """Write the input ranges recorded on ``model`` for :func:`load_calibration`."""
    from safetensors.torch import save_file

    save_file({name: tensor.contiguous() for name, tensor in ranges.items()}, str(path),
              metadata={"alpha": str(alpha), "calibration": description,
                        "weight_norms": json.dumps(weight_norms(model, ranges))})
