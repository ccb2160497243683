"""Needs-reply benchmark: precision and recall per reason and language, and the cost per mention.

On the hand-labelled tweets of ``benchmarks/data/needs_reply`` (``GUIDE.md``): 30% of them,
chosen by a hash of their id, are held aside and never used to fit or tune anything; the
rest ("dev") is where the head's regularisation and class weights are chosen and its
thresholds set, by 5-fold cross-validation (other head designs were compared on the same
folds by :mod:`benchmarks.needs_reply_options`). The report gives both:

- ``cv``: the out-of-fold predictions on dev (the thresholds were set on these same
  predictions, so this is slightly optimistic);
- ``held_aside``: the head fitted on all of dev, on the held-aside tweets.

A rules baseline is measured in the same run (a question mark is a question; a complaint word
in a negative mention a complaint; a request word a request; a thanks word praise).

The mentions' sentiment comes from the bundled model, as in the pipeline. The cost per mention
is the reply core's CPU time over the labelled mentions repeated, beside the sentiment model's
CPU time per mention measured on the same texts.

Run: ``python -m benchmarks.needs_reply`` (writes benchmarks/results/needs_reply.json);
``--fit`` also writes the head fitted on dev to ``pipeline/data/needs_reply_head.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import orjson
import torch

from benchmarks.common import REPO_ROOT, write_results
from pipeline.config import Settings
from pipeline.records import ScoredMention, Sentiment
from pipeline.stages.reply import ReplyClassifier
from pipeline.stages.reply.cues import FEATURE_NAMES, is_retweet
from pipeline.stages.reply.head import CLASSES, DEFAULT_HEAD_PATH, ReplyHead, fit_head
from pipeline.stages.sentiment.engine import build_engine

LABELS_PATH = REPO_ROOT / "benchmarks" / "data" / "needs_reply" / "labels.jsonl"
REASONS = CLASSES[1:]
HELD_ASIDE_SHARE = 0.3
FOLDS = 5
GRID = [(l2, power) for l2 in (0.003, 0.01, 0.03) for power in (0.5, 0.75, 1.0)]
THRESHOLDS = [round(0.3 + 0.05 * step, 2) for step in range(13)]
_FEATURE = {name: index for index, name in enumerate(FEATURE_NAMES)}


def _bucket(identifier: str, salt: str) -> float:
    digest = hashlib.sha256(f"{salt}:{identifier}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def load_labelled(path: Path = LABELS_PATH) -> list[dict[str, Any]]:
    """The labelled tweets, each with its split (``dev`` or ``held_aside``) and CV fold."""
    rows = [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
    for row in rows:
        row["split"] = "held_aside" if _bucket(row["id"], "split") < HELD_ASIDE_SHARE else "dev"
        row["fold"] = int(_bucket(row["id"], "fold") * FOLDS)
    return rows


def score_sentiment(texts: Sequence[str]) -> tuple[list[dict[str, float]], float]:
    """The bundled model's scores of each text, and its CPU seconds per text."""
    torch.set_num_threads(1)
    engine = build_engine(Settings(sentiment_device="cpu"))
    engine.score(list(texts[:32]))  # warm-up
    started = time.process_time()
    results = engine.score(list(texts))
    seconds = (time.process_time() - started) / max(len(texts), 1)
    return [dict(result.scores) for result in results], seconds


def mentions_of(rows: Sequence[dict[str, Any]]) -> list[ScoredMention]:
    """The labelled tweets as scored mention records (what the pipeline hands the core)."""
    return [ScoredMention(id=row["id"], text=row["text"], created_at="", lang=row["lang"],
                          sentiment=Sentiment("", row["scores"])) for row in rows]


def cue_features(mentions: Sequence[ScoredMention]) -> np.ndarray:
    """The reply core's features of each mention, one row each (a head is not needed)."""
    featurer = ReplyClassifier(head=ReplyHead(np.zeros((len(CLASSES), len(FEATURE_NAMES)),
                                                      dtype=np.float32), {}))
    return np.stack([featurer.features(mention) for mention in mentions])


def baseline_reason(features: np.ndarray, text: str) -> str | None:
    """The rules baseline (see the module docstring)."""
    if is_retweet(text):
        return None
    negative = features[_FEATURE["negative"]] >= max(features[_FEATURE["neutral"]],
                                                     features[_FEATURE["positive"]])
    if negative and features[_FEATURE["complaint_cues"]] > 0:
        return "complaint"
    if features[_FEATURE["request_cues"]] > 0:
        return "request"
    if features[_FEATURE["question_mark"]] > 0:
        return "question"
    if features[_FEATURE["thanks_cues"]] > 0:
        return "praise"
    return None


def scores_table(rows: Sequence[dict[str, Any]], predicted: Sequence[str | None]
                 ) -> dict[str, dict[str, dict[str, float]]]:
    """Precision, recall and counts per language group (es, en, other, all) and reason."""
    table: dict[str, dict[str, dict[str, float]]] = {}
    for group in ("es", "en", "other", "all"):
        members = [i for i, row in enumerate(rows)
                   if group == "all" or row["lang"] == group
                   or (group == "other" and row["lang"] not in ("es", "en"))]
        table[group] = {}
        for reason in REASONS:
            tp = sum(1 for i in members if predicted[i] == reason and rows[i]["label"] == reason)
            fp = sum(1 for i in members if predicted[i] == reason and rows[i]["label"] != reason)
            fn = sum(1 for i in members if predicted[i] != reason and rows[i]["label"] == reason)
            table[group][reason] = {
                "precision": round(tp / (tp + fp), 3) if tp + fp else float("nan"),
                "recall": round(tp / (tp + fn), 3) if tp + fn else float("nan"),
                "support": tp + fn, "predicted": tp + fp,
            }
    return table


def out_of_fold(features: np.ndarray, labels: list[str | None], folds: np.ndarray,
                l2: float, power: float) -> np.ndarray:
    """Class probabilities of each dev row from a head fitted on the other folds."""
    probabilities = np.zeros((len(labels), len(CLASSES)), dtype=np.float32)
    for fold in range(FOLDS):
        train = folds != fold
        weights = fit_head(features[train], [labels[i] for i in np.flatnonzero(train)],
                           l2=l2, class_weight_power=power)
        head = ReplyHead(weights, {})
        probabilities[~train] = head.probabilities(features[~train])
    return probabilities


def decide(probabilities: np.ndarray, thresholds: dict[str, float]) -> list[str | None]:
    """The reasons that the probabilities and thresholds give (as :meth:`ReplyHead.reasons`)."""
    reasons: list[str | None] = []
    for row in probabilities:
        best = int(row.argmax())
        name = CLASSES[best]
        reasons.append(name if best and row[best] >= thresholds.get(name, 0.5) else None)
    return reasons


def choose_thresholds(probabilities: np.ndarray, labels: list[str | None]) -> dict[str, float]:
    """Per reason, the threshold of the best F0.5 on dev (precision weighs twice recall)."""
    thresholds: dict[str, float] = {}
    for reason in REASONS:
        best, chosen = -1.0, 0.5
        for threshold in THRESHOLDS:
            predicted = decide(probabilities, {reason: threshold})
            tp = sum(p == reason and g == reason for p, g in zip(predicted, labels, strict=True))
            fp = sum(p == reason and g != reason for p, g in zip(predicted, labels, strict=True))
            fn = sum(p != reason and g == reason for p, g in zip(predicted, labels, strict=True))
            f_half = 1.25 * tp / (1.25 * tp + 0.25 * fn + fp) if tp else 0.0
            if f_half > best:
                best, chosen = f_half, threshold
        thresholds[reason] = chosen
    return thresholds


def _target_f1(probabilities: np.ndarray, labels: list[str | None]) -> float:
    predicted = decide(probabilities, {})
    total = 0.0
    for reason in ("question", "complaint"):
        tp = sum(p == reason and g == reason for p, g in zip(predicted, labels, strict=True))
        fp = sum(p == reason and g != reason for p, g in zip(predicted, labels, strict=True))
        fn = sum(p != reason and g == reason for p, g in zip(predicted, labels, strict=True))
        total += 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    return total / 2


def labels_per_stratum(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """How many tweets of each label every sampling stratum holds, per language."""
    counts = Counter((f"{row['lang']}/{row['stratum']}", row["label"] or "none")
                     for row in rows)
    table: dict[str, dict[str, int]] = {}
    for (stratum, label), count in sorted(counts.items()):
        table.setdefault(stratum, {})[label] = count
    return table


def measure_cost(mentions: list[ScoredMention], classifier: ReplyClassifier,
                 repeats: int = 12) -> float:
    """CPU seconds per mention of the reply core, over micro-batches of 256."""
    many = [msgspec.structs.replace(mention) for _ in range(repeats) for mention in mentions]
    started = time.process_time()
    for start in range(0, len(many), 256):
        classifier.mark(many[start:start + 256])
    return (time.process_time() - started) / len(many)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fit", action="store_true",
                        help=f"write the head fitted on dev to {DEFAULT_HEAD_PATH}")
    args = parser.parse_args()
    rows = load_labelled()
    scores, sentiment_seconds = score_sentiment([row["text"] for row in rows])
    for row, score in zip(rows, scores, strict=True):
        row["scores"] = score
    mentions = mentions_of(rows)
    features = cue_features(mentions)
    retweet = np.array([is_retweet(row["text"]) for row in rows])
    dev = np.array([row["split"] == "dev" for row in rows])
    dev_rows = [row for row in rows if row["split"] == "dev"]
    held_rows = [row for row in rows if row["split"] == "held_aside"]
    dev_labels = [row["label"] for row in dev_rows]
    folds = np.array([row["fold"] for row in dev_rows])

    grid = {}
    for l2, power in GRID:
        grid[(l2, power)] = _target_f1(out_of_fold(features[dev], dev_labels, folds, l2, power),
                                       dev_labels)
    l2, power = max(grid, key=lambda key: grid[key])
    oof = out_of_fold(features[dev], dev_labels, folds, l2, power)
    thresholds = choose_thresholds(oof, dev_labels)
    head = ReplyHead(fit_head(features[dev], dev_labels, l2=l2, class_weight_power=power),
                     thresholds)
    if args.fit:
        DEFAULT_HEAD_PATH.write_bytes(head.to_json() + b"\n")

    def never_retweets(predicted: list[str | None], mask: np.ndarray) -> list[str | None]:
        return [None if copy else reason for reason, copy in zip(predicted, mask, strict=True)]

    cv_predicted = never_retweets(decide(oof, thresholds), retweet[dev])
    held_predicted = never_retweets(head.reasons(features[~dev]), retweet[~dev])
    baseline = [baseline_reason(f, row["text"]) for f, row in zip(features, rows, strict=True)]
    random_rows = [i for i, row in enumerate(held_rows)
                   if row["stratum"] in ("random", "random_rest")]
    classifier = ReplyClassifier(head=head)
    results = {
        "labelled": len(rows), "dev": len(dev_rows), "held_aside": len(held_rows),
        "chosen": {"l2": l2, "class_weight_power": power, "thresholds": thresholds},
        "grid_cv_target_f1": {f"l2={k[0]},power={k[1]}": round(v, 3) for k, v in grid.items()},
        "labels_per_stratum": labels_per_stratum(rows),
        "cv": scores_table(dev_rows, cv_predicted),
        "held_aside_scores": scores_table(held_rows, held_predicted),
        "held_aside_random_stratum": scores_table([held_rows[i] for i in random_rows],
                                                  [held_predicted[i] for i in random_rows]),
        "baseline_cv_rows": scores_table(dev_rows, [b for b, d in zip(baseline, dev,
                                                                      strict=True) if d]),
        "baseline_held_aside": scores_table(held_rows, [b for b, d in zip(baseline, dev,
                                                                          strict=True) if not d]),
        "cost": {"reply_cpu_us_per_mention": round(measure_cost(mentions, classifier) * 1e6, 1),
                 "sentiment_cpu_us_per_mention_1_thread": round(sentiment_seconds * 1e6, 1)},
    }
    path = write_results("needs_reply", results)
    print_report(results)
    print(f"wrote {path}")


def print_report(results: dict[str, Any]) -> None:
    """The README's table: precision / recall (support) per language, reason and evaluation."""
    print(f"chosen: {results['chosen']}")
    print("| reason | lang | CV P / R (n) | held-aside P / R (n) | baseline held-aside P / R |")
    print("| --- | --- | --- | --- | --- |")
    for reason in REASONS:
        for group in ("es", "en", "other", "all"):
            cells = []
            for key in ("cv", "held_aside_scores", "baseline_held_aside"):
                cell = results[key][group][reason]
                cells.append(f"{cell['precision']:.2f} / {cell['recall']:.2f}"
                             + ("" if key.startswith("baseline") else f" ({cell['support']})"))
            print(f"| {reason} | {group} | " + " | ".join(cells) + " |")
    print(f"cost: {results['cost']}")


if __name__ == "__main__":
    main()
