"""Per-language val macro-F1 and accuracy of a sentiment checkpoint, fp32 and int8.

Scores the XLM-T val splits through :class:`pipeline.stages.sentiment.SentimentEngine`,
the same code path the pipeline uses, once with fp32 weights and once with dynamic int8
``Linear`` layers, and writes ``models/evaluation.json`` (numbers for the model card).

Run: ``python -m models.evaluate_sentiment [--model-dir models/build/sentiment-default]``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import XLMT_LANGUAGES, load_xlmt
from models.train_sentiment import macro_f1
from pipeline.stages.sentiment import DEFAULT_MODEL_DIR, LABELS, SentimentEngine

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPORT = Path(__file__).resolve().parent / "evaluation.json"


def evaluate(engine: SentimentEngine) -> dict[str, dict[str, float]]:
    """Macro-F1 and accuracy (in %) per language and their unweighted average."""
    report: dict[str, dict[str, float]] = {}
    for language in XLMT_LANGUAGES:
        texts, gold = load_xlmt(language, "val")
        predicted = np.asarray([LABELS.index(r.label) for r in engine.score(texts)])
        labels = np.asarray(gold)
        report[language] = {
            "macro_f1": round(100 * macro_f1(labels, predicted), 2),
            "accuracy": round(100 * float(np.mean(labels == predicted)), 2),
        }
    report["average"] = {
        key: round(float(np.mean([report[lang][key] for lang in XLMT_LANGUAGES])), 2)
        for key in ("macro_f1", "accuracy")
    }
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--output", type=Path, default=REPORT)
    args = parser.parse_args()
    results: dict[str, object] = {"model_dir": str(args.model_dir), "torch": torch.__version__,
                                  "torch_threads": torch.get_num_threads()}
    for name, int8 in (("fp32", False), ("int8", True)):
        engine = SentimentEngine(args.model_dir, device="cpu", quantize_int8=int8)
        started = time.perf_counter()
        results[name] = evaluate(engine)
        results[f"{name}_seconds"] = round(time.perf_counter() - started, 1)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"{'language':<12} {'F1 fp32':>8} {'F1 int8':>8} {'acc fp32':>9} {'acc int8':>9}")
    fp32, int8_scores = results["fp32"], results["int8"]
    assert isinstance(fp32, dict) and isinstance(int8_scores, dict)
    for language in (*XLMT_LANGUAGES, "average"):
        print(f"{language:<12} {fp32[language]['macro_f1']:>8.2f} "
              f"{int8_scores[language]['macro_f1']:>8.2f} {fp32[language]['accuracy']:>9.2f} "
              f"{int8_scores[language]['accuracy']:>9.2f}")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
