"""Per-brand sentiment (``sentiment_by_brand``) on hand-labelled comparative mentions.

The set (``benchmarks/data/brand_sentiment/``, guide in its README) holds mentions naming two
or more brands, each brand labelled. Two methods are scored per (mention, brand) pair with
macro-F1 over the three labels, per split and language:

- ``baseline``: the mention-level label given to every brand it names (what the pipeline did
  before ``sentiment_by_brand``);
- ``targets``: :class:`~pipeline.stages.sentiment.targets.BrandTargets` on the bundled model,
  the mention and its segments scored in one engine call, as the sentiment stage does.

``dev`` is the part looked at while the rules were written; ``held`` was scored only at the
end (see benchmarks/README.md).

``--throughput`` also times the sentiment stage's core over the generated firehose (ingest,
copy plan, model inputs, engine, results written) without and with per-brand planning,
alternating rounds on the same engine, and reports the best round of each.

Run: ``python -m benchmarks.brand_sentiment [--split dev|held|both] [--throughput]
[--mentions 2000] [--rounds 3]``; writes ``benchmarks/results/brand_sentiment.json``.
``--stand-in [--mentions 20000]`` times only the stage's own CPU (no model), into
``results/brand_sentiment_stand_in_<share>pct.json``; ``--several-share 0.05`` makes 5 % of
the firehose comparative mentions of the set (the generated firehose names one brand each).
"""

from __future__ import annotations

import argparse
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import orjson

from benchmarks.common import write_results
from pipeline.config import Settings
from pipeline.records import SCORED, brands_of
from pipeline.stages.sentiment.engine import SentimentEngine, build_engine
from pipeline.stages.sentiment.labels import LABELS, SentimentResult
from pipeline.stages.sentiment.targets import BrandTargets, build_brand_targets

DATA = Path(__file__).parent / "data" / "brand_sentiment"
BRANDS = {"A": "acme-mobile", "T": "telvia", "Z": "zentel", "N": "nimbus-bank",
          "O": "orbita-bank", "K": "kuanto", "L": "lumo-air", "S": "skyra"}
TONES = {"n": "negative", "u": "neutral", "p": "positive"}
_STAND_IN = SentimentResult("neutral", {"negative": 0.2, "neutral": 0.6, "positive": 0.2})


@dataclass(frozen=True, slots=True)
class LabelledMention:
    """One mention of the set: its language, text and each named brand's label."""

    lang: str
    text: str
    labels: dict[str, str]


def load_split(name: str) -> list[LabelledMention]:
    """The ``dev`` or ``held`` part: ``lang <TAB> A-p T-n <TAB> text`` lines."""
    mentions = []
    for number, line in enumerate((DATA / f"{name}.tsv").read_text("utf-8").splitlines(), 1):
        lang, labels, text = line.split("\t")
        pairs = [label.split("-") for label in labels.split()]
        if any(brand not in BRANDS or tone not in TONES for brand, tone in pairs):
            raise ValueError(f"{name}.tsv line {number}: bad labels {labels!r}")
        mentions.append(LabelledMention(lang, text, {BRANDS[b]: TONES[t] for b, t in pairs}))
    return mentions


def macro_f1(gold: Sequence[str], predicted: Sequence[str]) -> float:
    """Macro-F1 over the three labels (a label absent from both counts as 0 in neither)."""
    scores = []
    for label in LABELS:
        tp = sum(g == p == label for g, p in zip(gold, predicted, strict=True))
        fp = sum(p == label != g for g, p in zip(gold, predicted, strict=True))
        fn = sum(g == label != p for g, p in zip(gold, predicted, strict=True))
        if tp + fp + fn:
            scores.append(2 * tp / (2 * tp + fp + fn))
    return 100 * sum(scores) / len(scores) if scores else 0.0


def predict(engine: SentimentEngine, targets: BrandTargets,
            mentions: Sequence[LabelledMention]) -> list[tuple[dict[str, str], dict[str, str]]]:
    """Per mention: (baseline labels, per-brand labels) for its labelled brands."""
    plans = [targets.plan(m.text, list(m.labels), m.lang) for m in mentions]
    texts = [m.text for m in mentions] + [s for plan in plans for s in plan.segments]
    results = engine.score(texts)
    own, extra = results[:len(mentions)], results[len(mentions):]
    predicted = []
    for mention, plan, result in zip(mentions, plans, own, strict=True):
        segments, extra = extra[:len(plan.segments)], extra[len(plan.segments):]
        by_brand = targets.combine(plan, result, segments)
        predicted.append(({brand: result.label for brand in mention.labels},
                          {brand: by_brand[brand].label for brand in mention.labels}))
    return predicted


def unnamed_brands(targets: BrandTargets, mentions: Sequence[LabelledMention]) -> list[str]:
    """Labelled brands the listening queries do not find in their mention's text."""
    from pipeline.text import tokenize

    missing = []
    for mention in mentions:
        named = targets.matcher.brand_spans(tokenize(mention.text), list(mention.labels))
        missing += [f"{brand}: {mention.text}" for brand in mention.labels if brand not in named]
    return missing


def score_split(engine: SentimentEngine, targets: BrandTargets, name: str) -> dict[str, Any]:
    """Macro-F1 of both methods on one split, overall and per language group."""
    mentions = load_split(name)
    missing = unnamed_brands(targets, mentions)
    if missing:
        raise ValueError("brands the queries do not find:\n" + "\n".join(missing))
    pairs: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    for mention, (baseline, by_brand) in zip(mentions, predict(engine, targets, mentions),
                                             strict=True):
        group = mention.lang if mention.lang in ("es", "en") else "other"
        for brand, gold in mention.labels.items():
            for key in ("all", group):
                pairs[key].append((gold, baseline[brand], by_brand[brand]))
    report: dict[str, Any] = {}
    for key in ("all", "es", "en", "other"):
        golds = [pair[0] for pair in pairs[key]]
        report[key] = {"pairs": len(golds),
                       "baseline": round(macro_f1(golds, [p[1] for p in pairs[key]]), 1),
                       "targets": round(macro_f1(golds, [p[2] for p in pairs[key]]), 1),
                       "gold": dict(Counter(golds))}
    report["mentions"] = len(mentions)
    return report


def throughput(engine: SentimentEngine | None, brands_file: Path, count: int,
               rounds: int, several_share: float = 0.0) -> dict[str, Any]:
    """Best mentions/s of the sentiment core on the firehose, without and with targets.

    Without an engine (``--stand-in``), every text gets a fixed result: what is left is the
    CPU time of the stage's own work, planning included, without the model.
    ``several_share`` of the mentions (evenly spread) take the text, brands and language of
    a mention of the labelled set, so that some name several brands.
    """
    from benchmarks.pipeline import firehose
    from pipeline.stages.ingest import build_ingestor
    from pipeline.stages.sentiment.mentions import CopyMemory, model_inputs, score_mentions

    ingestor = build_ingestor(Settings(sentiment_device="cpu", brands_file=brands_file))
    # the ingest stage's own output, decoded back to the dicts the sentiment stage reads
    outcome = ingestor.process_encoded(list(firehose(count)))
    mentions = [SCORED.from_dict(orjson.loads(mention.encoded)) for mention in outcome.tagged]
    comparative = load_split("dev") + load_split("held")
    if several_share > 0:
        step = max(1, round(1 / several_share))
        for n, at in enumerate(range(0, len(mentions), step)):
            source = comparative[n % len(comparative)]
            mentions[at] = msgspec.structs.replace(
                mentions[at], text=source.text, brands=list(source.labels), lang=source.lang,
                duplicate_of=None, sentiment_tokens=msgspec.UNSET)
    several = sum(len(set(brands_of(m))) > 1 for m in mentions)
    best: dict[str, float] = {}
    extra_texts = texts_scored = 0
    for _ in range(rounds):
        for mode in ("mention only", "by brand"):
            batch = [msgspec.structs.replace(m) for m in mentions]
            targets = build_brand_targets(brands_file) if mode == "by brand" else None
            started = time.process_time() if engine is None else time.perf_counter()
            memory = CopyMemory()
            for at in range(0, len(batch), 256):
                part = batch[at:at + 256]
                plan = memory.plan(part)
                texts, carried = model_inputs(part, plan[0], targets)
                if targets is not None:
                    extra_texts += len(texts) - len(plan[0])
                    texts_scored += len(texts)
                results = (engine.score_packed(engine.encode_carried(texts, carried))
                           if engine is not None else [_STAND_IN] * len(texts))
                score_mentions(part, results, plan, memory, targets)
            ended = time.process_time() if engine is None else time.perf_counter()
            rate = len(batch) / (ended - started)
            best[mode] = max(best.get(mode, 0.0), rate)
            print(f"  {mode}: {rate:,.1f} mentions/s", flush=True)
    return {"mentions": count, "several_brands": several, "rounds": rounds,
            "several_share": several_share,
            "model": "stand-in" if engine is None else "bundled",
            "texts_per_round": texts_scored // rounds,
            "extra_texts_per_round": extra_texts // rounds,
            "mentions_per_s": {k: round(v, 1) for k, v in best.items()},
            "change_pct": round(100 * (best["by brand"] / best["mention only"] - 1), 1)}


def main() -> None:
    """Score the set (and optionally time the stage); print and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("dev", "held", "both"), default="dev")
    parser.add_argument("--throughput", action="store_true")
    parser.add_argument("--mentions", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--several-share", type=float, default=0.0,
                        help="share of firehose mentions replaced by comparative ones")
    parser.add_argument("--stand-in", action="store_true",
                        help="time the stage without the model (set scoring skipped)")
    args = parser.parse_args()
    if args.stand_in:
        report = throughput(None, DATA / "brands.yaml", args.mentions, args.rounds,
                            args.several_share)
        print(orjson.dumps(report).decode())
        name = f"brand_sentiment_stand_in_{round(100 * args.several_share)}pct"
        print("wrote", write_results(name, {"throughput": report}))
        return
    engine = build_engine(Settings(sentiment_device="cpu"))
    targets = build_brand_targets(DATA / "brands.yaml")
    results: dict[str, Any] = {"model": str(engine.model_dir)}
    for name in ("dev", "held") if args.split == "both" else (args.split,):
        results[name] = score_split(engine, targets, name)
        for key in ("all", "es", "en", "other"):
            row = results[name][key]
            print(f"{name:4} {key:5} pairs {row['pairs']:3}  baseline {row['baseline']:5.1f}"
                  f"  by brand {row['targets']:5.1f}  ({row['targets'] - row['baseline']:+.1f})")
    if args.throughput:
        results["throughput"] = throughput(engine, DATA / "brands.yaml", args.mentions,
                                           args.rounds, args.several_share)
        print(orjson.dumps(results["throughput"]).decode())
    print("wrote", write_results("brand_sentiment", results))


if __name__ == "__main__":
    main()
