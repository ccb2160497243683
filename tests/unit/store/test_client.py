"""Every store query run on the embedded engine (chDB), against counts made in Python."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from pipeline.config import Settings
from pipeline.offline import load_into_store
from pipeline.store import queries, sql
from pipeline.store.client import (
    ListeningStore,
    StoreLocation,
    StoreUnavailable,
    connect,
    held_elsewhere,
)
from pipeline.store.queries import BoundQuery
from pipeline.store.rows import RowEncoder, search_tokens

START = datetime(2026, 11, 30, 22, 0, tzinfo=UTC)
NOW = START + timedelta(days=2)
KINDS = {"acme-mobile": "brand", "telvia": "competitor"}


def store_settings(store_url: str) -> Settings:
    """The store at ``store_url``; the tests' dates are fixed, so it keeps ten years."""
    return Settings(store_url=store_url, store_retention_days=3650)


TEXTS = (
    "¿Dónde está la cobertura de Acme Móvil? #SinSeñal",
    "Me pasé de Telvia a Acme Móvil y por fin cobertura",
    "Telvia me cobra de más, qué vergüenza 😡",
    "Acme mobile support was great today",
)


def scored(index: int) -> dict[str, Any]:
    text = TEXTS[index % len(TEXTS)]
    brands = [brand for brand, word in (("acme-mobile", "acme"), ("telvia", "telvia"))
              if word in text.lower()]
    copy = index % 5 == 4
    return {
        "id": f"m{index:04d}", "text": ("RT @leader: " + TEXTS[0]) if copy else text,
        # one mention every 7 minutes over two days
        "created_at": (START + timedelta(minutes=7 * index)).isoformat(),
        "source": ("twitter", "mastodon")[index % 2],
        "author": {"id": f"a{index % 13}", "handle": f"user{index % 13}",
                   "followers": 100 * (index % 13)},
        "engagement": {"likes": index % 3},
        "lang": "en" if "support" in text else "es",
        "brands": ["acme-mobile"] if copy else brands,
        "duplicate_of": "m0000" if copy else None,
        "duplicate_kind": "exact" if copy else "unique",
        "copy_count": 2 if copy else 1,
        "sentiment": {"label": ("negative", "neutral", "positive")[index % 3],
                      "scores": {"negative": 0.3, "neutral": 0.3, "positive": 0.4}},
    }


MENTIONS = [scored(index) for index in range(400)]


@pytest.fixture(scope="module")
def store(chdb_store_url: str) -> Iterator[ListeningStore]:
    store = ListeningStore.open(store_settings(chdb_store_url), database="unit_client")
    store.command(f"TRUNCATE TABLE {store.table}")
    encoder = RowEncoder(KINDS)
    store.insert(encoder.encode_dicts(MENTIONS).payload)
    # a redelivery: the same mentions again, and half of them once more
    store.insert(encoder.encode_dicts(MENTIONS).payload)
    store.insert(encoder.encode_dicts(MENTIONS[::2]).payload)
    yield store


def page_through(store: ListeningStore, params: dict[str, str]) -> list[list[str]]:
    pages, cursor = [], None
    while True:
        query = queries.parse_mentions_query({**params, **({"cursor": cursor} if cursor else {})},
                                             NOW)
        page = store.mentions(query)
        pages.append([mention["id"] for mention in page["mentions"]])
        cursor = page["next"]
        if cursor is None:
            return pages


def test_a_mention_inserted_three_times_is_counted_once(store: ListeningStore) -> None:
    assert store.count() == len(MENTIONS)


def test_pages_hold_every_mention_once_newest_first(store: ListeningStore) -> None:
    pages = page_through(store, {"limit": "37"})
    assert [len(page) for page in pages] == [37] * 10 + [30]
    ids = [mention_id for page in pages for mention_id in page]
    assert ids == [mention["id"] for mention in reversed(MENTIONS)]


def test_a_page_holds_the_mention_as_the_pipeline_emitted_it(store: ListeningStore) -> None:
    page = store.mentions(queries.parse_mentions_query({"limit": "1"}, NOW))
    assert page["mentions"] == [MENTIONS[-1]]


@pytest.mark.parametrize(("params", "expected"), [
    ({"brand": "telvia"}, lambda m: "telvia" in m["brands"]),
    # a mention naming both is a row for each: it shows once
    ({"brand": "telvia,acme-mobile"}, lambda m: bool(m["brands"])),
    ({"brand": "telvia,nobody"}, lambda m: "telvia" in m["brands"]),
    ({"kind": "competitor"}, lambda m: "telvia" in m["brands"]),
    ({"lang": "en"}, lambda m: m["lang"] == "en"),
    ({"sentiment": "negative,positive"}, lambda m: m["sentiment"]["label"] != "neutral"),
    ({"source": "mastodon"}, lambda m: m["source"] == "mastodon"),
    ({"copies": "original"}, lambda m: m["duplicate_of"] is None),
    ({"copies": "copies"}, lambda m: m["duplicate_of"] is not None),
    # accents and case folded, "¿" and emoji are not part of a word
    ({"q": "DONDE cobertura"}, lambda m: "Dónde" in m["text"]),
    ({"q": "verguenza"}, lambda m: "vergüenza" in m["text"]),
    ({"q": "#sinseñal"}, lambda m: "#SinSeñal" in m["text"]),
    ({"q": '"por fin cobertura"'}, lambda m: "por fin cobertura" in m["text"]),
    ({"q": '"fin por"'}, lambda m: False),
    ({"q": "cobertur"}, lambda m: False),  # whole words, not prefixes
    ({"since": "2026-12-01T00:00:00+00:00", "until": "2026-12-01T06:00:00+00:00"},
     lambda m: "2026-12-01T00:00" <= m["created_at"] < "2026-12-01T06:00"),
])
def test_filters_select_exactly_the_matching_mentions(
    store: ListeningStore, params: dict[str, str], expected: Any,
) -> None:
    found = [i for page in page_through(store, {**params, "limit": "97"}) for i in page]
    assert sorted(found) == sorted(m["id"] for m in MENTIONS if expected(m))


def test_volume_counts_every_mention_in_its_zones_bucket(store: ListeningStore) -> None:
    params = {"brand": "acme-mobile", "since": "2026-12-01", "until": "2026-12-02",
              "tz": "Asia/Kolkata", "interval": "1h"}
    answer = store.volume(queries.parse_volume_query(params, NOW))
    query = queries.parse_volume_query(params, NOW)
    expected: Counter[tuple[str, str]] = Counter()
    for mention in MENTIONS:
        created = datetime.fromisoformat(mention["created_at"])
        if query.period.since <= created < query.period.until and \
                "acme-mobile" in mention["brands"]:
            local = created.astimezone(query.tz).replace(minute=0, second=0, microsecond=0)
            expected[(local.isoformat(), mention["sentiment"]["label"])] += 1
    assert len(answer["buckets"]) == 24
    assert answer["buckets"][0]["start"] == "2026-12-01T00:00:00+05:30"
    for bucket in answer["buckets"]:
        for label in ("negative", "neutral", "positive"):
            assert bucket[label] == expected[(bucket["start"], label)]
        assert bucket["unscored"] == 0
    assert sum(bucket["total"] for bucket in answer["buckets"]) == sum(expected.values())


def test_share_of_voice_counts_a_mention_for_each_brand_it_names(store: ListeningStore) -> None:
    answer = store.share_of_voice(queries.parse_share_of_voice_query(
        {"brands": "acme-mobile,telvia", "since": "2026-11-30", "until": "2026-12-03",
         "interval": "1d"}, NOW))
    counts = Counter(brand for m in MENTIONS for brand in m["brands"])
    negative = Counter(brand for m in MENTIONS for brand in m["brands"]
                       if m["sentiment"]["label"] == "negative")
    for brand in ("acme-mobile", "telvia"):
        assert answer["total"][brand]["mentions"] == counts[brand]
        assert answer["total"][brand]["negative"] == negative[brand]
        assert answer["total"][brand]["share"] == pytest.approx(
            counts[brand] / (counts["acme-mobile"] + counts["telvia"]), abs=1e-4)
    assert [bucket["start"][:10] for bucket in answer["buckets"]] == [
        "2026-11-30", "2026-12-01", "2026-12-02"]
    assert sum(bucket["brands"]["telvia"]["mentions"] for bucket in answer["buckets"]) == \
        counts["telvia"]


def test_top_voices_credit_authors_with_the_reach_of_their_copies(store: ListeningStore) -> None:
    answer = store.top_voices(queries.parse_top_voices_query(
        {"brand": "acme-mobile", "since": "2026-11-30", "until": "2026-12-03", "limit": "200"},
        NOW))
    voices = {voice["author_id"]: voice for voice in answer["voices"]}
    scoped = [m for m in MENTIONS if "acme-mobile" in m["brands"]]
    # m0000's author (a0) is copied by every copy whose author differs
    copies = [m for m in scoped if m["duplicate_of"] == "m0000" and m["author"]["id"] != "a0"]
    assert voices["a0"]["copies"] == len(copies)
    assert voices["a0"]["reach"] == pytest.approx(
        sum(m["author"]["followers"] for m in copies) + 10.0 * sum(
            m["engagement"]["likes"] for m in scoped if m["author"]["id"] == "a0"))
    assert answer["voices"][0]["author_id"] == "a0"
    for author_id, voice in voices.items():
        theirs = [m for m in scoped if m["author"]["id"] == author_id]
        assert voice["mentions"] == len(theirs)
        assert sum(voice["sentiment"].values()) == len(theirs)
    reaches = [voice["reach"] for voice in answer["voices"]]
    assert reaches == sorted(reaches, reverse=True)


def test_a_mention_whose_newest_copy_no_longer_matches_leaves_the_page(
        chdb_store_url: str) -> None:
    store = ListeningStore.open(store_settings(chdb_store_url), database="unit_rescored")
    store.command(f"TRUNCATE TABLE {store.table}")
    encoder = RowEncoder(KINDS)
    negative = [{**scored(3 * i), "sentiment": {"label": "negative", "scores": {}}}
                for i in range(30)]
    store.insert(encoder.encode_dicts(negative).payload)
    # replayed after a model change: the newest five are positive now
    store.insert(encoder.encode_dicts([{**m, "sentiment": {"label": "positive", "scores": {}}}
                                 for m in negative[-5:]]).payload)
    page = store.mentions(queries.parse_mentions_query(
        {"sentiment": "negative", "limit": "10"}, NOW))
    assert [m["id"] for m in page["mentions"]] == [m["id"] for m in negative[-6:-16:-1]]
    positive = store.mentions(queries.parse_mentions_query({"sentiment": "positive"}, NOW))
    assert [m["sentiment"]["label"] for m in positive["mentions"]] == ["positive"] * 5


def test_a_store_made_before_the_time_ordered_table_is_filled_at_start(
        chdb_store_url: str) -> None:
    settings = store_settings(chdb_store_url)
    store = ListeningStore.open(settings, database="unit_by_time")
    store.command(f"TRUNCATE TABLE {store.table}")
    store.command(f"DROP VIEW IF EXISTS {store.by_time}_feed")
    store.command(f"DROP TABLE IF EXISTS {store.by_time}")
    store.insert(RowEncoder(KINDS).encode_dicts(MENTIONS).payload)
    reopened = ListeningStore.open(settings, database="unit_by_time")
    pages = page_through(reopened, {"limit": "150"})
    assert [mention_id for page in pages for mention_id in page] == [
        mention["id"] for mention in reversed(MENTIONS)]
    # and fed from then on
    late = {**scored(401), "id": "after-reopen", "created_at": NOW.isoformat()}
    reopened.insert(RowEncoder(KINDS).encode_dicts([late]).payload)
    first = reopened.mentions(queries.parse_mentions_query({"limit": "1"}, NOW + timedelta(1)))
    assert [m["id"] for m in first["mentions"]] == ["after-reopen"]


def test_a_store_made_before_needs_reply_gets_the_column_at_start(chdb_store_url: str) -> None:
    settings = store_settings(chdb_store_url)
    store = ListeningStore.open(settings, database="unit_needs_reply")
    store.command(f"TRUNCATE TABLE {store.table}")
    store.command(f"ALTER TABLE {store.table} DROP COLUMN needs_reply")
    reopened = ListeningStore.open(settings, database="unit_needs_reply")
    reopened.insert(RowEncoder(KINDS).encode_dicts([{**MENTIONS[0], "needs_reply": "question"},
                                              MENTIONS[2]]).payload)
    rows = reopened.query(BoundQuery(
        f"SELECT id, needs_reply, toTypeName(needs_reply) FROM {reopened.table} FINAL "
        "ORDER BY id"))
    assert [row[:2] for row in rows] == [("m0000", "question"), ("m0002", None)]
    assert rows[0][2] == "LowCardinality(Nullable(String))"


def test_a_restarted_encoder_finds_the_original_author_in_the_store(
        store: ListeningStore) -> None:
    fresh = RowEncoder(KINDS, find_originals=store.original_authors)
    late_copy = {**scored(4), "id": "late-copy", "author": {"id": "late-fan", "followers": 7}}
    row = orjson.loads(fresh.encode_dicts([late_copy]).rows[0])
    assert row["original_author"] == "a0"
    # outside the copy window (a day before the copy) the original is not looked for
    stale = {**late_copy, "created_at": (START + timedelta(days=3)).isoformat()}
    assert orjson.loads(RowEncoder(KINDS, find_originals=store.original_authors).encode_dicts(
        [stale]).rows[0])["original_author"] == ""


def test_terms_rank_the_period_and_find_what_rose(store: ListeningStore) -> None:
    early = {"mentions": 0}
    late_text = "Acme Móvil caída total, caída en toda la ciudad #caída"
    late = [{**scored(1000 + i), "id": f"late{i}", "text": late_text,
             "brands": ["acme-mobile"], "created_at": "2026-12-01T21:30:00+00:00"}
            for i in range(4)]
    store.insert(RowEncoder(KINDS).encode_dicts(late).payload)
    answer = store.terms(queries.parse_terms_query(
        {"brand": "acme-mobile", "since": "2026-12-01T12:00:00+00:00",
         "until": "2026-12-01T22:00:00+00:00"}, NOW))
    assert early["mentions"] == 0
    assert answer["rising"][0]["term"] in ("caida", "#caida")
    assert {"term": "caida", "count": 4, "previous": 0} in answer["rising"]
    assert all(not item["term"].startswith("#") for item in answer["terms"])
    assert all(item["term"].startswith("#") for item in answer["hashtags"])
    acme = answer["terms"][0]
    assert acme["term"] == "acme"
    assert acme["count"] == 4 + sum(
        1 for m in MENTIONS if "acme-mobile" in m["brands"]
        and "2026-12-01T12:00" <= m["created_at"] < "2026-12-01T22:00")
    store.command(f"ALTER TABLE {store.table} DELETE WHERE id LIKE 'late%' "
                  "SETTINGS mutations_sync = 1")


def test_hostile_values_are_only_ever_values(store: ListeningStore) -> None:
    hostile = "x') OR 1=1; DROP TABLE unit_client.mentions; --"
    for params in ({"q": hostile}, {"q": f'"{hostile}"'}, {"brand": hostile},
                   {"lang": hostile}, {"source": "\\' OR ''='"}):
        assert page_through(store, params) == [[]]
    assert store.count() == len(MENTIONS)


def test_the_engine_cuts_the_stored_text_into_the_same_tokens(store: ListeningStore) -> None:
    for text in (*TEXTS, "l'app—«sí» ACME_móvil 5G…😡ok"):
        words = search_tokens(text)
        stored = " ".join(words)
        for word in words:
            [(found,)] = store.query(BoundQuery(
                "SELECT hasToken({text:String}, {word:String})", {"text": stored, "word": word}))
            assert found == 1, word


def test_a_changed_retention_is_applied_to_the_table(chdb_store_url: str) -> None:
    settings = Settings(store_url=chdb_store_url, store_retention_days=30)
    ListeningStore.open(settings, database="unit_retention")
    reopened = ListeningStore.open(Settings(store_url=chdb_store_url, store_retention_days=7),
                                   database="unit_retention")
    [(engine,)] = reopened.query(BoundQuery(
        "SELECT engine_full FROM system.tables WHERE database = 'unit_retention' "
        "AND name = 'brand_mentions'"))
    assert "toIntervalDay(7)" in engine and "toIntervalDay(30)" not in engine


def test_store_urls_are_parsed_or_refused() -> None:
    assert StoreLocation.parse("http://ch:8123").database == "mentions"
    for bad in ("chdb://relative/folder", "ftp://host/db", "http://ch:8123/drop;table"):
        with pytest.raises(ValueError, match="store URL"):
            StoreLocation.parse(bad)


def test_loading_a_file_twice_adds_its_mentions_once(chdb_store_url: str, tmp_path: Any) -> None:
    settings = store_settings(chdb_store_url)
    store = ListeningStore.open(settings, database="unit_load")
    processed = tmp_path / "processed.jsonl"
    processed.write_bytes(b"".join(orjson.dumps(m) + b"\n" for m in MENTIONS[:50])
                          + b"{not json\n" + orjson.dumps({**MENTIONS[0], "id": ""}) + b"\n")
    first = load_into_store(settings, store, processed, batch_size=20)
    second = load_into_store(settings, store, processed, batch_size=20)
    assert (first.lines, first.added, first.stored) == (52, 50, 50)
    assert (second.added, second.stored) == (0, 50)
    assert [line for line, _ in first.rejects] == [51, 52]
    assert first.rejects[0][1].startswith("not_json")
    assert first.rejects[1][1].startswith("missing_field")


def test_an_embedded_store_held_by_another_process_is_refused_clearly(tmp_path: Any) -> None:
    folder = tmp_path / "held"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\n"
         "from pipeline.config import Settings\n"
         "from pipeline.store.client import ListeningStore\n"
         f"store = ListeningStore.open(Settings(store_url='chdb://{folder}'))\n"
         "print('open', flush=True)\n"
         "time.sleep(60)\n"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        assert held_elsewhere(folder)
        with pytest.raises(StoreUnavailable, match="open in another process"):
            connect(StoreLocation.parse(f"chdb://{folder}"), Settings())
    finally:
        holder.kill()
        holder.wait()
    assert not held_elsewhere(folder)


@pytest.mark.parametrize("params", [
    {}, {"brand": "telvia,acme-mobile"}, {"sentiment": "negative"}, {"q": "cobertura"},
    {"since": "2026-12-01T20:00:00+00:00", "until": "2026-12-02T08:00:00+00:00"},
])
def test_pages_searched_newest_window_first_equal_pages_searched_whole(
    store: ListeningStore, params: dict[str, str],
) -> None:
    cursor = None
    for _ in range(6):
        query = queries.parse_mentions_query(
            {**params, "limit": "40", **({"cursor": cursor} if cursor else {})}, NOW)
        whole = store.query(sql.mentions_sql(store.table, query))
        page = store.mentions(query)
        assert [m["id"] for m in page["mentions"]] == [row[2] for row in whole[:40]]
        cursor = page["next"]
        if cursor is None:
            break
