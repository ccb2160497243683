"""Needs-reply heads trained with hand-written mentions added, scored on the real tweets only.

``benchmarks/data/needs_reply/written.jsonl`` holds short brand-directed mentions written by
hand as training data (``GUIDE.md``, last section). They join every CV training fold and the
final fit; they never enter a validation fold nor the held-aside scoring, which stay the real
labelled tweets of :mod:`benchmarks.needs_reply` with its split, folds, grid and threshold rule
(the grid point with the best mean F1 of ``question`` and ``complaint`` on the out-of-fold
predictions; each reason's threshold by F0.5 on those). The designs:

- ``cues``: the shipped cue head on dev only;
- ``cues+written``: the same head with the written rows added to its training;
- ``cues+word+written`` / ``cues+char+written``: cues beside word 1-2-gram or character
  2-5-gram TF-IDF (fitted on the training rows, written ones included), one scikit-learn
  multinomial logistic head, as in :mod:`benchmarks.needs_reply_options`;
- ``cues+word`` / ``cues+char``: the same without the written rows.

Two transfer checks, for the record (no threshold tuned; argmax at 0.5): ``dev_head_on_written``
is the cue head fitted on dev (chosen grid point) scored on the written rows, and
``written_head_on_dev`` the cue head fitted on the written rows alone scored on dev.

The labelled tweets' sentiment comes from ``--cache`` (``needs_reply_options``'s cache,
filled if missing); the written texts are scored by the bundled model on one thread.

Run: ``python -m benchmarks.needs_reply_written`` (writes
``benchmarks/results/needs_reply_written.json``).
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from scipy import sparse  # type: ignore[import-untyped]
from sklearn.feature_extraction.text import TfidfVectorizer

from benchmarks.common import REPO_ROOT, write_results
from benchmarks.needs_reply import (
    FOLDS,
    GRID,
    _target_f1,
    choose_thresholds,
    cue_features,
    decide,
    load_labelled,
    mentions_of,
    score_sentiment,
    scores_table,
)
from benchmarks.needs_reply_options import (
    SK_GRID,
    cached_inputs,
    print_table,
    report,
    sk_probabilities,
)
from pipeline.stages.reply.head import CLASSES, ReplyHead, fit_head
from pipeline.text import fold

WRITTEN_PATH = REPO_ROOT / "benchmarks" / "data" / "needs_reply" / "written.jsonl"
Fit = Callable[[list[int], list[int], tuple[float, float]], np.ndarray]


def load_written(path: Path = WRITTEN_PATH) -> list[dict[str, Any]]:
    """The written training mentions, marked so no split or fold ever picks them."""
    rows = [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
    for row in rows:
        row["split"], row["fold"], row["stratum"] = "written", -1, "written"
    return rows


def evaluate(rows: list[dict[str, Any]], extra: list[int], fit: Fit,
             grid: list[tuple[float, float]], names: tuple[str, str]) -> dict[str, Any]:
    """CV on dev (grid, thresholds), then one fit on dev (+ ``extra``) scored on held aside.

    ``fit(train, test, key)`` returns the class probabilities of the ``test`` rows from a head
    fitted on the ``train`` rows with grid point ``key``; ``extra`` joins every ``train``.
    """
    dev = [i for i, row in enumerate(rows) if row["split"] == "dev"]
    held = [i for i, row in enumerate(rows) if row["split"] == "held_aside"]
    labels = [rows[i]["label"] for i in dev]
    folds = np.array([rows[i]["fold"] for i in dev])

    def oof(key: tuple[float, float]) -> np.ndarray:
        out = np.zeros((len(dev), len(CLASSES)), dtype=np.float32)
        for number in range(FOLDS):
            train = [dev[j] for j in np.flatnonzero(folds != number)] + extra
            out[folds == number] = fit(train, [dev[j] for j in np.flatnonzero(folds == number)],
                                       key)
        return out

    predictions = {key: oof(key) for key in grid}
    scores = {key: _target_f1(probabilities, labels) for key, probabilities in predictions.items()}
    key = max(scores, key=lambda k: scores[k])
    thresholds = choose_thresholds(predictions[key], labels)
    held_predicted = decide(fit(dev + extra, held, key), thresholds)
    return report(rows, dev, held, decide(predictions[key], thresholds), held_predicted,
                  {names[0]: key[0], names[1]: key[1], "thresholds": thresholds})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/needs_reply_inputs.json"))
    args = parser.parse_args()
    labelled = load_labelled()
    cached_inputs(labelled, args.cache)
    written = load_written()
    scores, _ = score_sentiment([row["text"] for row in written])
    for row, score in zip(written, scores, strict=True):
        row["scores"] = score
    rows = labelled + written
    extra = list(range(len(labelled), len(rows)))
    cues = cue_features(mentions_of(rows))
    folded = [fold(row["text"]) for row in rows]

    def cue_fit(train: list[int], test: list[int], key: tuple[float, float]) -> np.ndarray:
        weights = fit_head(cues[train], [rows[i]["label"] for i in train], l2=key[0],
                           class_weight_power=key[1])
        return ReplyHead(weights, {}).probabilities(cues[test])

    def tfidf_fit(analyzer: str, ngrams: tuple[int, int]) -> Fit:
        def fit(train: list[int], test: list[int], key: tuple[float, float]) -> np.ndarray:
            vectorizer = TfidfVectorizer(analyzer=analyzer, ngram_range=ngrams, min_df=2,
                                         sublinear_tf=True)
            train_x = sparse.hstack([sparse.csr_matrix(cues[train]),
                                     vectorizer.fit_transform([folded[i] for i in train])])
            test_x = sparse.hstack([sparse.csr_matrix(cues[test]),
                                    vectorizer.transform([folded[i] for i in test])])
            return sk_probabilities(train_x.tocsr(), [rows[i]["label"] for i in train],
                                    test_x.tocsr(), *key)
        return fit

    word, char = tfidf_fit("word", (1, 2)), tfidf_fit("char_wb", (2, 5))
    results: dict[str, Any] = {
        "labelled": len(labelled),
        "written": dict(Counter(f"{row['lang']}/{row['label'] or 'none'}" for row in written)),
    }
    for name, fit, grid, names, added in (
            ("cues", cue_fit, GRID, ("l2", "class_weight_power"), []),
            ("cues+written", cue_fit, GRID, ("l2", "class_weight_power"), extra),
            ("cues+word+written", word, SK_GRID, ("C", "class_weight_power"), extra),
            ("cues+word", word, SK_GRID, ("C", "class_weight_power"), []),
            ("cues+char+written", char, SK_GRID, ("C", "class_weight_power"), extra),
            ("cues+char", char, SK_GRID, ("C", "class_weight_power"), [])):
        results[name] = evaluate(rows, added, fit, grid, names)
        print(name, "done", flush=True)
    dev = [i for i, row in enumerate(rows) if row["split"] == "dev"]
    key = (results["cues"]["chosen"]["l2"], results["cues"]["chosen"]["class_weight_power"])
    results["dev_head_on_written"] = scores_table(written, decide(cue_fit(dev, extra, key), {}))
    results["written_head_on_dev"] = scores_table([rows[i] for i in dev],
                                                  decide(cue_fit(extra, dev, key), {}))
    path = write_results("needs_reply_written", results)
    print_table({k: v for k, v in results.items() if isinstance(v, dict) and "cv" in v})
    for check in ("dev_head_on_written", "written_head_on_dev"):
        print(check, {f"{reason} {lang}": (results[check][lang][reason]["precision"],
                                           results[check][lang][reason]["recall"])
                      for reason in ("question", "complaint") for lang in ("es", "en")})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
