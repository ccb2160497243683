"""Dedup benchmark: quality per perturbation kind, throughput per core, candidates, routing.

Built from real tweets (XLM-T train + val, 8 languages; never the test split). Every original
is fed first; then its copies, each made by one realistic perturbation; then hard negatives:
different tweets that share boilerplate (the same hashtag block, the same template). The
stream goes through the shipped :class:`Deduplicator` in micro-batches of ``BATCH``.

- Recall of a kind: share of its copies whose ``duplicate_of`` is their original's cluster
  (the original itself, or the earlier original it was itself matched to).
- Precision: share of flagged mentions that point at the right cluster; an original or a hard
  negative that gets flagged counts as a false positive (examples are written out, because
  some real tweets are near-copies of each other).
- Throughput: mentions/s of ``Deduplicator.check`` alone, one thread, on the quality stream
  (90% copies) and on a stream of distinct tweets (every mention a new conversation: the
  slower case, it writes the index).
- Candidates, same run: signature throughput and pairwise quality (copy vs original, hard
  negative pairs) of the shipped NumPy-hashed 4-grams into rensa, rensa fed Python 4-gram
  strings, a pure NumPy MinHash, a NumPy SimHash, and datasketch (on a subsample: slow).
- Routing: brands drawn so that one hot brand is half the traffic; three keying schemes over
  ``PARTITIONS`` partitions (partition = CRC32 of the key, a stand-in for Kafka's murmur2),
  each with one Deduplicator per partition: recall per kind and the busiest partition's load.

Run: ``python -m benchmarks.dedup`` (writes benchmarks/results/dedup.json).
"""

from __future__ import annotations

import random
import time
import tracemalloc
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
from rensa import RMinHash

from benchmarks.common import XLMT_LANGUAGES, load_xlmt, write_results
from pipeline.stages.dedup import NEAR_THRESHOLD, DedupInput, Deduplicator
from pipeline.stages.dedup_minhash import NUM_PERM, SEED, shingle_hashes, signatures
from pipeline.stages.dedup_text import normalise_for_matching
from pipeline.stages.routing import hot_brand_spread, routing_key

START = datetime(2026, 11, 1, tzinfo=UTC)
BATCH = 500
PARTITIONS = 8
FILLER_WORDS = ("really", "muy", "très", "sehr", "molto", "mesmo", "totally", "hoy", "today")


def _words_edit(text: str, edits: int, pick: random.Random) -> str:
    words = text.split()
    for position in pick.sample(range(len(words)), min(edits, len(words))):
        words[position] = pick.choice(FILLER_WORDS)
    return " ".join(words)


def _reorder(text: str, pick: random.Random) -> str:
    for mark in (". ", ", ", "! ", "? "):
        if mark in text:
            head, tail = text.split(mark, 1)
            return f"{tail.rstrip('.!?')}{mark}{head}"
    words = text.split()
    middle = len(words) // 2
    return " ".join(words[middle:] + words[:middle])


def _url_change(text: str, pick: random.Random) -> str:
    tracker = f"utm_source=s{pick.randint(1, 9999)}&fbclid={pick.randint(1, 10**9):x}"
    return f"{text} https://lnk.example/a?{tracker}"


PERTURBATIONS: dict[str, Callable[[str, random.Random], str]] = {
    "exact": lambda text, pick: text,
    "retweet": lambda text, pick: f"RT @user{pick.randint(1, 999)}: {text}",
    "url_change": _url_change,
    "casing": lambda text, pick: text.upper() if pick.random() < 0.5 else text.lower(),
    "emoji": lambda text, pick: f"{text} {pick.choice(['😂😂', '🔥', '👀👀👀', '🙏'])}",
    "appended_hashtags": lambda text, pick: f"{text} #breaking #news",
    "one_word_edit": lambda text, pick: _words_edit(text, 1, pick),
    "two_word_edit": lambda text, pick: _words_edit(text, 2, pick),
    "reordered_clauses": _reorder,
}
NEAR_KINDS = ("appended_hashtags", "one_word_edit", "two_word_edit", "reordered_clauses")

HASHTAG_BLOCK = "#giveaway #win #follow #contest #rt #free #prize"
TEMPLATES = (
    "I just voted for {x} in the awards! Vote here https://vote.example/{n} #awards2026",
    "New post on my blog: {x} — read it at https://blog.example/{n}",
)


def build_corpus(seed: int) -> list[str]:
    """Real tweets whose matching texts are distinct and at least 30 characters, shuffled."""
    texts: list[str] = []
    seen: set[str] = set()
    for language in XLMT_LANGUAGES:
        for split in ("train", "val"):
            for text in load_xlmt(language, split)[0]:
                key = normalise_for_matching(text)
                # originals must differ, or a copy has two right answers
                if len(key) >= 30 and key not in seen:
                    seen.add(key)
                    texts.append(text)
    random.Random(seed).shuffle(texts)
    return texts


class Mention:
    """One benchmark mention: its input, the original it copies, its kind, its brands."""

    __slots__ = ("brands", "item", "kind", "truth")

    def __init__(self, item: DedupInput, truth: str | None, kind: str,
                 brands: tuple[str, ...]) -> None:
        self.item, self.truth, self.kind, self.brands = item, truth, kind, brands


def _draw_brand(pick: random.Random) -> tuple[str, ...]:
    # one hot brand is half the traffic, 40% spread Zipf-like over 49 more, 10% no brand
    roll = pick.random()
    if roll < 0.5:
        return ("acme",)
    if roll < 0.9:
        rank = min(49, int(pick.paretovariate(1.0)))
        return (f"brand{rank:02d}",)
    return ()


def build_stream(base: Sequence[str], spare: Sequence[str], seed: int) -> list[Mention]:
    """Originals, then one copy per perturbation kind of each, then hard-negative pairs."""
    pick = random.Random(seed)
    clock = (START.timestamp() + second for second in range(10**7))
    brands = [_draw_brand(pick) for _ in base]
    stream = [
        Mention(DedupInput(f"o{index}", text, next(clock)), None, "original", brands[index])
        for index, text in enumerate(base)
    ]
    for kind, perturb in PERTURBATIONS.items():
        for index, text in enumerate(base):
            stream.append(Mention(DedupInput(f"{kind}{index}", perturb(text, pick), next(clock)),
                                  f"o{index}", kind, brands[index]))
    # every spare tweet is used once: the pairs share boilerplate and nothing else
    for index in range(0, len(spare) - 5, 6):
        a, b, c, d, e, f = spare[index:index + 6]
        for variant, (left, right) in enumerate((
            (f"{a} {HASHTAG_BLOCK}", f"{b} {HASHTAG_BLOCK}"),
            (TEMPLATES[0].format(x=c, n=index), TEMPLATES[0].format(x=d, n=index + 1)),
            (TEMPLATES[1].format(x=e, n=index), TEMPLATES[1].format(x=f, n=index + 1)),
        )):
            brand = _draw_brand(pick)
            stream.append(Mention(DedupInput(f"hn{variant}a{index}", left, next(clock)), None,
                                  "hard_negative_first", brand))
            stream.append(Mention(DedupInput(f"hn{variant}b{index}", right, next(clock)), None,
                                  "hard_negative", brand))
    return stream


def run_stream(dedup: Deduplicator, items: Sequence[DedupInput]) -> tuple[list[Any], float]:
    """Verdicts for the stream in micro-batches, and the seconds spent in ``check``."""
    verdicts: list[Any] = []
    elapsed = 0.0
    for start in range(0, len(items), BATCH):
        batch = items[start:start + BATCH]
        started = time.perf_counter()
        verdicts.extend(dedup.check(batch))
        elapsed += time.perf_counter() - started
    return verdicts, elapsed


def score(stream: Sequence[Mention], verdicts: Sequence[Any]) -> dict[str, Any]:
    """Recall per kind, precision, false positives by kind, and a few flagged originals."""
    by_id = {mention.item.mention_id: verdict for mention, verdict in zip(stream, verdicts,
                                                                           strict=True)}
    text_of = {mention.item.mention_id: mention.item.text for mention in stream}
    hits: Counter[str] = Counter()
    totals: Counter[str] = Counter()
    wrong: Counter[str] = Counter()
    flagged = correct = 0
    flagged_originals: list[dict[str, Any]] = []
    for mention, verdict in zip(stream, verdicts, strict=True):
        totals[mention.kind] += 1
        if verdict.duplicate_of is None:
            continue
        flagged += 1
        if mention.truth is not None:
            root = by_id[mention.truth].duplicate_of or mention.truth
            if verdict.duplicate_of == root:
                correct += 1
                hits[mention.kind] += 1
                continue
        wrong[mention.kind] += 1
        if mention.kind == "original" and len(flagged_originals) < 5:
            flagged_originals.append({
                "text": mention.item.text, "matched": text_of[verdict.duplicate_of],
                "similarity": verdict.similarity,
            })
    return {
        "recall": {kind: hits[kind] / totals[kind] for kind in PERTURBATIONS},
        "precision": correct / flagged if flagged else 1.0,
        "flagged": flagged,
        "false_positives_by_kind": dict(wrong),
        "hard_negative_false_positive_rate": (
            (wrong["hard_negative"] + wrong["hard_negative_first"])
            / max(1, totals["hard_negative"] + totals["hard_negative_first"])
        ),
        "originals_flagged": wrong["original"],
        "flagged_original_examples": flagged_originals,
    }


# ---- candidate signatures ------------------------------------------------------------------

_AFFINE = np.random.default_rng(SEED).integers(1, 2**63, size=(2, NUM_PERM), dtype=np.uint64)


def numpy_minhash(texts: Sequence[str]) -> npt.NDArray[np.uint64]:
    """MinHash with 64 affine permutations of the 4-gram hashes, in NumPy (no empty texts)."""
    hashes, offsets = shingle_hashes([normalise_for_matching(text) for text in texts])
    permuted = (hashes[:, None] * (_AFFINE[0] | np.uint64(1)) + _AFFINE[1]) >> np.uint64(32)
    return np.minimum.reduceat(permuted, offsets[:-1].astype(np.intp), axis=0)


def numpy_simhash(texts: Sequence[str]) -> npt.NDArray[np.uint64]:
    """64-bit SimHash of the 4-gram hashes, in NumPy (no empty texts)."""
    hashes, offsets = shingle_hashes([normalise_for_matching(text) for text in texts])
    bits = ((hashes[:, None] >> np.arange(64, dtype=np.uint64)) & np.uint64(1)).astype(np.int32)
    ones = np.add.reduceat(bits, offsets[:-1].astype(np.intp), axis=0)
    sizes = np.diff(offsets).astype(np.int32)[:, None]
    majority = (2 * ones > sizes).astype(np.uint64)
    return (majority << np.arange(64, dtype=np.uint64)).sum(axis=1, dtype=np.uint64)


def rensa_shipped(texts: Sequence[str]) -> npt.NDArray[np.uint32]:
    """The shipped signatures: NumPy-hashed 4-grams into rensa as one flat buffer."""
    return signatures([normalise_for_matching(text) for text in texts])


def _python_grams(matching: str) -> list[str]:
    if len(matching) <= 4:
        return [matching]
    return [matching[i:i + 4] for i in range(len(matching) - 3)]


def rensa_token_sets(texts: Sequence[str]) -> npt.NDArray[np.uint32]:
    """The rensa MinHash fed Python lists of 4-gram strings (the first version of the core)."""
    grams = [_python_grams(normalise_for_matching(text)) for text in texts]
    return np.array(RMinHash.digests_from_token_sets(grams, num_perm=NUM_PERM, seed=SEED),
                    dtype=np.uint32)


def datasketch_minhash(texts: Sequence[str]) -> npt.NDArray[np.uint64]:
    """The datasketch MinHash, one object per text (the slow baseline)."""
    # datasketch ships no type information; it is only the benchmark's slow baseline
    from datasketch import MinHash

    rows = []
    for text in texts:
        minhash = MinHash(num_perm=NUM_PERM, seed=SEED)
        minhash.update_batch([gram.encode() for gram in _python_grams(
            normalise_for_matching(text))])
        rows.append(minhash.hashvalues)
    return np.array(rows, dtype=np.uint64)


def _minhash_similarity(left: npt.NDArray[Any], right: npt.NDArray[Any]) -> npt.NDArray[Any]:
    return np.asarray((left == right).mean(axis=1), dtype=np.float64)


def _simhash_similarity(left: npt.NDArray[Any], right: npt.NDArray[Any]) -> npt.NDArray[Any]:
    return np.asarray(1.0 - np.bitwise_count(left ^ right) / 64.0, dtype=np.float64)


def compare_candidates(base: Sequence[str], spare: Sequence[str], seed: int,
                       threshold: float) -> list[dict[str, Any]]:
    """Signing speed and pairwise quality (copy vs original, hard pairs) of each candidate."""
    pick = random.Random(seed)
    pairs: dict[str, tuple[list[str], list[str]]] = {}
    for kind, perturb in PERTURBATIONS.items():
        pairs[kind] = (list(base), [perturb(text, pick) for text in base])
    hard_left, hard_right = [], []
    for index in range(0, len(spare) - 5, 6):
        a, b, c, d, e, f = spare[index:index + 6]
        hard_left += [f"{a} {HASHTAG_BLOCK}", TEMPLATES[0].format(x=c, n=index),
                      TEMPLATES[1].format(x=e, n=index)]
        hard_right += [f"{b} {HASHTAG_BLOCK}", TEMPLATES[0].format(x=d, n=index + 1),
                       TEMPLATES[1].format(x=f, n=index + 1)]
    pairs["hard_negative"] = (hard_left, hard_right)

    candidates: list[tuple[str, Callable[[Sequence[str]], Any], Callable[..., Any], int]] = [
        ("rensa_flat_numpy_grams (shipped)", rensa_shipped, _minhash_similarity, len(base)),
        ("rensa_python_gram_lists", rensa_token_sets, _minhash_similarity, len(base)),
        ("numpy_minhash", numpy_minhash, _minhash_similarity, len(base)),
        ("numpy_simhash", numpy_simhash, _simhash_similarity, len(base)),
        ("datasketch_minhash", datasketch_minhash, _minhash_similarity, 400),
    ]
    rows: list[dict[str, Any]] = []
    for name, sign, similar, limit in candidates:
        try:
            sign(base[:2])
        except ImportError as error:
            rows.append({"candidate": name, "skipped": str(error)})
            continue
        sample = list(base[:limit])
        started = time.perf_counter()
        for start in range(0, len(sample), BATCH):
            sign(sample[start:start + BATCH])
        per_s = len(sample) / (time.perf_counter() - started)
        quality: dict[str, float] = {}
        for kind, (left, right) in pairs.items():
            scores = similar(sign(left[:limit]), sign(right[:limit]))
            quality[kind] = float(np.mean(scores >= threshold))
        # SimHash bits agree more often than MinHash values: report its own operating point
        rows.append({"candidate": name, "signatures_per_s": per_s, "texts_signed": len(sample),
                     "share_at_or_above_threshold": quality, "threshold": threshold})
        if similar is _simhash_similarity:
            for bits_threshold in (0.85, 0.9):
                rows[-1][f"share_at_{bits_threshold}"] = {
                    kind: float(np.mean(similar(sign(left), sign(right)) >= bits_threshold))
                    for kind, (left, right) in pairs.items()
                }
    return rows


# ---- routing ---------------------------------------------------------------------------------

def _partition(key: bytes) -> int:
    return zlib.crc32(key) % PARTITIONS


def compare_routing(stream: Sequence[Mention]) -> list[dict[str, Any]]:
    """Recall, precision and load of each keying scheme, one Deduplicator per partition."""
    shares = Counter(mention.brands[0] for mention in stream if mention.brands)
    spread = hot_brand_spread({b: n / len(stream) for b, n in shares.items()}, PARTITIONS)
    schemes: dict[str, Callable[[Mention], bytes]] = {
        "content_only": lambda m: routing_key(m.item.text),
        "brand_only": lambda m: routing_key(m.item.text, m.brands),
        "brand_with_hot_spread": lambda m: routing_key(m.item.text, m.brands, hot_brands=spread),
    }
    rows = []
    for name, key_of in schemes.items():
        parts: dict[int, list[int]] = {}
        for index, mention in enumerate(stream):
            parts.setdefault(_partition(key_of(mention)), []).append(index)
        verdicts: list[Any] = [None] * len(stream)
        for members in parts.values():
            found, _elapsed = run_stream(Deduplicator(), [stream[i].item for i in members])
            for index, verdict in zip(members, found, strict=True):
                verdicts[index] = verdict
        quality = score(stream, verdicts)
        load = max(len(members) for members in parts.values()) / (len(stream) / PARTITIONS)
        rows.append({"scheme": name, "recall": quality["recall"],
                     "precision": quality["precision"],
                     "busiest_partition_load_vs_fair": load,
                     "partitions_used": len(parts)})
    rows.append({"hot_brand_spread": spread, "brand_shares_top3": dict(shares.most_common(3))})
    return rows


def evaluate(base: Sequence[str], spare: Sequence[str], seed: int,
             **options: Any) -> dict[str, Any]:
    """Quality and throughput of one Deduplicator configuration over the quality stream."""
    stream = build_stream(base, spare, seed)
    verdicts, elapsed = run_stream(Deduplicator(**options), [m.item for m in stream])
    result = score(stream, verdicts)
    result.update({
        "options": {key: str(value) for key, value in options.items()},
        "mentions": len(stream),
        "mentions_per_s_one_core": len(stream) / elapsed,
    })
    return result


def distinct_throughput(texts: Sequence[str]) -> float:
    """Mentions/s when every mention starts a new conversation (index writes every time)."""
    items = [DedupInput(f"d{i}", text, START.timestamp() + i)
             for i, text in enumerate(texts)]
    _verdicts, elapsed = run_stream(Deduplicator(), items)
    return len(items) / elapsed


def state_size(texts: Sequence[str]) -> dict[str, float]:
    """Bytes per conversation in memory (all state, band index alone) and in the changelog.

    Every mention of ``texts`` is a new conversation; changelog bytes are key + JSON value.
    """
    items = [DedupInput(f"d{i}", text, START.timestamp() + i)
             for i, text in enumerate(texts)]
    mentions: dict[str, Any] = {}
    exact: dict[str, Any] = {}
    clusters: dict[str, Any] = {}
    dedup = Deduplicator(mentions=mentions, exact=exact, clusters=clusters, bands={})
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    run_stream(dedup, items)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    total = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    # the band index alone: rebuild it into a fresh dict and measure that
    tracemalloc.start()
    index: dict[Any, Any] = {}
    Deduplicator(clusters=clusters, bands=index).rebuild_bands()
    index_only = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del index
    changelog = sum(len(key) + len(orjson.dumps(value))
                    for store in (mentions, exact, clusters) for key, value in store.items())
    conversations = len(clusters)
    return {
        "conversations": conversations,
        "python_bytes_per_conversation_all_state": total / conversations,
        "python_bytes_per_conversation_band_index": index_only / conversations,
        "changelog_json_bytes_per_conversation": changelog / conversations,
    }


def main() -> None:
    """Run every part, print tables, write benchmarks/results/dedup.json."""
    seed, originals = 7, 3000
    corpus = build_corpus(seed)
    base, spare = corpus[:originals], corpus[originals:originals + 1800]

    shipped = evaluate(base, spare, seed)
    print(f"quality stream: {shipped['mentions']} mentions, batches of {BATCH}")
    print(f"{'kind':<20} recall")
    for kind, value in shipped["recall"].items():
        print(f"{kind:<20} {value:6.3f}")
    print(f"precision {shipped['precision']:.4f}  hard-negative FP rate "
          f"{shipped['hard_negative_false_positive_rate']:.4f}  originals flagged "
          f"{shipped['originals_flagged']}  {shipped['mentions_per_s_one_core']:.0f} mentions/s")
    distinct = distinct_throughput(corpus)
    print(f"distinct-tweet stream: {len(corpus)} mentions, {distinct:.0f} mentions/s")

    memory = state_size(corpus)
    print(f"state per conversation: {memory['python_bytes_per_conversation_all_state']:.0f} B "
          f"in memory ({memory['python_bytes_per_conversation_band_index']:.0f} B band index), "
          f"{memory['changelog_json_bytes_per_conversation']:.0f} B of changelog JSON")

    sweep = []
    for threshold in (0.6, 0.65, 0.7, 0.75):
        row = evaluate(base, spare, seed, near_threshold=threshold)
        sweep.append({"near_threshold": threshold, "precision": row["precision"],
                      "recall": row["recall"],
                      "hard_negative_false_positive_rate": row["hard_negative_false_positive_rate"],
                      "originals_flagged": row["originals_flagged"]})
        print(f"threshold {threshold}: precision {row['precision']:.4f} "
              f"one-word {row['recall']['one_word_edit']:.3f} "
              f"two-word {row['recall']['two_word_edit']:.3f}")

    candidates = compare_candidates(base, spare, seed, threshold=NEAR_THRESHOLD)
    print(f"\n{'candidate':<34} {'sig/s':>9}  one-word  two-word  hard-neg")
    for row in candidates:
        if "skipped" in row:
            print(f"{row['candidate']:<34} skipped: {row['skipped']}")
            continue
        share = row["share_at_or_above_threshold"]
        print(f"{row['candidate']:<34} {row['signatures_per_s']:9.0f}  "
              f"{share['one_word_edit']:8.3f}  {share['two_word_edit']:8.3f}  "
              f"{share['hard_negative']:8.3f}")

    stream = build_stream(base, spare, seed)
    routing = compare_routing(stream)
    print(f"\nrouting over {PARTITIONS} partitions: {routing[-1]}")
    print(f"{'scheme':<24} one-word  appended  two-word  precision  busiest/fair")
    for row in routing[:-1]:
        print(f"{row['scheme']:<24} {row['recall']['one_word_edit']:8.3f}  "
              f"{row['recall']['appended_hashtags']:8.3f}  {row['recall']['two_word_edit']:8.3f}"
              f"  {row['precision']:9.4f}  {row['busiest_partition_load_vs_fair']:8.2f}")

    path = write_results("dedup", {
        "batch": BATCH,
        "shipped": shipped,
        "distinct_stream": {"mentions": len(corpus), "mentions_per_s_one_core": distinct},
        "state_size": memory,
        "threshold_sweep": sweep,
        "candidates": candidates,
        "routing": {"partitions": PARTITIONS, "schemes": routing},
        "note": "2-core machine shared with other engineers: throughput may be under contention",
    })
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
