"""Dedup benchmark: precision and recall per perturbation kind, and throughput per core.

Built from real tweets (XLM-T train + val, 8 languages). Every original is fed first; then
its copies, each made by one realistic perturbation; then hard negatives: different tweets
that share boilerplate (the same hashtag block, the same template). Recall of a kind = share
of its copies whose ``duplicate_of`` is their original; precision = share of all mentions
flagged as duplicates that point at their real original (hard negatives flagged count as
false positives). Routing: share of near copies whose routing key equals their original's
(copies meet on one partition only then).

Run: ``python -m benchmarks.dedup`` (writes benchmarks/results/dedup.json).
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from benchmarks.common import XLMT_LANGUAGES, load_xlmt, write_results
from pipeline.stages.dedup import DedupInput, Deduplicator, normalise_for_matching, routing_key

START = datetime(2026, 11, 1, tzinfo=UTC)
FILLER_WORDS = ("really", "muy", "très", "sehr", "molto", "mesmo", "totally", "hoy", "today")


def _words_edit(text: str, edits: int, pick: random.Random) -> str:
    words = text.split()
    for _ in range(edits):
        if len(words) < 2:
            break
        words[pick.randrange(len(words))] = pick.choice(FILLER_WORDS)
    return " ".join(words)


def _reorder(text: str, pick: random.Random) -> str:
    for mark in (". ", ", ", "! ", "? "):
        if mark in text:
            head, tail = text.split(mark, 1)
            return f"{tail.rstrip('.!?')}{mark}{head}"
    words = text.split()
    middle = len(words) // 2
    return " ".join(words[middle:] + words[:middle])


PERTURBATIONS: dict[str, Callable[[str, random.Random], str]] = {
    "exact": lambda text, pick: text,
    "retweet": lambda text, pick: f"RT @user{pick.randint(1, 999)}: {text}",
    "url_change": lambda text, pick: (
        f"{text} https://lnk.example/a?utm_source=s{pick.randint(1, 9999)}&fbclid=x"
    ),
    "casing": lambda text, pick: text.upper() if pick.random() < 0.5 else text.lower(),
    "emoji": lambda text, pick: f"{text} {pick.choice(['😂😂', '🔥', '👀👀👀', '🙏'])}",
    "appended_hashtags": lambda text, pick: f"{text} #breaking #news",
    "one_word_edit": lambda text, pick: _words_edit(text, 1, pick),
    "two_word_edit": lambda text, pick: _words_edit(text, 2, pick),
    "reordered_clauses": _reorder,
}

HASHTAG_BLOCK = "#giveaway #win #follow #contest #rt #free #prize"
TEMPLATES = (
    "I just voted for {x} in the awards! Vote here https://vote.example/{n} #awards2026",
    "New post on my blog: {x} — read it at https://blog.example/{n}",
)


def build_corpus(count: int, seed: int) -> tuple[list[str], random.Random]:
    pick = random.Random(seed)
    texts: list[str] = []
    seen: set[str] = set()
    for language in XLMT_LANGUAGES:
        for split in ("train", "val"):
            for text in load_xlmt(language, split)[0]:
                key = normalise_for_matching(text)
                # originals must differ from each other, or a "copy" has two right answers
                if len(key) >= 30 and key not in seen:
                    seen.add(key)
                    texts.append(text)
    pick.shuffle(texts)
    return texts[:count], pick


def evaluate(originals: int = 3000, seed: int = 7, **options: Any) -> dict[str, Any]:
    texts, pick = build_corpus(originals + 600, seed)
    base, spare = texts[:originals], texts[originals:]
    dedup = Deduplicator(**options)
    clock = iter(START + timedelta(seconds=i) for i in range(10**7))
    stream: list[tuple[DedupInput, str | None, str]] = []
    for index, text in enumerate(base):
        stream.append((DedupInput(f"o{index}", text, next(clock)), None, "original"))
    for kind, perturb in PERTURBATIONS.items():
        for index, text in enumerate(base):
            copy = perturb(text, pick)
            stream.append((DedupInput(f"{kind}{index}", copy, next(clock)), f"o{index}", kind))
    for index in range(0, len(spare) - 1, 2):
        for variant, (left, right) in enumerate((
            (f"{spare[index]} {HASHTAG_BLOCK}", f"{spare[index + 1]} {HASHTAG_BLOCK}"),
            (TEMPLATES[0].format(x=spare[index], n=index),
             TEMPLATES[0].format(x=spare[index + 1], n=index + 1)),
            (TEMPLATES[1].format(x=spare[index], n=index),
             TEMPLATES[1].format(x=spare[index + 1], n=index + 1)),
        )):
            stream.append((DedupInput(f"hn{variant}a{index}", left, next(clock)), None, "hard_a"))
            stream.append((DedupInput(f"hn{variant}b{index}", right, next(clock)), None,
                           "hard_negative"))

    started = time.perf_counter()
    verdicts = dedup.check([item for item, _truth, _kind in stream])
    elapsed = time.perf_counter() - started

    hits: Counter[str] = Counter()
    totals: Counter[str] = Counter()
    flagged = correct = 0
    false_by_kind: Counter[str] = Counter()
    for (_item, truth, kind), verdict in zip(stream, verdicts, strict=True):
        totals[kind] += 1
        if verdict.duplicate_of is not None:
            flagged += 1
            if verdict.duplicate_of == truth:
                correct += 1
                hits[kind] += 1
            else:
                false_by_kind[kind] += 1
    recall = {kind: hits[kind] / totals[kind] for kind in PERTURBATIONS}
    colocated = {}
    for kind in ("one_word_edit", "two_word_edit", "appended_hashtags", "reordered_clauses"):
        same = sum(
            routing_key(item.text) == routing_key(base[int(truth[1:])])
            for item, truth, k in stream[:] if k == kind and truth is not None
        )
        colocated[kind] = same / totals[kind]
    return {
        "options": {key: str(value) for key, value in options.items()},
        "originals": originals,
        "mentions": len(stream),
        "recall": recall,
        "precision": correct / flagged if flagged else 1.0,
        "false_positives_by_kind": dict(false_by_kind),
        "hard_negative_pairs": totals["hard_negative"],
        "hard_negative_false_positive_rate": false_by_kind["hard_negative"]
        / max(1, totals["hard_negative"]),
        "mentions_per_s_one_core": len(stream) / elapsed,
        "routing_colocation": colocated,
    }


def main() -> None:
    shipped = evaluate()
    print(f"{'kind':<20} recall   routed-together")
    for kind, value in shipped["recall"].items():
        together = shipped["routing_colocation"].get(kind)
        print(f"{kind:<20} {value:6.3f}   {'' if together is None else f'{together:.3f}'}")
    print(f"precision {shipped['precision']:.4f}  hard-negative FP rate "
          f"{shipped['hard_negative_false_positive_rate']:.4f}  "
          f"{shipped['mentions_per_s_one_core']:.0f} mentions/s (one core)")
    sweep = []
    for threshold in (0.6, 0.65, 0.7, 0.75):
        row = evaluate(near_threshold=threshold)
        sweep.append({"near_threshold": threshold, "precision": row["precision"],
                      "recall": row["recall"]})
        print(f"threshold {threshold}: precision {row['precision']:.4f} "
              f"one-word {row['recall']['one_word_edit']:.3f} "
              f"two-word {row['recall']['two_word_edit']:.3f}")
    path = write_results("dedup", {"shipped": shipped, "threshold_sweep": sweep})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
