"""Record the activation ranges that smooth a sentiment model's int8 layers.

Feeds XLM-T *train* tweets (128 per language by default; val stays for choosing and
scoring) through the fp32 model and stores each ``Linear`` input channel's largest
absolute value, with the smoothing strength, as ``int8_calibration.safetensors`` in the
model folder (see :mod:`pipeline.stages.sentiment.int8`). For the bundled model the file
is also written next to the committed delta, and ``models/build_default.py`` copies it
into the build: re-run this whenever the delta changes.

Run: ``python -m models.calibrate_int8 [--model-dir DIR] [--alpha 0.85]``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from benchmarks.common import XLMT_LANGUAGES, load_xlmt
from models.build_default import COMMITTED_CALIBRATION
from pipeline.stages.sentiment.engine import DEFAULT_MODEL_DIR, SentimentEngine
from pipeline.stages.sentiment.int8 import (
    CALIBRATION_FILE,
    DEFAULT_ALPHA,
    record_input_ranges,
    save_calibration,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def calibration_texts(per_language: int) -> list[str]:
    """The first ``per_language`` train tweets of every XLM-T language."""
    texts: list[str] = []
    for language in XLMT_LANGUAGES:
        texts += load_xlmt(language, "train")[0][:per_language]
    return texts


def calibrate(model_dir: Path, *, per_language: int = 128,
              alpha: float = DEFAULT_ALPHA) -> list[Path]:
    """Write the calibration into the model folder (and the committed copy); return paths."""
    engine = SentimentEngine(model_dir, device="cpu", quantize_int8=False)
    texts = calibration_texts(per_language)
    ranges = record_input_ranges(engine.model, lambda: engine.score(texts))
    description = f"{len(texts)} XLM-T train tweets, first {per_language} per language"
    targets = [model_dir / CALIBRATION_FILE]
    if model_dir.resolve() == DEFAULT_MODEL_DIR.resolve():
        targets.append(COMMITTED_CALIBRATION)
    for path in targets:
        save_calibration(ranges, path, alpha=alpha, description=description,
                         model=engine.model)
    return targets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--per-language", type=int, default=128)
    parser.add_argument("--alpha", type=float, default=DEFAULT_ALPHA,
                        help="smoothing strength: 0 leaves activations alone, 1 flattens them")
    args = parser.parse_args()
    started = time.perf_counter()
    paths = calibrate(args.model_dir, per_language=args.per_language, alpha=args.alpha)
    print(f"wrote {', '.join(map(str, paths))} in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
