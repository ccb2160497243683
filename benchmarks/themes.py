"""Themes: clustering quality on labelled tweets, against TF-IDF + k-means, and the job's cost.

``python -m benchmarks.themes`` (heavy: run it under ``flock /tmp/heavy.lock``).

Quality: ``benchmarks/data/themes/labelled.tsv`` (real XLM-T train/val tweets whose topic was
labelled by hand, see the README beside it) is split in two halves, stratified by language and
topic. The theme settings (how similar a group must be to become a theme, its least size,
whether embeddings are centred per language) are chosen on the tuning half; both halves are
reported. Every method clusters each language alone and then all languages together:

- ``themes``: the shipped path (:class:`~pipeline.stages.themes.book.ThemeBook`: spawn
  themes from the pool, then assign the rest to the nearest theme when similar enough;
  mentions left out count as clusters of one);
- ``encoder_kmeans``: the same embeddings with k-means told the true number of topics;
- ``tfidf_kmeans``: the baseline, TF-IDF (words and word pairs) with k-means told the true
  number of topics (it gets the answer's size for free; ours does not).

Cost: the encoder over ``--cost-texts`` train tweets, then assignment to 200 themes and one
spawn over a full pool, timed apart and scaled to 100k mentions; then one run of the real
job (:class:`~pipeline.themes_job.ThemesJob`) over the same tweets stored in an embedded store
(read, embed, assign, spawn, write), scaled the same way.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import itertools
import random
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import REPO_ROOT, XLMT_LANGUAGES, load_xlmt, write_results
from pipeline.stages.themes.book import (
    UNASSIGNED,
    ThemeBook,
    ThemeSettings,
    center_by_language,
    language_means,
)
from pipeline.stages.themes.labels import theme_labels

LABELLED = REPO_ROOT / "benchmarks" / "data" / "themes" / "labelled.tsv"
CACHE_DIR = REPO_ROOT / "benchmarks" / ".cache"
SPLIT_SEED = 13
SIMILARITIES = tuple(round(float(x), 3) for x in np.arange(0.05, 0.951, 0.025))
MIN_SIZES = (2, 3, 5)
METHODS = ("themes", "encoder_kmeans", "sentiment_encoder_kmeans", "tfidf_kmeans")


@dataclass(frozen=True, slots=True)
class Labelled:
    """A labelled tweet."""

    source: str
    lang: str
    topic: str
    text: str


@dataclass(frozen=True, slots=True)
class Config:
    """The settings of the shipped path that the tuning half chooses."""

    similarity: float
    min_size: int
    centred: bool

    def theme_settings(self) -> ThemeSettings:
        """The book's settings (assignment as strict as spawning)."""
        return ThemeSettings(self.similarity, self.similarity, self.min_size)


def load_labelled(path: Path = LABELLED) -> list[Labelled]:
    """The labelled tweets, in file order."""
    with path.open(encoding="utf-8", newline="") as handle:
        return [Labelled(row["source"], row["lang"], row["topic"], row["text"])
                for row in csv.DictReader(handle, delimiter="\t")]


def halves(rows: list[Labelled], seed: int = SPLIT_SEED) -> tuple[list[int], list[int]]:
    """Row indices of the tuning and the reported half, stratified by language and topic."""
    groups: dict[tuple[str, str], list[int]] = {}
    for index, row in enumerate(rows):
        groups.setdefault((row.lang, row.topic), []).append(index)
    rng = random.Random(seed)
    tune: list[int] = []
    report: list[int] = []
    for key in sorted(groups):
        members = groups[key]
        rng.shuffle(members)
        tune += members[0::2]
        report += members[1::2]
    return sorted(tune), sorted(report)


def cached_embeddings(texts: list[str], sentiment_encoder: bool = False) -> np.ndarray:
    """The encoder's embeddings of ``texts``, kept on disk by the texts' and weights' digest.

    ``sentiment_encoder``: the sentiment model's fine-tuned encoder instead of e5's own.
    """
    from pipeline.embeddings import DEFAULT_ENCODER_DIR, E5_PREFIX, mean_pooled_embeddings
    from pipeline.stages.sentiment.engine import DEFAULT_MODEL_DIR

    folder, prefix = ((DEFAULT_MODEL_DIR, "") if sentiment_encoder
                      else (DEFAULT_ENCODER_DIR, E5_PREFIX))
    weights = folder / "model.safetensors"
    digest = hashlib.sha256("\n".join(texts).encode())
    digest.update(f"{weights.resolve()}:{weights.stat().st_mtime_ns}".encode())
    path = CACHE_DIR / f"themes-{digest.hexdigest()[:16]}.npy"
    if path.exists():
        return np.load(path)
    vectors = mean_pooled_embeddings(texts, model_dir=folder, prefix=prefix)
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def themes_clusters(vectors: np.ndarray, langs: list[str], config: Config) -> np.ndarray:
    """The shipped path's clusters; mentions no theme takes are clusters of one."""
    if config.centred:
        vectors = center_by_language(vectors, langs, language_means(vectors, langs))
    book = ThemeBook(config.theme_settings())
    labels = book.spawn(vectors)
    rest = labels == UNASSIGNED
    labels[rest] = book.assign(vectors[rest])[0]
    alone = np.flatnonzero(labels == UNASSIGNED)
    labels[alone] = -1 - np.arange(len(alone))
    return labels


def kmeans(features: Any, clusters: int, seed: int = 0) -> np.ndarray:
    """k-means labels (10 starts)."""
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=clusters, n_init=10, random_state=seed).fit_predict(features)


def tfidf_kmeans(texts: list[str], clusters: int) -> np.ndarray:
    """The baseline: TF-IDF of words and word pairs, k-means with the true cluster count."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    features = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True,
                               strip_accents="unicode").fit_transform(texts)
    return kmeans(features, clusters)


def quality(truth: list[str], predicted: np.ndarray) -> dict[str, float]:
    """NMI, AMI, ARI and purity of a clustering against the true topics.

    NMI and purity reward many small clusters (every tweet alone scores purity 1 and a high
    NMI); AMI and ARI are corrected for chance, so tuning maximises AMI.
    """
    from sklearn.metrics import (
        adjusted_mutual_info_score,
        adjusted_rand_score,
        normalized_mutual_info_score,
    )

    by_cluster: dict[int, Counter[str]] = {}
    for topic, cluster in zip(truth, predicted.tolist(), strict=True):
        by_cluster.setdefault(cluster, Counter())[topic] += 1
    purity = sum(counts.most_common(1)[0][1] for counts in by_cluster.values()) / len(truth)
    return {"nmi": round(float(normalized_mutual_info_score(truth, predicted)), 4),
            "ami": round(float(adjusted_mutual_info_score(truth, predicted)), 4),
            "ari": round(float(adjusted_rand_score(truth, predicted)), 4),
            "purity": round(purity, 4), "clusters": len(by_cluster)}


def slices(rows: list[Labelled], indices: list[int]) -> dict[str, list[int]]:
    """Each language's rows, and ``all`` (every language together)."""
    found: dict[str, list[int]] = {"all": list(indices)}
    for index in indices:
        found.setdefault(rows[index].lang, []).append(index)
    return found


def evaluate(rows: list[Labelled], vectors: np.ndarray, indices: list[int],
             config: Config, sentiment_vectors: np.ndarray) -> dict[str, dict[str, Any]]:
    """Every method's quality on every slice of ``indices``."""
    table: dict[str, dict[str, Any]] = {}
    for name, members in sorted(slices(rows, indices).items()):
        truth = [rows[i].topic for i in members]
        langs = [rows[i].lang for i in members]
        topics = len(set(truth))
        ours = themes_clusters(vectors[members], langs, config)
        table[name] = {
            "tweets": len(members), "topics": topics,
            "themes": quality(truth, ours),
            "encoder_kmeans": quality(truth, kmeans(vectors[members], topics)),
            "sentiment_encoder_kmeans": quality(truth, kmeans(sentiment_vectors[members],
                                                              topics)),
            "tfidf_kmeans": quality(truth, tfidf_kmeans([rows[i].text for i in members],
                                                        topics)),
        }
        if name == "all":
            table[name]["themes"]["language_nmi"] = quality(langs, ours)["nmi"]
            table[name]["themes"]["mixed_language_themes"] = mixed_share(ours, langs)
    return table


def mixed_share(labels: np.ndarray, langs: list[str]) -> float:
    """The share of themes (3+ mentions) that hold more than one language."""
    members: dict[int, set[str]] = {}
    sizes = Counter(labels.tolist())
    for label, lang in zip(labels.tolist(), langs, strict=True):
        members.setdefault(label, set()).add(lang)
    big = [label for label, size in sizes.items() if size >= 3]
    return round(sum(len(members[label]) > 1 for label in big) / max(len(big), 1), 4)


def tune(rows: list[Labelled], vectors: np.ndarray, indices: list[int]) -> tuple[Config, float]:
    """The config with the best mean AMI over the slices of ``indices`` (the tuning half)."""
    parts = slices(rows, indices)
    best: tuple[float, Config] | None = None
    for similarity, min_size, centred in itertools.product(SIMILARITIES, MIN_SIZES,
                                                           (False, True)):
        config = Config(similarity, min_size, centred)
        scores = [quality([rows[i].topic for i in members],
                          themes_clusters(vectors[members], [rows[i].lang for i in members],
                                          config))["ami"] for members in parts.values()]
        mean = float(np.mean(scores))
        if best is None or mean > best[0]:
            best = (mean, config)
    assert best is not None
    return best[1], round(best[0], 4)


def example_labels(rows: list[Labelled], vectors: np.ndarray, config: Config) -> list[Any]:
    """The biggest themes over every tweet, with their c-TF-IDF labels and true topics."""
    from pipeline.stages.alerts.terms import mention_terms

    labels = themes_clusters(vectors, [row.lang for row in rows], config)
    terms: dict[int, Counter[str]] = {}
    topics: dict[int, Counter[str]] = {}
    for row, label in zip(rows, labels.tolist(), strict=True):
        words, hashtags = mention_terms(row.text)
        terms.setdefault(label, Counter()).update(words | hashtags)
        topics.setdefault(label, Counter())[row.topic] += 1
    named = theme_labels({label: dict(counts) for label, counts in terms.items()})
    biggest = sorted(topics, key=lambda label: -sum(topics[label].values()))[:12]
    return [{"label": named[label], "size": sum(topics[label].values()),
             "topics": dict(topics[label].most_common(3))} for label in biggest]


def cost(texts: int) -> dict[str, Any]:
    """Seconds to embed, assign and spawn, measured on ``texts`` train tweets, per 100k."""
    from pipeline.embeddings import mean_pooled_embeddings, shared_encoder

    sample: list[str] = []
    per_language = texts // len(XLMT_LANGUAGES) + 1
    for language in XLMT_LANGUAGES:
        sample += load_xlmt(language, "train")[0][:per_language]
    sample = sample[:texts]
    shared_encoder()
    started = time.perf_counter()
    vectors = mean_pooled_embeddings(sample)
    embed_s = time.perf_counter() - started
    book = ThemeBook(ThemeSettings())
    book.spawn(np.tile(vectors, (2, 1))[:200])
    rng = np.random.default_rng(0)
    for theme_id in range(1, 201):
        book.themes.setdefault(theme_id, replace(book.themes.get(1) or next(iter(
            book.themes.values())), theme_id=theme_id, centroid=vectors[rng.integers(
                len(vectors))]))
    started = time.perf_counter()
    book.assign(vectors)
    assign_s = time.perf_counter() - started
    pool = np.tile(vectors, (4000 // len(vectors) + 1, 1))[:4000]
    started = time.perf_counter()
    ThemeBook(ThemeSettings()).spawn(pool)
    spawn_s = time.perf_counter() - started
    scale = 100_000 / len(sample)
    return {"texts": len(sample), "embed_s": round(embed_s, 2),
            "embed_per_s": round(len(sample) / embed_s, 1), "assign_s": round(assign_s, 4),
            "spawn_pool_4000_s": round(spawn_s, 2),
            "per_100k_s": round((embed_s + assign_s) * scale + spawn_s, 1)}


def job_cost(texts: int, store_folder: Path) -> dict[str, Any]:
    """One run of the real themes job over ``texts`` stored train tweets (an embedded store)."""
    from datetime import UTC, datetime, timedelta

    from benchmarks.common import XLMT_ISO
    from pipeline.config import Settings
    from pipeline.store.client import ListeningStore
    from pipeline.store.rows import RowEncoder
    from pipeline.themes_job import ThemesJob

    now = datetime.now(UTC)
    per_language = texts // len(XLMT_LANGUAGES) + 1
    mentions: list[dict[str, Any]] = []
    for language in XLMT_LANGUAGES:
        for line, text in enumerate(load_xlmt(language, "train")[0][:per_language]):
            mentions.append({
                "id": f"{language}-{line}", "text": text, "source": "twitter",
                "created_at": (now - timedelta(seconds=len(mentions) + 1)).isoformat(),
                "author": {"id": "a", "handle": "a", "followers": 1},
                "lang": XLMT_ISO[language], "brands": ["telvia"], "duplicate_of": None,
                "duplicate_kind": "unique", "copy_count": 1,
                "sentiment": {"label": "neutral",
                              "scores": {"negative": 0.2, "neutral": 0.6, "positive": 0.2}}})
    mentions = mentions[:texts]
    store = ListeningStore.open(Settings(store_url=f"chdb://{store_folder}",
                                         store_retention_days=3650), database="bench_themes")
    store.insert(RowEncoder({"telvia": "brand"}).encode_dicts(mentions).payload)
    started = time.perf_counter()
    report = ThemesJob(store).run(now)
    seconds = time.perf_counter() - started
    store.close()
    return {"mentions": report.mentions, "themes": report.themes, "run_s": round(seconds, 2),
            "per_100k_s": round(seconds * 100_000 / max(report.mentions, 1), 1)}


def main() -> None:
    """Tune on one half, report both halves and the cost; write ``results/themes.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cost-texts", type=int, default=2000)
    args = parser.parse_args()
    rows = load_labelled()
    vectors = cached_embeddings([row.text for row in rows])
    sentiment_vectors = cached_embeddings([row.text for row in rows], sentiment_encoder=True)
    tune_half, report_half = halves(rows)
    config, tune_score = tune(rows, vectors, tune_half)
    print(f"chosen on the tuning half: {config} (mean AMI {tune_score})")
    results: dict[str, Any] = {
        "data": {"tweets": len(rows), "topics": sorted({row.topic for row in rows}),
                 "languages": dict(Counter(row.lang for row in rows))},
        "chosen": {"similarity": config.similarity, "min_size": config.min_size,
                   "centred": config.centred, "tuning_mean_ami": tune_score},
        "tuning_half": evaluate(rows, vectors, tune_half, config, sentiment_vectors),
        "reported_half": evaluate(rows, vectors, report_half, config, sentiment_vectors),
        "all_tweets_examples": example_labels(rows, vectors, config),
    }
    for half in ("tuning_half", "reported_half"):
        for name, row in results[half].items():
            print(f"{half:14} {name:4} n={row['tweets']:3} "
                  + " ".join(f"{method}={row[method]}" for method in METHODS))
    if args.cost_texts:
        results["cost_cpu"] = cost(args.cost_texts)
        print("cost:", results["cost_cpu"])
        with tempfile.TemporaryDirectory() as folder:
            results["job_cpu"] = job_cost(args.cost_texts, Path(folder))
        print("job:", results["job_cpu"])
    print("wrote", write_results("themes", results))


if __name__ == "__main__":
    main()
