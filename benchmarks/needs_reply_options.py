"""Needs-reply head designs compared on the same labels, split and folds.

Every design is chosen and thresholded on the dev part only, by the rule of
:mod:`benchmarks.needs_reply` (5-fold CV; the grid point with the best mean F1 of
``question`` and ``complaint``; each reason's threshold by F0.5 on the out-of-fold
predictions); the held-aside tweets are scored once per design, after the choice, for the
record. The designs:

- ``cues``: the shipped cue features (sentiment included) under the numpy head;
- ``cues+char``: the cues beside character 2-5-gram TF-IDF of the folded text, one linear
  multinomial head over both (scikit-learn's logistic regression);
- ``cues+word``: the same with word 1-2-gram TF-IDF;
- ``cues+e5``: the cues beside the bundled e5-small encoder's mean-pooled embedding (a
  second encoder pass per mention; its CPU time per text is measured here, one thread).

Sentiment scores and embeddings are cached in ``--cache`` (by tweet id) so a rerun costs only
the fits.

Run: ``python -m benchmarks.needs_reply_options`` (writes
``benchmarks/results/needs_reply_options.json``).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import torch
from scipy import sparse  # type: ignore[import-untyped]
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from benchmarks.common import write_results
from benchmarks.needs_reply import (
    FOLDS,
    GRID,
    _target_f1,
    choose_thresholds,
    cue_features,
    decide,
    load_labelled,
    mentions_of,
    out_of_fold,
    score_sentiment,
    scores_table,
)
from pipeline.embeddings import MeanPooledEncoder
from pipeline.stages.reply.cues import is_retweet
from pipeline.stages.reply.head import CLASSES, ReplyHead, fit_head
from pipeline.text import fold

SK_GRID = [(c, power) for c in (1.0, 4.0) for power in (0.5, 1.0)]


def cached_inputs(rows: list[dict[str, Any]], cache: Path) -> tuple[np.ndarray, float]:
    """Sentiment scores onto the rows, and each row's e5 embedding; e5 CPU s per text."""
    store: dict[str, Any] = orjson.loads(cache.read_bytes()) if cache.exists() else {}
    todo = [row for row in rows if row["id"] not in store]
    e5_seconds = float(store.get("_e5_cpu_s_per_text", 0.0))
    if todo:
        scores, _ = score_sentiment([row["text"] for row in todo])
        torch.set_num_threads(1)
        encoder = MeanPooledEncoder()
        encoder.embed([row["text"] for row in todo[:32]])  # warm-up
        started = time.process_time()
        vectors = encoder.embed([row["text"] for row in todo])
        e5_seconds = (time.process_time() - started) / len(todo)
        for row, score, vector in zip(todo, scores, vectors, strict=True):
            store[row["id"]] = {"scores": score, "e5": [round(float(v), 5) for v in vector]}
        store["_e5_cpu_s_per_text"] = e5_seconds
        cache.write_bytes(orjson.dumps(store))
    for row in rows:
        row["scores"] = store[row["id"]]["scores"]
    return np.array([store[row["id"]]["e5"] for row in rows], dtype=np.float32), e5_seconds


def sk_probabilities(train_x: Any, train_y: Sequence[str | None], test_x: Any,
                     c: float, power: float) -> np.ndarray:
    """A weighted multinomial logistic regression's class probabilities (CLASSES order)."""
    targets = np.array([CLASSES.index(label or "none") for label in train_y])
    counts = np.bincount(targets, minlength=len(CLASSES)).astype(float)
    weights = ((len(targets) / np.maximum(counts, 1.0)) ** power)[targets]
    model = LogisticRegression(C=c, max_iter=300)
    model.fit(train_x, targets, sample_weight=weights / weights.mean())
    probabilities = np.zeros((test_x.shape[0], len(CLASSES)), dtype=np.float32)
    probabilities[:, model.classes_] = model.predict_proba(test_x)
    return probabilities


def evaluate_sk(build: Callable[[list[int], list[int]], tuple[Any, Any]],
                rows: list[dict[str, Any]]) -> dict[str, Any]:
    """CV on dev (grid, thresholds) then held aside, for a design built per train/test split.

    ``build(train, test)`` returns the feature matrices of those row indices, fitted (TF-IDF
    vocabularies, scaling) on ``train`` only.
    """
    dev = [i for i, row in enumerate(rows) if row["split"] == "dev"]
    held = [i for i, row in enumerate(rows) if row["split"] == "held_aside"]
    labels = [rows[i]["label"] for i in dev]
    folds = np.array([rows[i]["fold"] for i in dev])
    splits = []
    for fold_number in range(FOLDS):
        train = [dev[j] for j in np.flatnonzero(folds != fold_number)]
        test = [dev[j] for j in np.flatnonzero(folds == fold_number)]
        splits.append((fold_number, train, test, *build(train, test)))

    def oof(c: float, power: float) -> np.ndarray:
        out = np.zeros((len(dev), len(CLASSES)), dtype=np.float32)
        for fold_number, train, _test, train_x, test_x in splits:
            out[folds == fold_number] = sk_probabilities(
                train_x, [rows[i]["label"] for i in train], test_x, c, power)
        return out

    predictions = {key: oof(*key) for key in SK_GRID}
    grid = {key: _target_f1(probabilities, labels) for key, probabilities in predictions.items()}
    c, power = max(grid, key=lambda key: grid[key])
    thresholds = choose_thresholds(predictions[c, power], labels)
    cv_predicted = decide(predictions[c, power], thresholds)
    train_x, held_x = build(dev, held)
    held_predicted = decide(sk_probabilities(train_x, labels, held_x, c, power), thresholds)
    return report(rows, dev, held, cv_predicted, held_predicted,
                  {"C": c, "class_weight_power": power, "thresholds": thresholds})


def evaluate_cues(features: np.ndarray, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The shipped design, by :mod:`benchmarks.needs_reply`'s own rule."""
    dev = [i for i, row in enumerate(rows) if row["split"] == "dev"]
    held = [i for i, row in enumerate(rows) if row["split"] == "held_aside"]
    labels = [rows[i]["label"] for i in dev]
    folds = np.array([rows[i]["fold"] for i in dev])
    grid = {key: _target_f1(out_of_fold(features[dev], labels, folds, *key), labels)
            for key in GRID}
    l2, power = max(grid, key=lambda key: grid[key])
    oof = out_of_fold(features[dev], labels, folds, l2, power)
    thresholds = choose_thresholds(oof, labels)
    head = ReplyHead(fit_head(features[dev], labels, l2=l2, class_weight_power=power),
                     thresholds)
    return report(rows, dev, held, decide(oof, thresholds), head.reasons(features[held]),
                  {"l2": l2, "class_weight_power": power, "thresholds": thresholds})


def report(rows: list[dict[str, Any]], dev: list[int], held: list[int],
           cv_predicted: list[str | None], held_predicted: list[str | None],
           chosen: dict[str, Any]) -> dict[str, Any]:
    """Scores tables of CV and held aside; retweets never get a reason."""
    def copies_off(indices: list[int], predicted: list[str | None]) -> list[str | None]:
        return [None if is_retweet(rows[i]["text"]) else p
                for i, p in zip(indices, predicted, strict=True)]
    return {"chosen": chosen,
            "cv": scores_table([rows[i] for i in dev], copies_off(dev, cv_predicted)),
            "held_aside": scores_table([rows[i] for i in held],
                                       copies_off(held, held_predicted))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/needs_reply_inputs.json"))
    args = parser.parse_args()
    rows = load_labelled()
    e5, e5_seconds = cached_inputs(rows, args.cache)
    cues = cue_features(mentions_of(rows))
    folded = [fold(row["text"]) for row in rows]

    def design(char: bool, word: bool, embed: bool) -> Callable[[list[int], list[int]],
                                                               tuple[Any, Any]]:
        def build(train: list[int], test: list[int]) -> tuple[Any, Any]:
            parts_train, parts_test = [sparse.csr_matrix(cues[train])], [
                sparse.csr_matrix(cues[test])]
            for on, vectorizer in (
                    (char, lambda: TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5),
                                                   min_df=2, sublinear_tf=True)),
                    (word, lambda: TfidfVectorizer(ngram_range=(1, 2), min_df=2,
                                                   sublinear_tf=True))):
                if on:
                    fitted = vectorizer()
                    parts_train.append(fitted.fit_transform([folded[i] for i in train]))
                    parts_test.append(fitted.transform([folded[i] for i in test]))
            if embed:
                parts_train.append(sparse.csr_matrix(e5[train]))
                parts_test.append(sparse.csr_matrix(e5[test]))
            return sparse.hstack(parts_train).tocsr(), sparse.hstack(parts_test).tocsr()
        return build

    results: dict[str, Any] = {"labelled": len(rows),
                               "e5_cpu_us_per_text_1_thread": round(e5_seconds * 1e6, 1)}
    results["cues"] = evaluate_cues(cues, rows)
    for name, flags in (("cues+char", (True, False, False)), ("cues+word", (False, True, False)),
                        ("cues+e5", (False, False, True))):
        results[name] = evaluate_sk(design(*flags), rows)
        print(name, "done", flush=True)
    path = write_results("needs_reply_options", results)
    print_table(results)
    print(f"wrote {path}")


def print_table(results: dict[str, Any]) -> None:
    """Per design: CV and held-aside P / R (support) for the target reasons and languages."""
    print("| design | reason | lang | CV P / R (n) | held aside P / R (n) |")
    print("| --- | --- | --- | --- | --- |")
    for name, result in results.items():
        if not isinstance(result, dict):
            continue
        for reason in ("question", "complaint", "request", "praise"):
            for lang in ("es", "en"):
                cells = [f"{result[key][lang][reason]['precision']:.2f} / "
                         f"{result[key][lang][reason]['recall']:.2f} "
                         f"({result[key][lang][reason]['support']})"
                         for key in ("cv", "held_aside")]
                print(f"| {name} | {reason} | {lang} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
