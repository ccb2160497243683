"""Per-language val macro-F1 and accuracy of a sentiment checkpoint, fp32 and int8.

Scores the XLM-T val splits through :class:`pipeline.stages.sentiment.engine.SentimentEngine`,
the same code path the pipeline uses: with fp32 weights, with the dynamic int8 ``Linear``
layers the engine uses on CPU (smoothed by the model's calibration) and, when the model is
calibrated, with plain int8 for comparison. Writes ``models/evaluation.json`` (numbers for
the model card).

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
from pipeline.stages.sentiment.engine import DEFAULT_MODEL_DIR, SentimentEngine
from pipeline.stages.sentiment.int8 import load_calibration, quantize_int8
from pipeline.stages.sentiment.labels import LABELS

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


def engines(model_dir: Path) -> dict[str, SentimentEngine]:
    """fp32, the int8 the engine ships (smoothed when calibrated), and plain int8."""
    variants = {
        "fp32": SentimentEngine(model_dir, device="cpu", quantize_int8=False),
        "int8": SentimentEngine(model_dir, device="cpu", quantize_int8=True),
    }
    if load_calibration(model_dir) is not None:
        plain = SentimentEngine(model_dir, device="cpu", quantize_int8=False)
        plain.model = quantize_int8(plain.model)
        variants["int8_unsmoothed"] = plain
    return variants


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--output", type=Path, default=REPORT)
    args = parser.parse_args()
    results: dict[str, object] = {"model_dir": str(args.model_dir), "torch": torch.__version__,
                                  "torch_threads": torch.get_num_threads()}
    scores: dict[str, dict[str, dict[str, float]]] = {}
    for name, engine in engines(args.model_dir).items():
        started = time.perf_counter()
        scores[name] = results[name] = evaluate(engine)
        results[f"{name}_seconds"] = round(time.perf_counter() - started, 1)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"{'language':<12}" + "".join(f" {'F1 ' + name:>20}" for name in scores)
          + "".join(f" {'acc ' + name:>20}" for name in scores))
    for language in (*XLMT_LANGUAGES, "average"):
        print(f"{language:<12}"
              + "".join(f" {scores[name][language]['macro_f1']:>20.2f}" for name in scores)
              + "".join(f" {scores[name][language]['accuracy']:>20.2f}" for name in scores))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
