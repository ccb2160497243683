"""Opinion leaders benchmark: does the ranking find who drives each brand's conversation.

Per seed, the synthetic firehose with planted leaders (``LeadersPlan``: per brand, ten
influencers of modest audience whose posts others copy often; twenty bots with 300k-3M
followers that post often about every brand and that nobody copies) runs through the shipped
ingest and dedup stages (``offline_pipeline`` without the sentiment model: the generator's own
labels stand in, since the ranking is measured here, not the model), is encoded
(``RowEncoder``) and inserted into an embedded store (chDB), and each brand's leaders are asked
for as the desk asks (``parse_leaders_query`` + ``ListeningStore.leaders``) over the whole
span. Per brand: precision@10 of the outside top 10 against that brand's planted influencers,
and how many bots reach the top 10 (target: none). Baselines on the same store in the same
run: the desk's top voices (reach: followers, the copies' followers and engagement) and
followers alone.

Seeds ``--dev-seeds`` are the ones looked at while the weights were chosen; ``--seeds`` are
held out (run once the weights were fixed). Two scenarios: ``plain`` (the plan's defaults) and
``faint`` (influencers write half as much and are copied half as often: a harder case).

Run: ``.venv/bin/python -m benchmarks.leaders`` (a few minutes on 2 vCPU; writes
benchmarks/results/leaders.json); ``--quick``: one seed, fewer mentions, nothing written.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.common import write_results

START = datetime(2026, 11, 2, tzinfo=UTC)
SCENARIOS: dict[str, dict[str, float]] = {
    "plain": {}, "faint": {"influencer_share": 0.03, "influencer_echo": 0.25}}
TOP = 10


def log(text: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {text}", flush=True)


def generated(seed: int, mentions: int, plan: Any) -> tuple[list[dict[str, Any]], Any]:
    """The firehose's mentions (with the sentiment they were written with) and generator."""
    from pipeline.connectors.generator import FirehoseGenerator

    firehose = FirehoseGenerator(seed=seed, start=START, rate_per_s=0.4, leaders=plan)
    records = []
    for record, label in firehose.labelled_mentions(mentions):
        records.append({**record, "_label": label})
    return records, firehose


def processed(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The mentions through the ingest and dedup cores, labelled with the generator's sentiment."""
    import orjson

    from pipeline.config import Settings
    from pipeline.offline import offline_pipeline
    from pipeline.records import wire_dict

    pipeline = offline_pipeline(Settings(stages=("ingest", "dedup")))
    labels = {record["id"]: record.pop("_label") for record in records}
    out: list[dict[str, Any]] = []
    for start in range(0, len(records), 500):
        raws = [orjson.dumps(record) for record in records[start:start + 500]]
        out.extend(wire_dict(mention) for mention in
                   pipeline.sentiment(pipeline.dedup(pipeline.ingest(raws))).get(0, []))
        if pipeline.dead_letters:
            raise ValueError(f"the generator wrote mentions ingest refuses: "
                             f"{pipeline.dead_letters[:3]}")
    for mention in out:
        label = labels[mention["id"]]
        mention["sentiment"] = {"label": label, "scores": {label: 1.0}}
    return [mention for mention in out if mention.get("brands")]


def rankings(store: Any, brand: str, period: dict[str, str], now: datetime,
             candidates: int) -> dict[str, list[dict[str, Any]]]:
    """The brand's top list by the leaders' score, by reach (top voices), by followers."""
    from pipeline.stages.leaders import InsideVoices
    from pipeline.store import leaders
    from pipeline.store.queries import parse_top_voices_query

    params = {"brand": brand, **period}
    query = leaders.parse_leaders_query({**params, "limit": str(TOP), "recent": "0"}, now)
    started = time.perf_counter()
    answer = store.leaders(query, InsideVoices())
    spent = time.perf_counter() - started
    # the same answer with every echo read from the mentions, as before the echoes table
    from_mentions = leaders.leaders_answer(store.query, store.table, query, InsideVoices())
    voices = store.top_voices(parse_top_voices_query({**params, "limit": str(TOP)}, now))
    current, _ = leaders.activities(store.query(
        leaders.leaders_sql(store.table, query, InsideVoices(), candidates)))
    by_followers = sorted(current, key=lambda activity: (-activity.followers,
                                                         activity.author_id))[:TOP]
    return {"leaders": answer["outside"], "top_voices": voices["voices"],
            "followers": [{"author_id": activity.author_id} for activity in by_followers],
            "ms": [round(spent * 1000, 1)],
            "same_as_from_mentions": [_ranked(answer) == _ranked(from_mentions)]}


def _ranked(answer: dict[str, Any]) -> list[tuple[str, str, float]]:
    """An answer's leaders as (group, author, score), in rank order."""
    return [(group, leader["author_id"], leader["score"])
            for group in ("outside", "inside") for leader in answer[group]]


def judged(ranked: Sequence[dict[str, Any]], planted: set[str], bots: set[str]) -> dict[str, Any]:
    """Precision@10 against the planted influencers, and the bots in the top 10."""
    top = [entry["author_id"] for entry in ranked[:TOP]]
    return {"precision_at_10": sum(author in planted for author in top) / TOP,
            "bots_in_top_10": sum(author in bots for author in top)}


def run_seed(store: Any, seed: int, mentions: int, plan: Any,
             database: str) -> dict[str, Any]:
    """One seed: generate, process, store, rank every brand; the figures per brand."""
    from pipeline.store.rows import RowEncoder

    started = time.perf_counter()
    records, firehose = generated(seed, mentions, plan)
    scored = processed(records)
    store.command(f"CREATE DATABASE IF NOT EXISTS {database}")
    seeded = replace_database(store, database)
    encoder = RowEncoder(dict.fromkeys(firehose.planted_leaders(), "brand"))
    for start in range(0, len(scored), 20_000):
        seeded.insert(encoder.encode_dicts(scored[start:start + 20_000]).payload)
    until = datetime.fromisoformat(records[-1]["created_at"]) + timedelta(seconds=1)
    # as the sink settles every minute: the closed hours' echoes from the echoes table
    settled = seeded.settle_echoes(until)
    period = {"since": START.isoformat(), "until": until.isoformat()}
    bots = set(firehose.bot_ids())
    brands: dict[str, Any] = {}
    for brand, planted in firehose.planted_leaders().items():
        ranked = rankings(seeded, brand, period, until, candidates=2000)
        brands[brand] = {method: judged(ranked[method], set(planted), bots)
                         for method in ("leaders", "top_voices", "followers")}
        brands[brand]["leaders_ms"] = ranked["ms"][0]
        brands[brand]["same_as_from_mentions"] = ranked["same_as_from_mentions"][0]
    log(f"seed {seed}: {len(scored):,} brand mentions over "
        f"{(until - START).total_seconds() / 3600:.1f} h, "
        f"{time.perf_counter() - started:.0f} s; leaders p@10 " + ", ".join(
            f"{brand} {figures['leaders']['precision_at_10']:.1f}"
            for brand, figures in brands.items()))
    return {"brand_mentions": len(scored), "echo_hours_settled": settled.built_hours,
            "hours": round((until - START).total_seconds() / 3600,
                                                          1), "brands": brands}


def replace_database(store: Any, database: str) -> Any:
    """The same engine's store in another database (one chDB folder per process)."""
    from pipeline.store.client import ListeningStore, StoreLocation

    location = StoreLocation(store.location.url, database, store.location.embedded_path)
    seeded = ListeningStore(store.client, location, retention_days=store.retention_days)
    seeded.ensure_schema()
    return seeded


def summary(seeds: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per method: mean precision@10 over every seed and brand, its range, and bot counts."""
    result: dict[str, Any] = {}
    for method in ("leaders", "top_voices", "followers"):
        precisions = [brand[method]["precision_at_10"] for seed in seeds.values()
                      for brand in seed["brands"].values()]
        bots = [brand[method]["bots_in_top_10"] for seed in seeds.values()
                for brand in seed["brands"].values()]
        result[method] = {"precision_at_10_mean": round(statistics.mean(precisions), 3),
                          "precision_at_10_min": min(precisions),
                          "bots_in_top_10_total": sum(bots),
                          "bots_in_top_10_max": max(bots), "rankings": len(precisions)}
    result["leaders"]["differ_from_mentions_only"] = sum(
        not brand["same_as_from_mentions"] for seed in seeds.values()
        for brand in seed["brands"].values())
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mentions", type=int, default=30_000, help="firehose mentions per seed")
    parser.add_argument("--dev-seeds", default="1,2")
    parser.add_argument("--seeds", default="21,22,23,24,25", help="held-out seeds")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        # a smoke run on the development seed only: the held-out ones stay unseen
        args.mentions, args.dev_seeds, args.seeds = 8000, "1", "1"
    from pipeline.config import Settings
    from pipeline.connectors.generator import LeadersPlan
    from pipeline.store.client import ListeningStore

    folder = Path(tempfile.mkdtemp(prefix="benchmarks-leaders-"))
    store = ListeningStore.open(Settings(store_url=f"chdb://{folder}",
                                         store_retention_days=3650))
    results: dict[str, Any] = {"mentions_per_seed": args.mentions, "top": TOP,
                               "scenarios": {}}
    for scenario, changes in SCENARIOS.items():
        plan = LeadersPlan(**{**asdict(LeadersPlan()), **changes})
        figures: dict[str, Any] = {"plan": plan.__repr__()}
        for split, seeds in (("dev", args.dev_seeds), ("held_out", args.seeds)):
            per_seed = {seed: run_seed(store, int(seed), args.mentions, plan,
                                            f"leaders_{scenario}_{seed}")
                        for seed in seeds.split(",")}
            figures[split] = {"summary": summary(per_seed), "seeds": per_seed}
            log(f"{scenario} {split}: " + "; ".join(
                f"{method} p@10 {found['precision_at_10_mean']:.3f} "
                f"(min {found['precision_at_10_min']:.1f}), bots in top 10 "
                f"{found['bots_in_top_10_total']}"
                for method, found in figures[split]["summary"].items()) + "; leaders answers "
                f"differing from the mentions-only query: "
                f"{figures[split]['summary']['leaders']['differ_from_mentions_only']}")
        results["scenarios"][scenario] = figures
    store.close()
    if args.quick:
        log("quick run, results not written")
        return
    log(f"wrote {write_results('leaders', results)}")


if __name__ == "__main__":
    main()
