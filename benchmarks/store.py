"""Listening-store benchmark: insert rate, disk per mention, query latency, memory, chDB facts.

Everything runs on the embedded engine (chDB, ``chdb:///folder``) through the shipped
:class:`~pipeline.store.client.ListeningStore`, :class:`~pipeline.store.rows.RowEncoder` and
the desk's query parsers (``pipeline.store.queries.PARSERS``), as the sink and the desk call
them. The table holds a row per mention and brand it names, keyed ``(brand, created_at,
id)``. chDB runs one engine folder per process at a time, and a process's peak RSS is for its
whole life, so every measurement that opens a store runs in a child process of its own
(``--child``); the parent only prepares the data, starts the children and writes the results.

The mentions:

- Seed: ``--seed-mentions`` synthetic firehose mentions (``FirehoseGenerator``) run through
  the offline cores (``pipeline.offline.process_file``: ingest, language, brands, dedup,
  sentiment), the mentions that matched a brand kept: truly scored mentions. Made once and
  cached in the work folder.
- Volume: ``--mentions`` mentions synthesised from the seed, cycling through it in order (one
  cycle is an *epoch*): each gets its own id (``<seed id>.<epoch>``, copies point at their
  original's id in the same epoch), an event time spread evenly over ``--days`` days ending
  when the run started (+-2 s of jitter, so inserts arrive roughly in event-time order as
  the sink's do), one of 40 author generations (``u17-3``: 200,000 authors, the seed's
  follower counts) and one of ``TENANTS`` copies of the listening queries
  (``acme-mobile``, ``acme-mobile-t1``...), chosen per conversation so that a copy keeps its
  original's brands. The generator names one brand per mention; firehose mentions also
  compare brands ("X vs Y"), so ``--second-brand-share`` of the conversations name a second
  brand of their tenant (two rows per mention). Text, language, sentiment, engagement and
  dedup verdicts are the seed's, so the text and term distribution is the firehose's.

Phases (``--phases``, all by default):

- ``insert``: for each ``--batch-sizes`` (the sink's default 20,000 first) a fresh folder,
  ``--sweep-mentions`` mentions encoded (``RowEncoder.encode``) and inserted
  (``store.insert``) batch after batch from one process; encode alone, insert alone and both,
  mentions/s and rows/s (synthesising the input is not timed). Then the parts as the inserts
  left them, ``OPTIMIZE TABLE ... FINAL``, ``system.parts`` bytes on disk per mention and per
  row, and the folder's size. The 20,000 run also encodes with the encoder's text cache off
  (every text new: the worst case for encode).
- ``load``: the query store, ``--mentions`` mentions in batches of 20,000 into one folder (the
  sustained rate per million mentions, peak RSS while inserting), then waits for the
  background merges to settle and reports the parts and bytes.
- ``query``: a fresh process reopens the loaded folder (reopen time), then runs ``--runs``
  queries per endpoint (mentions, volume, share of voice, top voices, terms, leaders), their
  parameters drawn at random (one brand for volume, top voices, terms and leaders; one brand
  for most
  explorer requests, none or several for the rest; 1h/24h/7d/30d periods ending now or
  earlier; search words from the seed's vocabulary, language/sentiment/source/copies
  filters, cursors deep in the result), interleaved; latency of the store method (SQL plus
  shaping the answer), p50/p95/p99 per endpoint, per period and per brand scope, peak RSS
  while querying. Baseline in the same process: ``sum(likes)`` of one brand over each
  period, with and without ``FINAL``.
- ``facts``: chDB behaviours the store's design rests on, each in child processes: a second
  process opening a held folder (read-write and read-only), a folder's mentions after the
  writer is SIGKILLed mid-stream (every acknowledged insert must be there), one process
  opening a second folder, reopening the loaded folder.

Run: ``.venv/bin/python -m benchmarks.store`` (about 25 minutes on 2 vCPU and up to ~5 GB
under ``--workdir``; writes benchmarks/results/store.json). ``--quick`` is a smoke run of
every phase at small sizes that writes nothing. ``--phases query --reuse`` reruns the
queries on the folder a previous run loaded (results merged into store.json).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import itertools
import os
import platform
import random
import resource
import signal
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from benchmarks.common import REPO_ROOT, RESULTS_DIR, write_results

SINK_BATCH = 20_000
TENANTS = 4
AUTHOR_GENERATIONS = 40
JITTER_S = 2.0
# chosen, not measured: the generator names one brand per mention, comparisons are a few
# per cent of a firehose's brand mentions
SECOND_BRAND_SHARE = 0.05
# the explorer's requests by brand scope: the console sends one brand; all brands, or a few
# compared, for the rest
EXPLORER_SCOPES = {"one_brand": 0.75, "no_brand": 0.15, "several_brands": 0.10}
PERIODS: dict[str, timedelta] = {
    "1h": timedelta(hours=1), "24h": timedelta(days=1),
    "7d": timedelta(days=7), "30d": timedelta(days=30),
}
ENDPOINTS = ("mentions", "volume", "share-of-voice", "top-voices", "terms", "leaders")
# the leaders' inside voices in every request: the example brands file's acme-mobile patterns
INSIDE_PATTERNS = (("acmemobile", "acmemobile_help"), ("ana_12*", "hugo_3?"))
TARGET_INSERT_MENTIONS_PER_S = 20_000
TARGET_P99_MS = 300.0
STORE_DISTS = ("chdb", "chdb-core", "clickhouse-connect", "orjson", "numpy")
DEFAULT_WORKDIR = Path(tempfile.gettempdir()) / "benchmarks-store"
ALL_PHASES = ("insert", "load", "query", "facts")


def log(text: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {text}", flush=True)


# --------------------------------------------------------------------------------------------
# Process facts
# --------------------------------------------------------------------------------------------


def peak_rss_mb() -> float:
    """The peak resident set of this process (``VmHWM``), in MB."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    # ru_maxrss is in kilobytes on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    """The resident set of this process now (``VmRSS``), in MB."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def folder_bytes(folder: Path) -> int:
    """Bytes the folder's files take on disk (allocated blocks, as ``du`` counts them)."""
    total = 0
    for path in folder.rglob("*"):
        with contextlib.suppress(OSError):
            if path.is_file() and not path.is_symlink():
                total += path.stat().st_blocks * 512
    return total


def store_versions() -> dict[str, str]:
    """Versions of what the store runs on (``common.environment`` lists the pipeline's)."""
    versions = {"python": platform.python_version()}
    for dist in STORE_DISTS:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[dist] = importlib.metadata.version(dist)
    return versions


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    """Runs, p50/p95/p99 (linear interpolation between ranks), mean and max, in ms."""
    if not seconds:
        return {"runs": 0}
    ms = np.asarray(seconds, dtype=float) * 1000
    return {
        "runs": len(ms),
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p95_ms": round(float(np.percentile(ms, 95)), 1),
        "p99_ms": round(float(np.percentile(ms, 99)), 1),
        "mean_ms": round(float(ms.mean()), 1),
        "max_ms": round(float(ms.max()), 1),
    }


# --------------------------------------------------------------------------------------------
# Mentions: scored seed, synthesised volume
# --------------------------------------------------------------------------------------------


def scored_seed(workdir: Path, count: int, seed: int) -> Path:
    """A file of firehose mentions scored by the offline cores (cached), brand matches only."""
    path = workdir / f"seed-{count}-{seed}.jsonl"
    if path.exists():
        return path
    from pipeline.config import Settings
    from pipeline.connectors.generator import FirehoseGenerator
    from pipeline.offline import process_file

    workdir.mkdir(parents=True, exist_ok=True)
    raw = workdir / f"raw-{count}-{seed}.jsonl"
    firehose = FirehoseGenerator(seed=seed, start=datetime(2026, 11, 1, tzinfo=UTC))
    with raw.open("wb") as output:
        for mention in firehose.mentions(count):
            output.write(orjson.dumps(mention) + b"\n")
    started = time.perf_counter()
    processed = workdir / f"processed-{count}-{seed}.jsonl"
    summary = process_file(Settings(), raw, processed, workdir / "seed.rejects.jsonl")
    log(f"seed: {summary.written} mentions scored by the offline cores in "
        f"{time.perf_counter() - started:.0f} s")
    kept = [line for line in processed.read_bytes().splitlines()
            if orjson.loads(line).get("brands")]
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(b"\n".join(kept) + b"\n")
    tmp.replace(path)
    raw.unlink()
    processed.unlink()
    return path


def load_seed(path: Path) -> list[dict[str, Any]]:
    """The scored seed mentions, in stream order."""
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line]


def tenant_brand(brand: str, tenant: int) -> str:
    """The id of one tenant's copy of a listening query (tenant 0 keeps the original id)."""
    return brand if tenant == 0 else f"{brand}-t{tenant}"


@dataclass(frozen=True, slots=True)
class Layout:
    """Where the synthesised mentions lie in event time, and how many there are."""

    mentions: int
    since: float  # Unix seconds of the first mention
    until: float  # Unix seconds just after the last one

    @property
    def step(self) -> float:
        """Seconds of event time between two consecutive mentions."""
        return (self.until - self.since) / self.mentions


class MentionSynth:
    """Scored mentions for the store, ``layout.mentions`` of them, made from the seed.

    >>> seed = [{"id": "s:1", "text": "hola", "brands": ["telvia"], "duplicate_of": None,
    ...          "author": {"id": "u1", "handle": "ana_1", "followers": 3}},
    ...         {"id": "s:2", "text": "hi", "brands": ["lumo-air"], "duplicate_of": None}]
    >>> synth = MentionSynth(seed, Layout(mentions=4, since=0.0, until=4.0), jitter_s=0,
    ...                      second_brand_share=1.0)
    >>> [(m["id"], m["brands"]) for m in synth.batch(0, 2)]
    [('s:1.0', ['telvia', 'lumo-air']), ('s:2.0', ['lumo-air-t1', 'telvia-t1'])]
    """

    def __init__(self, seed: Sequence[dict[str, Any]], layout: Layout, *,
                 jitter_s: float = JITTER_S, second_brand_share: float = SECOND_BRAND_SHARE,
                 random_seed: int = 0) -> None:
        self.seed = list(seed)
        self.layout = layout
        self.jitter_s = jitter_s
        self.second_brand_share = second_brand_share
        self.brand_ids = sorted({brand for mention in self.seed
                                 for brand in mention.get("brands") or ()})
        self.random = random.Random(random_seed)

    def batch(self, start: int, size: int) -> list[dict[str, Any]]:
        """Mentions ``start`` to ``start + size`` (fewer at the end)."""
        stop = min(start + size, self.layout.mentions)
        return [self.mention(index) for index in range(start, stop)]

    def brands(self, source: dict[str, Any], conversation: str) -> list[str]:
        """The seed mention's brands, and for some conversations a second one.

        Rolled per conversation: a copy and its original roll alike.
        """
        brands = list(source.get("brands") or ())
        roll = zlib.crc32(f"second-brand:{conversation}".encode())
        others = [brand for brand in self.brand_ids if brand not in brands]
        if brands and others and roll % 10_000 < self.second_brand_share * 10_000:
            brands.append(others[roll // 10_000 % len(others)])
        return brands

    def mention(self, index: int) -> dict[str, Any]:
        """The ``index``-th mention: a seed mention under a new id, time, author and tenant."""
        epoch, position = divmod(index, len(self.seed))
        source = self.seed[position]
        original = source.get("duplicate_of")
        conversation = f"{original or source['id']}.{epoch}"
        # the conversation picks the tenant, so a copy names its original's brands
        tenant = zlib.crc32(conversation.encode()) % TENANTS
        generation = epoch % AUTHOR_GENERATIONS
        author = source.get("author") or {}
        handle = f"{author.get('handle', 'anon')}_{generation}"
        moment = (self.layout.since + (index + 0.5) * self.layout.step
                  + self.random.uniform(-self.jitter_s, self.jitter_s))
        mention = dict(source)
        mention.update(
            id=f"{source['id']}.{epoch}",
            created_at=datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds"),
            author={**author, "id": f"{author.get('id', 'u')}-{generation}", "handle": handle},
            brands=[tenant_brand(brand, tenant)
                    for brand in self.brands(source, conversation)],
            duplicate_of=f"{original}.{epoch}" if original else None,
            url=f"https://social.example/{handle}/status/{index}",
        )
        return mention


def tenant_kinds(settings: Any) -> dict[str, str]:
    """Every tenant's listening-query ids and their kinds (brand, competitor, market)."""
    from pipeline.stages.brands import load_brand_rules
    from pipeline.store.rows import kinds_by_brand

    kinds = kinds_by_brand(load_brand_rules(settings.brands_file))
    return {tenant_brand(brand, tenant): kind
            for tenant in range(TENANTS) for brand, kind in kinds.items()}


# --------------------------------------------------------------------------------------------
# Children (each opens at most one store folder)
# --------------------------------------------------------------------------------------------


def open_store(folder: Path) -> Any:
    """The shipped store on an embedded folder, as ``PIPELINE_STORE_URL=chdb:///folder``."""
    from pipeline.config import Settings
    from pipeline.store.client import ListeningStore

    return ListeningStore.open(Settings(store_url=f"chdb://{folder}"))


def sql_rows(store: Any, sql: str, **parameters: Any) -> list[tuple[Any, ...]]:
    """Rows of a statement with bound ``{name:Type}`` parameters."""
    from pipeline.store.queries import BoundQuery

    return store.query(BoundQuery(sql, parameters))


def table_parts(store: Any, mentions: int | None = None, *,
                table_name: str | None = None) -> dict[str, Any]:
    """A table's active parts (the main one by default).

    How many, rows, bytes per row (and per mention, if given).
    """
    database, table = (table_name or store.table).split(".")
    ((parts, rows, on_disk, compressed, uncompressed, partitions),) = sql_rows(
        store,
        "SELECT count(), sum(rows), sum(bytes_on_disk), sum(data_compressed_bytes), "
        "sum(data_uncompressed_bytes), uniqExact(partition) FROM system.parts "
        "WHERE active AND database = {db:String} AND table = {t:String}",
        db=database, t=table,
    )
    ((outdated_parts, outdated_bytes),) = sql_rows(
        store,
        "SELECT count(), sum(bytes_on_disk) FROM system.parts "
        "WHERE NOT active AND database = {db:String} AND table = {t:String}",
        db=database, t=table,
    )
    columns = sql_rows(
        store,
        "SELECT name, data_compressed_bytes, data_uncompressed_bytes FROM system.columns "
        "WHERE database = {db:String} AND table = {t:String} "
        "ORDER BY data_compressed_bytes DESC LIMIT 8",
        db=database, t=table,
    )
    rows = int(rows or 0)
    return {
        "active_parts": int(parts), "partitions": int(partitions), "rows": rows,
        "bytes_on_disk": int(on_disk or 0),
        "bytes_on_disk_per_row": round(int(on_disk or 0) / rows, 1) if rows else None,
        "mentions": mentions,
        "bytes_on_disk_per_mention": (round(int(on_disk or 0) / mentions, 1) if mentions
                                      else None),
        "compressed_bytes": int(compressed or 0), "uncompressed_bytes": int(uncompressed or 0),
        # parts merged away stay on disk until old_parts_lifetime (8 minutes) has passed
        "outdated_parts": int(outdated_parts), "outdated_bytes": int(outdated_bytes or 0),
        "largest_columns_compressed_bytes_per_row": {
            name: round(int(packed) / rows, 1) for name, packed, _ in columns
        } if rows else {},
    }


def folder_footprint(folder: Path, parts: dict[str, Any]) -> dict[str, Any]:
    """The folder's size, and without the merged-away parts that wait to be deleted."""
    total = folder_bytes(folder)
    kept = total - parts["outdated_bytes"]
    return {"folder_bytes": total, "folder_bytes_without_outdated": kept,
            "folder_bytes_per_row": round(kept / parts["rows"], 1),
            "folder_bytes_per_mention": (round(kept / parts["mentions"], 1)
                                         if parts["mentions"] else None)}


def settle_merges(store: Any, limit_s: float) -> float:
    """Wait until no merge has run for two polls (at most ``limit_s``); seconds waited."""
    started = time.perf_counter()
    quiet = 0
    while quiet < 2 and time.perf_counter() - started < limit_s:
        ((running,),) = sql_rows(store, "SELECT count() FROM system.merges")
        quiet = quiet + 1 if int(running) == 0 else 0
        time.sleep(1.0)
    return round(time.perf_counter() - started, 1)


def insert_mentions(store: Any, synth: MentionSynth, kinds: dict[str, str], batch: int, *,
                    on_window: Callable[[int, float], None] | None = None,
                    window_mentions: int = 1_000_000) -> dict[str, Any]:
    """Encode and insert every mention of ``synth`` in batches; time encode and insert apart.

    Rates are per mention (what the sink receives) and per row (a mention per brand it names).
    """
    from pipeline.records import SCORED
    from pipeline.store.rows import RowEncoder

    # as the sink does: originals it has not seen are looked up in the store
    encoder = RowEncoder(kinds, find_originals=store.original_authors)
    encode_s = insert_s = 0.0
    mentions_in = rows = rejected = payload_bytes = 0
    window_s, window_done = 0.0, 0
    for start in range(0, synth.layout.mentions, batch):
        # the sink's records arrive decoded (decode_in): the decoding is not the encoder's
        mentions = [SCORED.from_dict(mention) for mention in synth.batch(start, batch)]
        began = time.perf_counter()
        encoded = encoder.encode(mentions)
        encoded_at = time.perf_counter()
        # as the sink does: the rows joined into one JSONEachRow body, one insert
        payload = encoded.payload
        store.insert(payload)
        inserted_at = time.perf_counter()
        encode_s += encoded_at - began
        insert_s += inserted_at - encoded_at
        mentions_in += len(mentions)
        rows += len(encoded.rows)
        rejected += len(encoded.rejects)
        payload_bytes += len(payload)
        window_done += len(mentions)
        window_s += inserted_at - began
        if on_window is not None and window_done >= window_mentions:
            on_window(start + len(mentions), window_done / window_s)
            window_s, window_done = 0.0, 0
    stored = mentions_in - rejected
    return {
        "mentions": stored, "rows": rows, "rows_per_mention": round(rows / max(stored, 1), 4),
        "rejected": rejected, "batch": batch,
        "payload_bytes_per_row": round(payload_bytes / max(rows, 1), 1),
        "encode_s": round(encode_s, 2), "insert_s": round(insert_s, 2),
        "encode_mentions_per_s": round(stored / encode_s),
        "insert_mentions_per_s": round(stored / insert_s),
        "encode_and_insert_mentions_per_s": round(stored / (encode_s + insert_s)),
        "encode_and_insert_rows_per_s": round(rows / (encode_s + insert_s)),
    }


def encode_without_cache(synth: MentionSynth, kinds: dict[str, str], mentions: int) -> float:
    """Encode rate (mentions/s) with the encoder's text cache off: every text new."""
    from pipeline.records import SCORED
    from pipeline.store.rows import RowEncoder

    encoder = RowEncoder(kinds, text_cache_size=0)
    spent = 0.0
    for start in range(0, mentions, SINK_BATCH):
        batch = [SCORED.from_dict(mention)
                 for mention in synth.batch(start, min(SINK_BATCH, mentions - start))]
        began = time.perf_counter()
        encoder.encode(batch)
        spent += time.perf_counter() - began
    return round(mentions / spent)


def child_insert(spec: dict[str, Any]) -> dict[str, Any]:
    """One batch size of the sweep, in a fresh folder."""
    from pipeline.config import Settings

    folder = Path(spec["folder"])
    synth = MentionSynth(load_seed(Path(spec["seed_file"])), Layout(**spec["layout"]),
                         second_brand_share=spec["second_brand_share"])
    kinds = tenant_kinds(Settings())
    store = open_store(folder)
    result = insert_mentions(store, synth, kinds, spec["batch"])
    result["peak_rss_mb_inserting"] = round(peak_rss_mb())
    result["parts_after_inserts"] = table_parts(store)
    result["merge_settle_s"] = settle_merges(store, 120)
    result["parts_settled"] = table_parts(store)
    began = time.perf_counter()
    store.command(f"OPTIMIZE TABLE {store.table} FINAL")
    result["optimize_final_s"] = round(time.perf_counter() - began, 1)
    result["distinct_mentions"] = store.count()
    result["parts_optimized"] = table_parts(store, result["distinct_mentions"])
    result.update(folder_footprint(folder, result["parts_optimized"]))
    if spec.get("encode_no_cache_mentions"):
        result["encode_mentions_per_s_text_cache_off"] = encode_without_cache(
            synth, kinds, spec["encode_no_cache_mentions"])
    result["peak_rss_mb"] = round(peak_rss_mb())
    return result


def child_load(spec: dict[str, Any]) -> dict[str, Any]:
    """The query store: every mention into one folder, the sink's batch size."""
    from pipeline.config import Settings

    folder = Path(spec["folder"])
    layout = Layout(**spec["layout"])
    synth = MentionSynth(load_seed(Path(spec["seed_file"])), layout,
                         second_brand_share=spec["second_brand_share"])
    store = open_store(folder)
    windows: list[dict[str, Any]] = []

    def window(done: int, rate: float) -> None:
        windows.append({"mentions": done, "mentions_per_s": round(rate),
                        "rss_mb": round(rss_mb())})
        log(f"load: {done:,} mentions, {rate:,.0f} mentions/s (encode + insert) in the last "
            f"window, RSS {rss_mb():,.0f} MB")

    result = insert_mentions(store, synth, tenant_kinds(Settings()), spec["batch"],
                             on_window=window, window_mentions=spec["window_mentions"])
    result["windows"] = windows
    result["peak_rss_mb_inserting"] = round(peak_rss_mb())
    result["parts_after_inserts"] = table_parts(store)
    result["merge_settle_s"] = settle_merges(store, 300)
    # the sink settles the leaders' echoes table every so often: a served store has it built
    began = time.perf_counter()
    result["echoes_settled_hours"] = store.settle_echoes().built_hours
    result["echoes_settle_s"] = round(time.perf_counter() - began, 2)
    result["distinct_mentions"] = store.count()
    result["mentions_naming_several_brands"] = int(sql_rows(
        store, f"SELECT uniqExact(id) FROM {store.table} WHERE length(brands) > 1")[0][0])
    result["parts_settled"] = table_parts(store, result["distinct_mentions"])
    result.update(folder_footprint(folder, result["parts_settled"]))
    result["layout"] = asdict(layout)
    return result


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """What realistic requests name: search words, phrases and filter values."""

    words: list[str]
    phrases: list[str]
    langs: list[str]
    sources: list[str]

    @classmethod
    def of(cls, seed: Sequence[dict[str, Any]]) -> Vocabulary:
        """Words in 0.05 %-20 % of the seed's texts (4+ letters), two-word phrases, values."""
        from pipeline.store.rows import search_tokens

        frequency: Counter[str] = Counter()
        pairs: Counter[str] = Counter()
        for mention in seed:
            tokens = search_tokens(str(mention.get("text", "")))
            frequency.update(set(tokens))
            pairs.update(f"{a} {b}" for a, b in itertools.pairwise(tokens)
                         if len(a) > 3 and len(b) > 3)
        low, high = 0.0005 * len(seed), 0.2 * len(seed)
        return cls(
            words=sorted(w for w, n in frequency.items() if len(w) >= 4 and low <= n <= high),
            phrases=[phrase for phrase, _ in pairs.most_common(200)],
            langs=[lang for lang, _ in Counter(m.get("lang") for m in seed).most_common(6)
                   if isinstance(lang, str)],
            sources=sorted({str(m.get("source")) for m in seed if m.get("source")}),
        )


class RequestMaker:
    """Random, realistic desk requests (as query-string dicts) over the loaded period."""

    def __init__(self, vocabulary: Vocabulary, brands: Sequence[str], end: datetime,
                 days: float, pick: random.Random) -> None:
        self.vocabulary = vocabulary
        self.brands = list(brands)
        self.end = end
        self.days = days
        self.pick = pick

    def period(self, params: dict[str, str], *, optional: bool = False) -> str:
        """Set ``since``/``until`` for a random period (or none, if ``optional``); its name."""
        names = [*PERIODS, *(["all"] if optional else [])]
        name = self.pick.choice(names)
        if name == "all":
            return name
        length = PERIODS[name]
        room = timedelta(days=self.days) - length
        # most requests look at the latest period; some at an earlier one
        back = (self.pick.uniform(0, room.total_seconds())
                if room.total_seconds() > 0 and self.pick.random() < 0.4 else 0.0)
        until = self.end - timedelta(seconds=back)
        params["since"] = (until - length).isoformat()
        params["until"] = until.isoformat()
        return name

    def family(self, tenant: int) -> list[str]:
        """One tenant's listening-query ids: what a desk user can compare."""
        return sorted(brand for brand in self.brands if tenant_of(brand) == tenant)

    def filters(self, params: dict[str, str], *, scope: str = "one_brand") -> None:
        """Add brands (``scope``), a search and filters, each as often as a desk user sets it."""
        pick = self.pick
        if scope == "one_brand":
            params["brand"] = pick.choice(self.brands)
        elif scope == "several_brands":
            family = self.family(pick.randrange(TENANTS))
            params["brand"] = ",".join(pick.sample(family, pick.randint(2, 3)))
        roll = pick.random()
        if roll < 0.25:
            params["q"] = pick.choice(self.vocabulary.words)
        elif roll < 0.35:
            params["q"] = " ".join(pick.sample(self.vocabulary.words, 2))
        elif roll < 0.4:
            params["q"] = f'"{pick.choice(self.vocabulary.phrases)}"'
        if pick.random() < 0.2:
            params["lang"] = pick.choice(self.vocabulary.langs)
        if pick.random() < 0.25:
            params["sentiment"] = pick.choice(("negative", "negative,neutral", "positive"))
        if pick.random() < 0.1:
            params["source"] = pick.choice(self.vocabulary.sources)
        if pick.random() < 0.1:
            params["copies"] = pick.choice(("original", "copies"))
        if pick.random() < 0.1:
            params["kind"] = pick.choice(("brand", "competitor"))

    def interval(self, period: str) -> str:
        """A bucket size a chart of that period would use."""
        return self.pick.choice({"1h": ("5m",), "24h": ("5m", "1h"), "7d": ("1h",),
                                 "30d": ("1h", "1d")}[period])

    def request(self, endpoint: str) -> tuple[str, dict[str, str]]:
        """A period label and the query-string parameters of one request to ``endpoint``."""
        from pipeline.store.queries import Cursor

        params: dict[str, str] = {}
        pick = self.pick
        if endpoint == "mentions":
            period = self.period(params, optional=True)
            scope = pick.choices(list(EXPLORER_SCOPES), list(EXPLORER_SCOPES.values()))[0]
            self.filters(params, scope=scope)
            params["limit"] = pick.choice(("50", "50", "100"))
            if pick.random() < 0.4:
                # a reader many pages into the result: a cursor at a random point of it
                since = (datetime.fromisoformat(params["since"]) if "since" in params
                         else self.end - timedelta(days=self.days))
                until = datetime.fromisoformat(params["until"]) if "until" in params else self.end
                at = since + (until - since) * pick.uniform(0.05, 0.95)
                params["cursor"] = Cursor(int(at.timestamp() * 1000), "syn:5").encode()
                period += "+cursor"
            return period, params
        if endpoint == "share-of-voice":
            period = self.period(params)
            family = self.family(pick.randrange(TENANTS))
            params["brands"] = ",".join(pick.sample(family, pick.randint(2, len(family))))
            if pick.random() < 0.6:
                params["interval"] = self.interval(period)
            return period, params
        # volume, top voices, terms and leaders answer for one brand
        period = self.period(params)
        self.filters(params)
        if endpoint == "volume":
            params["interval"] = self.interval(period)
            params["tz"] = pick.choice(("UTC", "Europe/Madrid", "America/Sao_Paulo"))
        else:
            params["limit"] = "20"
        return period, params


def tenant_of(brand: str) -> int:
    """The tenant a listening-query id belongs to (see :func:`tenant_brand`)."""
    head, _, tail = brand.rpartition("-t")
    return int(tail) if head and tail.isdigit() else 0


def brand_scope(params: dict[str, str]) -> str:
    """How many brands a request names: ``no_brand``, ``one_brand`` or ``several_brands``."""
    named = [b for b in (params.get("brand") or params.get("brands") or "").split(",") if b]
    return ("no_brand", "one_brand")[len(named)] if len(named) < 2 else "several_brands"


def call_endpoint(store: Any, endpoint: str, params: dict[str, str], now: datetime) -> Any:
    """Parse a request as the desk does and run its store method."""
    from pipeline.stages.leaders import InsideVoices
    from pipeline.store.leaders import parse_leaders_query
    from pipeline.store.queries import PARSERS

    if endpoint == "leaders":
        return store.leaders(parse_leaders_query(params, now), InsideVoices(*INSIDE_PATTERNS))
    query = PARSERS[endpoint](params, now)
    method = {"mentions": store.mentions, "volume": store.volume,
              "share-of-voice": store.share_of_voice, "top-voices": store.top_voices,
              "terms": store.terms}[endpoint]
    return method(query)


def period_baseline(store: Any, brand: str, end: datetime, runs: int) -> dict[str, Any]:
    """``sum(likes)`` of one brand over each period, with and without ``FINAL``.

    The floor of a per-brand query (a bare ``count()`` is answered from the parts' metadata
    without reading a row).
    """
    from pipeline.store.sql import clickhouse_time

    baseline: dict[str, Any] = {"brand": brand}
    for name, length in PERIODS.items():
        for final in ("", " FINAL"):
            spent = []
            for _ in range(runs):
                began = time.perf_counter()
                sql_rows(store, f"SELECT sum(likes) FROM {store.table}{final} "
                         "WHERE brand = {b:String} AND created_at >= {s:DateTime64(3, 'UTC')} "
                         "AND created_at < {u:DateTime64(3, 'UTC')}",
                         b=brand, s=clickhouse_time(end - length), u=clickhouse_time(end))
                spent.append(time.perf_counter() - began)
            baseline[f"sum_likes_{name}{final.strip().lower() and '_final'}"] = latency_summary(
                spent)
    return baseline


Sample = tuple[str, float, dict[str, str]]  # period label, seconds, request parameters


def request_plan(spec: dict[str, Any], end: datetime) -> list[tuple[str, str, dict[str, str]]]:
    """``spec["runs"]`` random requests per endpoint, interleaved: (endpoint, period, params)."""
    seed = load_seed(Path(spec["seed_file"]))
    brands = sorted({tenant_brand(brand, tenant) for mention in seed
                     for brand in mention.get("brands") or () for tenant in range(TENANTS)})
    maker = RequestMaker(Vocabulary.of(seed), brands, end, spec["days"],
                         random.Random(spec["random_seed"]))
    # one warm-up request per endpoint first: it pays for loading marks and caches
    warm_up = [(endpoint, *maker.request(endpoint)) for endpoint in ENDPOINTS]
    plan = [(endpoint, *maker.request(endpoint)) for endpoint in ENDPOINTS
            for _ in range(spec["runs"])]
    maker.pick.shuffle(plan)
    return warm_up + plan


def endpoint_summary(samples: list[Sample]) -> dict[str, Any]:
    """Latency of one endpoint's requests: overall, per period and brand scope, the slowest."""
    by_period: dict[str, list[float]] = {}
    by_scope: dict[str, list[float]] = {}
    for period, seconds, params in samples:
        by_period.setdefault(period, []).append(seconds)
        by_scope.setdefault(brand_scope(params), []).append(seconds)
    overall = latency_summary([seconds for _, seconds, _ in samples])
    return {
        **overall,
        "by_period": {period: latency_summary(spent) for period, spent in sorted(
            by_period.items())},
        "by_scope": {scope: latency_summary(spent) for scope, spent in sorted(by_scope.items())},
        "slowest": [{"ms": round(seconds * 1000, 1), "params": params}
                    for _, seconds, params in sorted(samples, key=lambda run: -run[1])[:3]],
        "meets_target": overall["p99_ms"] < TARGET_P99_MS,
    }


def timed_call(store: Any, endpoint: str, params: dict[str, str], end: datetime) -> float:
    """Seconds one request takes through the store method."""
    began = time.perf_counter()
    call_endpoint(store, endpoint, params, end)
    return time.perf_counter() - began


def opened_and_counted(folder: Path) -> tuple[Any, int, float, float]:
    """Open a folder and count its mentions: the store, the count, and both times (s)."""
    began = time.perf_counter()
    store = open_store(folder)
    open_s = time.perf_counter() - began
    began = time.perf_counter()
    mentions = store.count()
    return store, mentions, open_s, time.perf_counter() - began


def child_query(spec: dict[str, Any]) -> dict[str, Any]:
    """Reopen the loaded folder and time the endpoints' store methods."""
    store, mentions, reopen_s, first_count_s = opened_and_counted(Path(spec["folder"]))
    end = datetime.fromtimestamp(Layout(**spec["layout"]).until, UTC)
    plan = request_plan(spec, end)
    load_before = os.getloadavg()[0]
    first = {endpoint: round(timed_call(store, endpoint, params, end) * 1000, 1)
             for endpoint, _, params in plan[:len(ENDPOINTS)]}
    samples: dict[str, list[Sample]] = {endpoint: [] for endpoint in ENDPOINTS}
    for endpoint, period, params in plan[len(ENDPOINTS):]:
        samples[endpoint].append((period, timed_call(store, endpoint, params, end), params))
    endpoints = {endpoint: endpoint_summary(runs) for endpoint, runs in samples.items()}
    for endpoint, summary in endpoints.items():
        log(f"{endpoint}: p50 {summary['p50_ms']} ms, p95 {summary['p95_ms']} ms, "
            f"p99 {summary['p99_ms']} ms; p99 by scope " + ", ".join(
                f"{scope} {scoped.get('p99_ms')} ms ({scoped['runs']})"
                for scope, scoped in summary["by_scope"].items()))
    # the floor: the brand the seed names most, its first tenant's copy
    loudest = Counter(brand for mention in load_seed(Path(spec["seed_file"]))
                      for brand in mention.get("brands") or ()).most_common(1)[0][0]
    return {
        "mentions": mentions, "reopen_s": round(reopen_s, 3),
        "first_count_s": round(first_count_s, 3),
        "first_call_ms": first, "endpoints": endpoints,
        "baseline": period_baseline(store, loudest, end, spec["baseline_runs"]),
        "parts": table_parts(store, mentions),
        "by_time_parts": table_parts(store, mentions, table_name=store.by_time),
        "engine_version": sql_rows(store, "SELECT version()")[0][0],
        "peak_rss_mb_querying": round(peak_rss_mb()),
        "load_average_1m": {"before": load_before, "after": os.getloadavg()[0]},
    }


# -- facts --------------------------------------------------------------------------------


def child_hold(spec: dict[str, Any]) -> dict[str, Any]:
    """Open a folder, say so, and hold it until stdin closes."""
    store = open_store(Path(spec["folder"]))
    print("ready", flush=True)
    sys.stdin.read()
    # the engine lives as long as a client does: a dropped store object releases the folder
    store.close()
    return {}


def child_open(spec: dict[str, Any]) -> dict[str, Any]:
    """Try to open a folder (read-write, or read-only as chDB's ``?mode=ro``) and count."""
    import clickhouse_connect

    from pipeline.store.tables import TABLE

    options = {"mode": "ro"} if spec["mode"] == "ro" else None
    try:
        client = clickhouse_connect.get_client(dsn=f"chdb://{spec['folder']}",
                                               chdb_options=options)
        rows = client.query(f"SELECT count() FROM mentions.{TABLE}").result_rows[0][0]
    except Exception as error:  # the failure is the measurement
        return {"opened": False, "error": f"{type(error).__name__}: {error}"[:400]}
    return {"opened": True, "rows": int(rows)}


def child_writer(spec: dict[str, Any]) -> dict[str, Any]:
    """Insert batches forever, printing the mentions acknowledged after each insert."""
    from pipeline.config import Settings
    from pipeline.store.rows import RowEncoder

    store = open_store(Path(spec["folder"]))
    seed = load_seed(Path(spec["seed_file"]))
    synth = MentionSynth(seed, Layout(mentions=10**9, since=time.time() - 86400,
                                      until=time.time()))
    encoder = RowEncoder(tenant_kinds(Settings()))
    acknowledged = 0
    for start in range(0, synth.layout.mentions, spec["batch"]):
        payload = encoder.encode_dicts(synth.batch(start, spec["batch"])).payload
        print("inserting", flush=True)
        store.insert(payload)
        acknowledged += spec["batch"]
        print(f"acked {acknowledged}", flush=True)
    return {}


def child_count(spec: dict[str, Any]) -> dict[str, Any]:
    """Open a folder (timed) and count its mentions (``store.count()``, timed) and rows."""
    store, mentions, open_s, count_s = opened_and_counted(Path(spec["folder"]))
    ((rows,),) = sql_rows(store, f"SELECT count() FROM {store.table}")
    return {"mentions": mentions, "rows": int(rows), "open_s": round(open_s, 3),
            "first_count_s": round(count_s, 3)}


def child_two_folders(spec: dict[str, Any]) -> dict[str, Any]:
    """Open one folder, then another in the same process: the first held, or closed first."""
    first = open_store(Path(spec["folders"][0]))
    if spec["close_first"]:
        first.close()
    try:
        second = open_store(Path(spec["folders"][1]))
        second.count()
    except Exception as error:  # the failure is the measurement
        return {"second_opened": False, "error": f"{type(error).__name__}: {error}"[:400]}
    finally:
        first.close()
    return {"second_opened": True}


CHILDREN: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "insert": child_insert, "load": child_load, "query": child_query,
    "hold": child_hold,
    "open": child_open, "writer": child_writer, "count": child_count,
    "two-folders": child_two_folders,
}


def run_child(role: str, spec: dict[str, Any], workdir: Path,
              timeout_s: float = 3600) -> dict[str, Any]:
    """Run one child to completion and return what it wrote (its engine's stderr too)."""
    out = workdir / f"child-{role}-{os.getpid()}-{time.monotonic_ns()}.json"
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.store", "--child", role,
         "--spec", orjson.dumps({**spec, "out": str(out)}).decode()],
        cwd=REPO_ROOT, stderr=subprocess.PIPE, text=True, timeout=timeout_s, check=False,
    )
    if done.returncode != 0 or not out.exists():
        raise RuntimeError(f"child {role} failed ({done.returncode}): {done.stderr[-3000:]}")
    result: dict[str, Any] = orjson.loads(out.read_bytes())
    out.unlink()
    result["engine_messages"] = engine_messages(done.stderr)
    result["process_s"] = round(time.perf_counter() - began, 1)
    return result


def engine_messages(stderr: str) -> list[str]:
    """The ClickHouse exception lines an engine printed (chDB prints them to stderr)."""
    return sorted({line.strip()[:300] for line in stderr.splitlines() if "DB::Exception" in line})


def facts_lock(workdir: Path) -> dict[str, Any]:
    """A second process on a folder the first holds: read-write, then read-only."""
    folder = workdir / "facts-lock"
    subprocess.run(["rm", "-rf", str(folder)], check=True)
    holder = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.store", "--child", "hold", "--spec",
         orjson.dumps({"folder": str(folder), "out": str(workdir / "hold.json")}).decode()],
        cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None
        if holder.stdout.readline().strip() != "ready":
            raise RuntimeError("the holding process did not open its folder")
        facts = {f"second_process_{mode}_while_held": run_child(
            "open", {"folder": str(folder), "mode": mode}, workdir) for mode in ("rw", "ro")}
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=60)
    facts["second_process_ro_after_release"] = run_child(
        "open", {"folder": str(folder), "mode": "ro"}, workdir)
    return facts


def facts_kill(workdir: Path, seed_file: Path, trials: int, batch: int,
               pick: random.Random) -> dict[str, Any]:
    """SIGKILL a writer mid-stream; every acknowledged mention must be in the reopened folder."""
    outcomes = []
    for trial in range(trials):
        folder = workdir / f"facts-kill-{trial}"
        subprocess.run(["rm", "-rf", str(folder)], check=True)
        writer = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.store", "--child", "writer", "--spec",
             orjson.dumps({"folder": str(folder), "seed_file": str(seed_file), "batch": batch,
                           "out": str(workdir / "writer.json")}).decode()],
            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        assert writer.stdout is not None
        kill_after = 3 + 2 * trial
        acknowledged = inserts = 0
        while inserts <= kill_after:
            line = writer.stdout.readline()
            if line.startswith("acked "):
                acknowledged = int(line.split()[1])
            elif line.startswith("inserting"):
                inserts += 1
            else:
                raise RuntimeError(f"writer said {line!r}")
        # the writer is inside an insert (one of 20,000 mentions takes ~0.3 s): kill it there
        time.sleep(pick.uniform(0.0, 0.3))
        writer.send_signal(signal.SIGKILL)
        late = writer.stdout.read()  # acks printed between the last read and the kill
        late_acks = [int(line.split()[1]) for line in late.splitlines()
                     if line.startswith("acked ")]
        acknowledged = max([acknowledged, *late_acks])
        writer.wait(timeout=30)
        found = run_child("count", {"folder": str(folder)}, workdir)
        outcomes.append({
            "acknowledged_mentions": acknowledged, "mentions_found": found["mentions"],
            "rows_found": found["rows"], "killed_before_insert_returned": not late_acks,
            "killed_by": -writer.returncode,
            "all_acknowledged_present": found["mentions"] >= acknowledged,
            "whole_batches_only": found["mentions"] % batch == 0,
        })
        log(f"kill trial {trial}: {outcomes[-1]}")
    return {"batch": batch, "trials": outcomes,
            "every_acknowledged_mention_survived": all(o["all_acknowledged_present"]
                                                       for o in outcomes)}


# --------------------------------------------------------------------------------------------
# Parent
# --------------------------------------------------------------------------------------------


def phase_insert(args: argparse.Namespace, workdir: Path, seed_file: Path,
                 layout: Layout) -> list[dict[str, Any]]:
    sweep = []
    sizes = [int(size) for size in args.batch_sizes.split(",")]
    for batch in sorted(sizes, key=lambda size: size != SINK_BATCH):
        folder = workdir / f"insert-{batch}"
        subprocess.run(["rm", "-rf", str(folder)], check=True)
        row = run_child("insert", {
            "folder": str(folder), "seed_file": str(seed_file), "batch": batch,
            "layout": asdict(Layout(args.sweep_mentions, layout.since, layout.until)),
            "second_brand_share": args.second_brand_share,
            "encode_no_cache_mentions": (min(args.sweep_mentions, 200_000)
                                         if batch == SINK_BATCH else 0),
        }, workdir)
        sweep.append(row)
        optimized = row["parts_optimized"]
        log(f"insert batch {batch}: mentions/s encode {row['encode_mentions_per_s']:,}, insert "
            f"{row['insert_mentions_per_s']:,}, both {row['encode_and_insert_mentions_per_s']:,}"
            f" ({row['encode_and_insert_rows_per_s']:,} rows/s); optimized on disk "
            f"{optimized['bytes_on_disk_per_mention']} B/mention, "
            f"{optimized['bytes_on_disk_per_row']} B/row; peak RSS {row['peak_rss_mb']} MB")
        if not args.keep:
            subprocess.run(["rm", "-rf", str(folder)], check=True)
    return sweep


def phase_load(args: argparse.Namespace, workdir: Path, seed_file: Path,
               layout: Layout) -> dict[str, Any]:
    folder = workdir / "query-store"
    subprocess.run(["rm", "-rf", str(folder)], check=True)
    load = run_child("load", {
        "folder": str(folder), "seed_file": str(seed_file), "batch": SINK_BATCH,
        "layout": asdict(layout), "second_brand_share": args.second_brand_share,
        "window_mentions": max(args.mentions // 10, SINK_BATCH),
    }, workdir, timeout_s=4 * 3600)
    log(f"load: {load['mentions']:,} mentions in {load['rows']:,} rows, "
        f"{load['encode_and_insert_mentions_per_s']:,} mentions/s (encode "
        f"{load['encode_mentions_per_s']:,}/s, insert {load['insert_mentions_per_s']:,}/s), "
        f"peak RSS {load['peak_rss_mb_inserting']} MB, "
        f"{load['parts_settled']['active_parts']} parts")
    return load


def phase_query(args: argparse.Namespace, workdir: Path, seed_file: Path,
                layout: Layout) -> dict[str, Any]:
    return run_child("query", {
        "folder": str(workdir / "query-store"), "seed_file": str(seed_file),
        "layout": asdict(layout), "days": args.days, "runs": args.runs,
        "baseline_runs": 5, "random_seed": args.seed,
    }, workdir)


def phase_facts(args: argparse.Namespace, workdir: Path, seed_file: Path,
                reopen_folder: Path | None) -> dict[str, Any]:
    facts: dict[str, Any] = {"lock": facts_lock(workdir)}
    log(f"lock: {facts['lock']}")
    facts["sigkill"] = facts_kill(workdir, seed_file, args.kill_trials, SINK_BATCH,
                                  random.Random(args.seed))
    for close_first in (False, True):
        for name in ("a", "b"):
            subprocess.run(["rm", "-rf", str(workdir / f"facts-two-{name}")], check=True)
        label = "closed" if close_first else "held"
        facts[f"second_folder_same_process_first_{label}"] = run_child("two-folders", {
            "folders": [str(workdir / "facts-two-a"), str(workdir / "facts-two-b")],
            "close_first": close_first}, workdir)
        log(f"second folder in one process, the first {label}: "
            f"{facts[f'second_folder_same_process_first_{label}']}")
    if reopen_folder is not None and reopen_folder.exists():
        reopen = [run_child("count", {"folder": str(reopen_folder)}, workdir)
                  for _ in range(3)]
        facts["reopen_loaded_folder"] = {
            "mentions": reopen[0]["mentions"], "rows": reopen[0]["rows"],
            "open_s": [row["open_s"] for row in reopen],
            "first_count_s": [row["first_count_s"] for row in reopen],
            "process_s": [row["process_s"] for row in reopen],
        }
        log(f"reopen: {facts['reopen_loaded_folder']}")
    return facts


def read_layout(workdir: Path) -> Layout | None:
    path = workdir / "query-store.layout.json"
    return Layout(**orjson.loads(path.read_bytes())) if path.exists() else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mentions", type=int, default=10_000_000,
                        help="mentions in the query store")
    parser.add_argument("--sweep-mentions", type=int, default=1_000_000,
                        help="mentions inserted per batch size of the insert sweep")
    parser.add_argument("--batch-sizes", default="2000,5000,20000,50000")
    parser.add_argument("--second-brand-share", type=float, default=SECOND_BRAND_SHARE,
                        help="conversations that name a second brand (default: %(default)s)")
    parser.add_argument("--days", type=float, default=30.0,
                        help="days of event time the mentions spread over, ending now")
    parser.add_argument("--runs", type=int, default=100, help="queries per endpoint")
    parser.add_argument("--seed-mentions", type=int, default=40_000,
                        help="firehose mentions scored by the offline cores")
    parser.add_argument("--kill-trials", type=int, default=5)
    parser.add_argument("--phases", default=",".join(ALL_PHASES))
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR,
                        help="stores and the cached seed (default: %(default)s)")
    parser.add_argument("--reuse", action="store_true",
                        help="with --phases query: the folder a previous load left")
    parser.add_argument("--keep", action="store_true", help="keep the sweep's folders")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--quick", action="store_true",
                        help="every phase at small sizes, nothing written")
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        spec = orjson.loads(args.spec)
        result = CHILDREN[args.child](spec)
        Path(spec["out"]).write_bytes(orjson.dumps(result))
        return
    if args.quick:
        args.mentions, args.sweep_mentions, args.runs = 300_000, 100_000, 20
        args.batch_sizes, args.seed_mentions, args.kill_trials = "2000,20000", 5_000, 2
        args.workdir = args.workdir.with_name(args.workdir.name + "-quick")
    phases = {phase.strip() for phase in args.phases.split(",") if phase.strip()}
    workdir: Path = args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    seed_file = scored_seed(workdir, args.seed_mentions, args.seed)
    seed = load_seed(seed_file)
    seed_several = sum(len(mention.get("brands") or ()) > 1 for mention in seed)
    log(f"seed: {len(seed):,} scored mentions with brands in {seed_file}, {seed_several:,} "
        "of them name several")
    now = time.time()
    layout = Layout(args.mentions, now - args.days * 86400, now)
    results: dict[str, Any] = {
        "store_versions": store_versions(), "seed_mentions": len(seed),
        "seed_mentions_naming_several_brands": seed_several,
        "second_brand_share": args.second_brand_share, "explorer_scopes": EXPLORER_SCOPES,
        "tenants": TENANTS, "days": args.days, "workdir": str(workdir),
        "targets": {"insert_mentions_per_s": TARGET_INSERT_MENTIONS_PER_S,
                    "p99_ms": TARGET_P99_MS},
    }
    finished: dict[str, str] = {}

    def done(phase: str) -> None:
        finished[phase] = datetime.now(UTC).isoformat(timespec="seconds")

    if "insert" in phases:
        results["insert_sweep"] = phase_insert(args, workdir, seed_file, layout)
        done("insert")
    if "load" in phases:
        results["load"] = phase_load(args, workdir, seed_file, layout)
        (workdir / "query-store.layout.json").write_bytes(orjson.dumps(asdict(layout)))
        done("load")
    elif "query" in phases:
        loaded = read_layout(workdir)
        if not args.reuse or loaded is None:
            raise SystemExit("without the load phase, --reuse the folder a previous run loaded")
        layout = loaded
    if "query" in phases:
        results["query"] = phase_query(args, workdir, seed_file, layout)
        done("query")
    if "facts" in phases:
        results["facts"] = phase_facts(args, workdir, seed_file, workdir / "query-store")
        done("facts")
    results["measured_at"] = finished
    if args.quick:
        print(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())
        log(f"quick run, results not written (workdir {workdir})")
        return
    previous = RESULTS_DIR / "store.json"
    if phases != set(ALL_PHASES) and previous.exists():
        # a partial rerun keeps the other phases' figures (each has its measured_at)
        kept = orjson.loads(previous.read_bytes())
        kept.pop("benchmark", None)
        kept.pop("environment", None)
        results = {**kept, **results,
                   "measured_at": {**kept.get("measured_at", {}), **results["measured_at"]}}
    results["environment_store"] = {"load_average": os.getloadavg()}
    log(f"wrote {write_results('store', results)}")


if __name__ == "__main__":
    main()
