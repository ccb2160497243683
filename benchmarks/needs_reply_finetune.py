"""Needs-reply with the sentiment encoder's top layers fine-tuned for the reasons (#31).

The cue head (:mod:`benchmarks.needs_reply`) and every frozen representation tried beside it
missed the targets. This measures the one thing not tried: fine-tuning the bundled sentiment
model's top layers themselves for the five classes (none, complaint, request, question,
praise). As in :mod:`models.refine_sentiment`, the lower layers (0 to
``--first-trained-layer`` - 1) run once over the labelled tweets and their output is cached;
then a copy of the top layers and the pooler is fully fine-tuned with a new linear head over
[pooled state, standardised cue features] (the cues of the shipped head, sentiment scores
included), with a class-weighted cross-entropy (inverse class frequency to the power 0.75, the cue
head's choice) so the few complaints are not drowned by the none class.

Evaluated exactly as :mod:`benchmarks.needs_reply`: the same labels, held-aside split and
folds; out-of-fold probabilities from 5-fold CV on dev; each reason's threshold chosen on
them by the same F0.5 rule; retweets never need a reply; then one fit on all of dev, scored
once on the held-aside tweets. The recipe (epochs, learning rates, class weights) is fixed
before the run, not searched, so the CV column is not tuned on beyond the thresholds. The
cue head is refitted in the same run by the same procedure (its own grid), and the committed
head is scored on the held-aside tweets as well.

Serving cost: the fine-tuned stack would run beside the sentiment pass, over the same
layer-``--first-trained-layer`` states (a duplicated top stack, pooler and head); its CPU
time per mention is measured on one thread, in length-sorted batches of 32 (the engine's CPU
batch size), fp32 and with dynamic int8 linears, beside the sentiment engine's own time per
mention in the same run.

Run: ``nice -n 19 python -m benchmarks.needs_reply_finetune`` (writes
``benchmarks/results/needs_reply_finetune.json``; 25 minutes at 2 layers and 3 epochs on one
thread of the shared 2 vCPU box, seeded and reproducible there); ``--limit 400 --epochs 1`` is
a smoke test.
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import AutoTokenizer, BertForSequenceClassification

from benchmarks.common import write_results
from benchmarks.needs_reply import (
    FOLDS,
    _target_f1,
    choose_thresholds,
    cue_features,
    decide,
    load_labelled,
    mentions_of,
    score_sentiment,
    scores_table,
)
from benchmarks.needs_reply_pooled import evaluate as evaluate_cue_head
from models.refine_sentiment import shipped_model
from models.train_sentiment import (
    Split,
    additive_mask,
    batch_hidden,
    cache_lower_layers,
    seed_everything,
)
from pipeline.stages.reply.cues import is_retweet
from pipeline.stages.reply.head import CLASSES, load_head
from pipeline.stages.sentiment.bundled import DEFAULT_MODEL_DIR
from pipeline.stages.sentiment.int8 import quantize_int8

MAX_TOKENS = 128  # the engine's default truncation
COST_BATCH = 32  # the engine's CPU batch size (AUTO_BATCH_SIZE["cpu"])


@dataclass(frozen=True)
class Recipe:
    """The fine-tuning settings, fixed before the run (not searched)."""

    first_trained_layer: int = 10
    epochs: int = 3
    batch_size: int = 32
    lr: float = 3e-5  # the top layers and the pooler
    head_lr: float = 1e-3  # the new head
    weight_decay: float = 0.01
    class_weight_power: float = 0.75  # what the cue head's CV grid chose on dev
    with_cues: bool = True
    seed: int = 31


class ReasonTop(nn.Module):
    """A copy of the sentiment model's top layers and pooler, and a 5-way head.

    The head reads the pooled state and, with ``cue_width`` > 0, the mention's cue
    features standardised by the mean and spread of the rows it was fitted on.
    """

    cue_mean: torch.Tensor
    cue_scale: torch.Tensor

    def __init__(self, model: BertForSequenceClassification, first: int, cue_width: int):
        super().__init__()
        layers = model.bert.encoder.layer[first:]
        self.layers = nn.ModuleList(copy.deepcopy(layer) for layer in layers)
        self.pooler = copy.deepcopy(model.bert.pooler)
        self.dropout = nn.Dropout(float(model.config.hidden_dropout_prob))
        self.head = nn.Linear(int(model.config.hidden_size) + cue_width, len(CLASSES))
        self.register_buffer("cue_mean", torch.zeros(cue_width))
        self.register_buffer("cue_scale", torch.ones(cue_width))

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor,
                cues: torch.Tensor) -> torch.Tensor:
        """Class logits of a batch of cached lower-layer states and their cue rows."""
        attention = additive_mask(mask, hidden.dtype)
        for layer in self.layers:
            hidden = layer(hidden, attention_mask=attention)
        pooled = self.dropout(self.pooler(hidden))
        if cues.shape[1]:
            pooled = torch.cat([pooled, (cues - self.cue_mean) / self.cue_scale], 1)
        logits: torch.Tensor = self.head(pooled)
        return logits


def cache_states(model: BertForSequenceClassification, texts: Sequence[str],
                 first: int) -> list[torch.Tensor]:
    """Each text's hidden states after the frozen lower layers (tokenised as the engine does)."""
    tokenizer = AutoTokenizer.from_pretrained(DEFAULT_MODEL_DIR)
    ids = tokenizer(list(texts), truncation=True, max_length=MAX_TOKENS)["input_ids"]
    split = Split(ids, np.zeros(len(ids), dtype=int), np.zeros(len(ids), dtype=int))
    return cache_lower_layers(model, split, range(first), int(model.config.pad_token_id))


def class_weights(targets: np.ndarray, power: float) -> torch.Tensor:
    """Inverse class frequency to ``power``, averaging 1 over the rows (as ``fit_head``)."""
    counts = np.maximum(np.bincount(targets, minlength=len(CLASSES)), 1)
    weights = (len(targets) / counts) ** power
    weights /= weights[targets].mean()
    return torch.as_tensor(weights, dtype=torch.float32)


def fit_top(base: BertForSequenceClassification, states: Sequence[torch.Tensor],
            cues: np.ndarray, targets: np.ndarray, recipe: Recipe,
            on_epoch: Callable[[int, ReasonTop], None] | None = None) -> ReasonTop:
    """Fine-tune a fresh copy of the top stack and a new head on the given rows."""
    seed_everything(recipe.seed)
    top = ReasonTop(base, recipe.first_trained_layer, cues.shape[1])
    if cues.shape[1]:
        top.cue_mean.copy_(torch.as_tensor(cues.mean(0)))
        top.cue_scale.copy_(torch.as_tensor(cues.std(0) + 1e-3))
    body = [p for name, p in top.named_parameters() if not name.startswith("head.")]
    optimiser = torch.optim.AdamW([{"params": body, "lr": recipe.lr},
                                   {"params": top.head.parameters(), "lr": recipe.head_lr}],
                                  weight_decay=recipe.weight_decay)
    steps = -(-len(targets) // recipe.batch_size) * recipe.epochs
    warmup = max(1, int(0.06 * steps))
    schedule = torch.optim.lr_scheduler.LambdaLR(  # linear warm-up and decay, as refine does
        optimiser, lambda step: min((step + 1) / warmup,
                                    max(0.0, (steps - step) / (steps - warmup))))
    loss_fn = nn.CrossEntropyLoss(weight=class_weights(targets, recipe.class_weight_power))
    rng = np.random.default_rng(recipe.seed)
    cue_rows, labels = torch.as_tensor(cues), torch.as_tensor(targets)
    for epoch in range(1, recipe.epochs + 1):
        top.train()
        started, running = time.perf_counter(), 0.0
        order = rng.permutation(len(targets))
        for start in range(0, len(order), recipe.batch_size):
            batch = [int(i) for i in order[start : start + recipe.batch_size]]
            hidden, mask = batch_hidden(states, batch)
            loss = loss_fn(top(hidden, mask, cue_rows[batch]), labels[batch])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(top.parameters(), 1.0)
            optimiser.step()
            schedule.step()
            running += float(loss.detach()) * len(batch)
        print(f"  epoch {epoch}: loss {running / len(targets):.4f} "
              f"({time.perf_counter() - started:.0f} s)", flush=True)
        if on_epoch is not None:
            on_epoch(epoch, top)
    return top.eval()


@torch.inference_mode()
def top_probabilities(top: ReasonTop, states: Sequence[torch.Tensor], cues: np.ndarray,
                      batch_size: int = 64) -> np.ndarray:
    """Class probabilities (rows x :data:`CLASSES`), length-sorted batches."""
    was_training = top.training
    top.eval()
    order = np.argsort([s.shape[0] for s in states], kind="stable")
    probabilities = np.zeros((len(states), len(CLASSES)), dtype=np.float32)
    cue_rows = torch.as_tensor(cues)
    for start in range(0, len(order), batch_size):
        batch = [int(i) for i in order[start : start + batch_size]]
        hidden, mask = batch_hidden(states, batch)
        probabilities[batch] = torch.softmax(top(hidden, mask, cue_rows[batch]), -1).numpy()
    top.train(was_training)
    return probabilities


def cross_validate(base: BertForSequenceClassification, states: Sequence[torch.Tensor],
                   cues: np.ndarray, targets: np.ndarray, folds: np.ndarray,
                   recipe: Recipe) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Out-of-fold probabilities of the dev rows, at the last epoch and after each one."""
    by_epoch = {e: np.zeros((len(targets), len(CLASSES)), np.float32)
                for e in range(1, recipe.epochs + 1)}
    for fold in range(FOLDS):
        train, held = np.flatnonzero(folds != fold), np.flatnonzero(folds == fold)
        print(f"fold {fold}: {len(train)} rows to fit, {len(held)} to predict", flush=True)

        def record(epoch: int, top: ReasonTop, held: np.ndarray = held) -> None:
            by_epoch[epoch][held] = top_probabilities(top, [states[int(i)] for i in held],
                                                      cues[held])

        fit_top(base, [states[int(i)] for i in train], cues[train], targets[train], recipe,
                record)
    return by_epoch[recipe.epochs], by_epoch


def serving_cost(top: ReasonTop, states: Sequence[torch.Tensor],
                 repeats: int = 2) -> dict[str, float]:
    """CPU microseconds per mention of the extra stack on one thread, fp32 and int8."""
    torch.set_num_threads(1)
    order = np.argsort([s.shape[0] for s in states], kind="stable")
    batches = [[int(i) for i in order[s : s + COST_BATCH]]
               for s in range(0, len(order), COST_BATCH)]
    padded = [batch_hidden(states, batch) for batch in batches]
    width = int(top.cue_mean.shape[0])
    cost = {}
    for name, stack in (("fp32", top), ("int8", quantize_int8(copy.deepcopy(top)))):
        stack.eval()
        with torch.inference_mode():
            stack(*padded[0], torch.zeros(len(batches[0]), width))  # warm-up
            started = time.process_time()
            for _ in range(repeats):
                for (hidden, mask), batch in zip(padded, batches, strict=True):
                    stack(hidden, mask, torch.zeros(len(batch), width))
        seconds = (time.process_time() - started) / (repeats * len(states))
        cost[f"extra_stack_{name}_cpu_us_per_mention_1_thread"] = round(seconds * 1e6, 1)
    return cost


def without_retweets(predicted: list[str | None], rows: Sequence[dict[str, Any]]
                     ) -> list[str | None]:
    return [None if is_retweet(row["text"]) else reason
            for reason, row in zip(predicted, rows, strict=True)]


def main() -> None:
    defaults = Recipe()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--first-trained-layer", type=int, default=defaults.first_trained_layer)
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--no-cues", action="store_true",
                        help="the head reads the pooled state alone")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="needs_reply_finetune",
                        help="results file name under benchmarks/results (no .json)")
    parser.add_argument("--limit", type=int, default=0,
                        help="a smoke test on every Nth labelled tweet (results not written)")
    args = parser.parse_args()
    recipe = Recipe(first_trained_layer=args.first_trained_layer, epochs=args.epochs,
                    with_cues=not args.no_cues)
    rows = load_labelled()
    if args.limit:
        rows = rows[:: max(1, len(rows) // args.limit)]
    started = time.perf_counter()
    scores, sentiment_seconds = score_sentiment([row["text"] for row in rows])
    for row, score in zip(rows, scores, strict=True):
        row["scores"] = score
    cues = cue_features(mentions_of(rows))
    print(f"sentiment and cues: {time.perf_counter() - started:.0f} s", flush=True)
    cue_head = evaluate_cue_head(cues, rows)
    dev = np.array([row["split"] == "dev" for row in rows])
    committed = without_retweets(load_head().reasons(cues[~dev]),
                                 [row for row in rows if row["split"] != "dev"])
    torch.set_num_threads(args.threads)
    base = shipped_model()
    states = cache_states(base, [row["text"] for row in rows], recipe.first_trained_layer)
    print(f"cached layers 0-{recipe.first_trained_layer - 1}: "
          f"{time.perf_counter() - started:.0f} s", flush=True)
    results = finetune_and_score(base, states, cues[:, 1:] if recipe.with_cues
                                 else cues[:, :0], rows, recipe)
    results["cue_head"] = cue_head
    held_rows = [row for row in rows if row["split"] != "dev"]
    results["committed_head_held_aside"] = scores_table(held_rows, committed)
    results["cost"]["sentiment_cpu_us_per_mention_1_thread"] = round(sentiment_seconds * 1e6, 1)
    results["wall_s"] = round(time.perf_counter() - started)
    print_report(results)
    if not args.limit:
        print(f"wrote {write_results(args.out, results)}")


def finetune_and_score(base: BertForSequenceClassification, states: list[torch.Tensor],
                       cues: np.ndarray, rows: list[dict[str, Any]],
                       recipe: Recipe) -> dict[str, Any]:
    """CV on dev, thresholds on its out-of-fold predictions, one fit on dev scored held aside."""
    dev = np.flatnonzero([row["split"] == "dev" for row in rows])
    held = np.flatnonzero([row["split"] != "dev" for row in rows])
    dev_rows, held_rows = [rows[i] for i in dev], [rows[i] for i in held]
    labels = [row["label"] for row in dev_rows]
    targets = np.array([CLASSES.index(label or "none") for label in labels])
    folds = np.array([row["fold"] for row in dev_rows])
    oof, by_epoch = cross_validate(base, [states[i] for i in dev], cues[dev], targets, folds,
                                   recipe)
    thresholds = choose_thresholds(oof, labels)
    print("final fit on all of dev", flush=True)
    top = fit_top(base, [states[i] for i in dev], cues[dev], targets, recipe)
    held_probabilities = top_probabilities(top, [states[i] for i in held], cues[held])
    return {
        "recipe": asdict(recipe), "dev": len(dev), "held_aside": len(held),
        "head_reads": "pooled state + standardised cues" if cues.shape[1] else "pooled state",
        "thresholds": thresholds,
        "cv_target_f1_at_0.5_by_epoch": {str(e): round(_target_f1(p, labels), 3)
                                  for e, p in by_epoch.items()},
        "cv": scores_table(dev_rows, without_retweets(decide(oof, thresholds), dev_rows)),
        "held_aside_scores": scores_table(held_rows, without_retweets(
            decide(held_probabilities, thresholds), held_rows)),
        "cost": serving_cost(top, [states[i] for i in held]),
    }


def print_report(results: dict[str, Any]) -> None:
    """P / R (support) of the fine-tuned stack beside the cue head, CV and held aside."""
    print(f"recipe: {results['recipe']}\nthresholds: {results['thresholds']}")
    print(f"CV mean F1 of question and complaint, thresholds 0.5, by epoch: "
          f"{results['cv_target_f1_at_0.5_by_epoch']}")
    print("| reason | lang | fine-tuned CV | cue head CV | fine-tuned held aside "
          "| cue head held aside | committed head held aside |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    tables = [results["cv"], results["cue_head"]["cv"], results["held_aside_scores"],
              results["cue_head"]["held_aside_scores"], results["committed_head_held_aside"]]
    for reason in CLASSES[1:]:
        for group in ("es", "en", "other", "all"):
            cells = [table[group][reason] for table in tables]
            print(f"| {reason} | {group} | " + " | ".join(
                f"{c['precision']:.2f} / {c['recall']:.2f} ({c['support']})" for c in cells)
                + " |")
    print(f"cost: {results['cost']}")


if __name__ == "__main__":
    main()
