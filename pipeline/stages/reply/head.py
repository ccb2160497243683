"""The reply head: a multinomial logistic regression over a mention's cues.

A few dozen weights per reason, fitted on the hand-labelled tweets of
``benchmarks/data/needs_reply`` (``python -m benchmarks.needs_reply --fit``) and committed as
JSON beside the package's data. Fitting is plain full-batch gradient descent in numpy: the
data is a few hundred rows of a few dozen features, and no solver library is needed for that.
A reason is given only when its probability reaches its own threshold (set for precision on
cross-validation), so an unsure mention gets none rather than a wrong reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import orjson

from pipeline.stages.reply.cues import FEATURE_NAMES

# class 0 is "no answer needed"; the others are the reasons, in precedence order
CLASSES: Final = ("none", "complaint", "request", "question", "praise")
DEFAULT_HEAD_PATH: Final = Path(__file__).resolve().parents[2] / "data" / "needs_reply_head.json"


@dataclass(frozen=True, slots=True)
class ReplyHead:
    """Weights (classes x features), and the least probability each reason needs."""

    weights: np.ndarray
    thresholds: dict[str, float]
    feature_names: tuple[str, ...] = FEATURE_NAMES

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """Class probabilities (rows x :data:`CLASSES`) of a feature matrix."""
        logits = np.atleast_2d(features).astype(np.float32) @ self.weights.T
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)

    def reasons(self, features: np.ndarray) -> list[str | None]:
        """The reason of each row: the likeliest class if it clears its threshold, else none."""
        probabilities = self.probabilities(features)
        reasons: list[str | None] = []
        for row in probabilities:
            best = int(row.argmax())
            name = CLASSES[best]
            reasons.append(name if best and row[best] >= self.thresholds.get(name, 0.5)
                           else None)
        return reasons

    def to_json(self) -> bytes:
        """The head as the committed JSON document."""
        return orjson.dumps({
            "classes": list(CLASSES), "features": list(self.feature_names),
            "weights": [[round(float(w), 5) for w in row] for row in self.weights],
            "thresholds": self.thresholds,
        }, option=orjson.OPT_INDENT_2)


def load_head(path: Path = DEFAULT_HEAD_PATH) -> ReplyHead:
    """Read a head written by :meth:`ReplyHead.to_json`; it must match the code's features."""
    document = orjson.loads(path.read_bytes())
    if tuple(document["classes"]) != CLASSES or tuple(document["features"]) != FEATURE_NAMES:
        raise ValueError(f"{path}: the head was fitted on other classes or features; refit it "
                         "with python -m benchmarks.needs_reply --fit")
    return ReplyHead(np.asarray(document["weights"], dtype=np.float32),
                     {str(k): float(v) for k, v in document["thresholds"].items()})


def fit_head(features: np.ndarray, labels: Sequence[str | None], *, l2: float = 0.01,
             steps: int = 3000, learning_rate: float = 0.5,
             class_weight_power: float = 0.5) -> np.ndarray:
    """Fit the weights (classes x features) by gradient descent on the weighted log loss.

    Rare reasons weigh more (inverse frequency to ``class_weight_power``) so that the few
    complaints are not drowned by the many mentions that need nothing; the bias column
    (feature 0) is not regularised.
    """
    targets = np.array([CLASSES.index(label or "none") for label in labels])
    rows, width = features.shape
    onehot = np.zeros((rows, len(CLASSES)), dtype=np.float64)
    onehot[np.arange(rows), targets] = 1.0
    counts = np.maximum(onehot.sum(axis=0), 1.0)
    sample_weight = ((rows / counts) ** class_weight_power)[targets]
    sample_weight /= sample_weight.mean()
    x = features.astype(np.float64)
    weights = np.zeros((len(CLASSES), width))
    penalty = np.full(width, l2)
    penalty[0] = 0.0
    for _ in range(steps):
        logits = x @ weights.T
        logits -= logits.max(axis=1, keepdims=True)
        probabilities = np.exp(logits)
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        gradient = ((probabilities - onehot) * sample_weight[:, None]).T @ x / rows
        weights -= learning_rate * (gradient + penalty * weights)
    return weights.astype(np.float32)
