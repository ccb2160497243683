"""Needs-reply with the sentiment model's pooled state beside the cues, against the cues alone.

The bundled sentiment model's classifier reads a pooled hidden state (384 values) that its
forward pass computes anyway; a head over [cues, pooled state] would cost nothing extra at
serving. This measures that head against the cue head on the same labels, split, folds,
grid and threshold rule as :mod:`benchmarks.needs_reply` (CV on dev, and held aside).

The pooled state is read by a forward pre-hook on the model's ``classifier`` module, one text
per call, so the pipeline's engine is not changed for the measurement. The state is
standardised on dev and scaled so that its 384 columns weigh about as much as the cues under
the head's single L2 penalty.

Run: ``python -m benchmarks.needs_reply_pooled`` (writes
``benchmarks/results/needs_reply_pooled.json``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from benchmarks.common import write_results
from benchmarks.needs_reply import (
    GRID,
    _target_f1,
    choose_thresholds,
    cue_features,
    decide,
    load_labelled,
    mentions_of,
    out_of_fold,
    scores_table,
)
from pipeline.config import Settings
from pipeline.stages.reply.cues import is_retweet
from pipeline.stages.reply.head import ReplyHead, fit_head
from pipeline.stages.sentiment.engine import build_engine


def pooled_and_scores(texts: Sequence[str]) -> tuple[np.ndarray, list[dict[str, float]]]:
    """Each text's pooled state (the classifier's input) and its sentiment scores."""
    torch.set_num_threads(1)
    engine = build_engine(Settings(sentiment_device="cpu"))
    captured: list[np.ndarray] = []
    engine.model.classifier.register_forward_pre_hook(
        lambda _module, args: captured.append(args[0].detach().float().numpy()))
    width = int(engine.model.config.hidden_size)
    pooled, scores = [], []
    for text in texts:
        captured.clear()
        result = engine.score([text])[0]
        pooled.append(captured[0][0] if captured else np.zeros(width, dtype=np.float32))
        scores.append(dict(result.scores))
    return np.stack(pooled), scores


def evaluate(features: np.ndarray, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Grid, thresholds, CV and held-aside tables of a head over ``features``."""
    dev = np.array([row["split"] == "dev" for row in rows])
    retweet = np.array([is_retweet(row["text"]) for row in rows])
    dev_rows = [row for row in rows if row["split"] == "dev"]
    held_rows = [row for row in rows if row["split"] == "held_aside"]
    labels = [row["label"] for row in dev_rows]
    folds = np.array([row["fold"] for row in dev_rows])
    l2, power = max(GRID, key=lambda pair: _target_f1(
        out_of_fold(features[dev], labels, folds, *pair), labels))
    oof = out_of_fold(features[dev], labels, folds, l2, power)
    thresholds = choose_thresholds(oof, labels)
    head = ReplyHead(fit_head(features[dev], labels, l2=l2, class_weight_power=power),
                     thresholds)
    cv = [None if copy else r for r, copy in zip(decide(oof, thresholds), retweet[dev],
                                                 strict=True)]
    held = [None if copy else r for r, copy in zip(head.reasons(features[~dev]),
                                                   retweet[~dev], strict=True)]
    return {"chosen": {"l2": l2, "class_weight_power": power, "thresholds": thresholds},
            "cv": scores_table(dev_rows, cv), "held_aside_scores": scores_table(held_rows, held)}


def main() -> None:
    rows = load_labelled()
    pooled, scores = pooled_and_scores([row["text"] for row in rows])
    for row, score in zip(rows, scores, strict=True):
        row["scores"] = score
    cues = cue_features(mentions_of(rows))
    dev = np.array([row["split"] == "dev" for row in rows])
    standard = (pooled - pooled[dev].mean(0)) / (pooled[dev].std(0) + 1e-6)
    variants = {"cues": cues,
                "cues+pooled": np.hstack([cues, standard * 4 / np.sqrt(pooled.shape[1])])}
    results = {name: evaluate(features, rows) for name, features in variants.items()}
    path = write_results("needs_reply_pooled", results)
    print("| head | reason | lang | CV P / R (n) | held-aside P / R (n) |")
    print("| --- | --- | --- | --- | --- |")
    for name, result in results.items():
        for reason in ("question", "complaint"):
            for lang in ("es", "en"):
                cells = [result[key][lang][reason] for key in ("cv", "held_aside_scores")]
                print(f"| {name} | {reason} | {lang} | " + " | ".join(
                    f"{c['precision']:.2f} / {c['recall']:.2f} ({c['support']})"
                    for c in cells) + " |")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
