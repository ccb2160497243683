"""The desk over HTTP: a real uvicorn, a real chDB store, answers checked against Python."""

import base64
import csv
import io
from collections import Counter
from datetime import timedelta
from typing import Any

import httpx
import orjson
import pytest

from pipeline.desk.app import EXPORT_COLUMNS
from pipeline.stages.alerts.terms import mention_terms
from pipeline.store.client import ListeningStore
from pipeline.store.queries import Cursor
from tests.unit.desk.conftest import COUNT, CRISIS, NOW, START
from tests.unit.desk.expected import (
    Mention,
    created_at,
    ids,
    in_period,
    newest_first,
    plain,
    words,
)


def every_page(desk: httpx.Client, path: str = "/api/mentions", **params: str,
               ) -> list[list[Mention]]:
    """Every page of a mentions query, following the cursor to the end."""
    pages: list[list[Mention]] = []
    cursor: str | None = None
    while True:
        answer = desk.get(path, params={**params, **({"cursor": cursor} if cursor else {})})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert set(body) == {"mentions", "next"}
        pages.append(body["mentions"])
        cursor = body["next"]
        if cursor is None:
            return pages
        assert len(pages) <= COUNT, "the cursor does not advance"


def found(desk: httpx.Client, **params: str) -> set[str]:
    """Ids of every mention a filter finds, exactly once each."""
    found_ids = [mention["id"] for page in every_page(desk, limit="500", **params)
                 for mention in page]
    assert len(found_ids) == len(set(found_ids))
    return set(found_ids)


def error_of(answer: httpx.Response) -> dict[str, Any]:
    body = answer.json()
    assert set(body) == {"error"} and set(body["error"]) == {"field", "reason"}
    assert isinstance(body["error"]["reason"], str) and body["error"]["reason"]
    return dict(body["error"])


# -- health -------------------------------------------------------------------------------


def test_healthz_and_readyz_answer_ok(desk: httpx.Client) -> None:
    assert (desk.get("/healthz").status_code, desk.get("/healthz").json()) == (
        200, {"status": "ok"})
    assert (desk.get("/readyz").status_code, desk.get("/readyz").json()) == (
        200, {"status": "ready"})


def test_index_lists_the_endpoints_in_spanish(desk: httpx.Client) -> None:
    answer = desk.get("/api")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert '<html lang="es">' in answer.text
    for path in ("/api/mentions", "/api/mentions.csv", "/api/volume", "/api/share-of-voice",
                 "/api/top-voices", "/api/terms", "/api/leaders", "/api/incidents", "/healthz",
                 "/readyz"):
        assert path in answer.text


def test_unknown_path_and_wrong_method_answer_in_the_error_shape(desk: httpx.Client) -> None:
    missing = desk.get("/api/nothing-here")
    assert missing.status_code == 404
    assert error_of(missing) == {"field": None, "reason": "Not Found: GET /api/nothing-here"}
    wrong = desk.post("/api/mentions")
    assert wrong.status_code == 405
    assert error_of(wrong)["field"] is None
    assert "GET" in wrong.headers["allow"]


# -- mentions -----------------------------------------------------------------------------


def test_pages_hold_every_mention_once_newest_first(
        desk: httpx.Client, scored_mentions: list[Mention]) -> None:
    pages = every_page(desk, limit="137")
    assert [len(page) for page in pages[:-1]] == [137] * (len(pages) - 1)
    assert len(pages) == -(-COUNT // 137)
    assert [mention["id"] for page in pages for mention in page] == newest_first(
        scored_mentions)


def test_a_mention_comes_back_as_the_pipeline_emitted_it(
        desk: httpx.Client, scored_mentions: list[Mention]) -> None:
    newest = max(scored_mentions, key=lambda mention: (created_at(mention), mention["id"]))
    assert desk.get("/api/mentions", params={"limit": "1"}).json()["mentions"] == [newest]


def test_last_page_has_no_cursor(desk: httpx.Client) -> None:
    answer = desk.get("/api/mentions", params={"limit": "500", "since": START.isoformat(),
                                               "until": (START + timedelta(minutes=5))
                                               .isoformat()}).json()
    assert answer["next"] is None
    assert 0 < len(answer["mentions"]) < 500


@pytest.mark.parametrize(("params", "keep"), [
    ({"brand": "telvia"}, lambda mention: "telvia" in mention["brands"]),
    ({"brand": "telvia,lumo-air"},
     lambda mention: bool({"telvia", "lumo-air"} & set(mention["brands"]))),
    ({"lang": "pt"}, lambda mention: mention["lang"] == "pt"),
    ({"sentiment": "negative"}, lambda mention: mention["sentiment"]["label"] == "negative"),
    ({"brand": "acme-mobile", "sentiment": "negative,neutral", "lang": "es"},
     lambda mention: "acme-mobile" in mention["brands"] and mention["lang"] == "es"
     and mention["sentiment"]["label"] in ("negative", "neutral")),
    ({"source": "reddit"}, lambda mention: mention["source"] == "reddit"),
    ({"copies": "original"}, lambda mention: mention["duplicate_of"] is None),
    ({"copies": "copies"}, lambda mention: mention["duplicate_of"] is not None),
    ({"q": "factura"}, lambda mention: "factura" in words(mention["text"])),
])
def test_filters_find_what_python_finds(
        desk: httpx.Client, scored_mentions: list[Mention], params: dict[str, str],
        keep: Any) -> None:
    expected = ids(scored_mentions, keep)
    assert expected, "the sample lacks what this filter looks for"
    assert found(desk, **params) == expected


def test_search_ignores_accents_and_case(
        desk: httpx.Client, scored_mentions: list[Mention]) -> None:
    expected = ids(scored_mentions, lambda mention: "movil" in words(mention["text"]))
    assert any("Móvil" in mention["text"] for mention in scored_mentions
               if mention["id"] in expected)
    assert found(desk, q="movil") == expected
    assert found(desk, q="MÓVIL") == expected


def test_quoted_phrase_keeps_its_words_in_order(
        desk: httpx.Client, scored_mentions: list[Mention]) -> None:
    phrase = ids(scored_mentions, lambda mention: "dos veces" in plain(mention["text"]))
    assert phrase
    assert found(desk, q='"dos veces"') == phrase
    assert found(desk, q='"veces dos"') == set()
    both_words = ids(scored_mentions, lambda mention: {"dos", "veces"} <= words(mention["text"]))
    assert found(desk, q="veces dos") == both_words


def test_copies_split_the_store_in_two(desk: httpx.Client) -> None:
    originals, copies = found(desk, copies="original"), found(desk, copies="copies")
    assert not originals & copies
    assert len(originals) + len(copies) == COUNT


def test_period_is_half_open(desk: httpx.Client, scored_mentions: list[Mention]) -> None:
    since, until = START + timedelta(minutes=20), START + timedelta(minutes=40)
    expected = ids(scored_mentions, lambda mention: in_period(mention, since, until))
    assert found(desk, since=since.isoformat(), until=until.isoformat()) == expected
    # a bare date is midnight in tz: Madrid's 2 November starts at 23:00 UTC the day before
    assert found(desk, since="2026-11-02", until="2026-11-03", tz="Europe/Madrid") == {
        mention["id"] for mention in scored_mentions}


# -- aggregates ---------------------------------------------------------------------------


def test_volume_counts_every_mention_of_each_bucket(
        desk: httpx.Client, scored_mentions: list[Mention]) -> None:
    since, until = START + timedelta(minutes=10), START + timedelta(minutes=50)
    answer = desk.get("/api/volume", params={
        "brand": "acme-mobile", "since": since.isoformat(), "until": until.isoformat(),
        "interval": "5m"})
    assert answer.status_code == 200
    body = answer.json()
    buckets = body["buckets"]
    assert [bucket["start"] for bucket in buckets] == [
        (since + timedelta(minutes=5 * step)).isoformat() for step in range(8)]
    expected: Counter[tuple[int, str]] = Counter(
        (int((created_at(mention) - since).total_seconds() // 300),
         mention["sentiment"]["label"])
        for mention in scored_mentions
        if in_period(mention, since, until) and "acme-mobile" in mention["brands"])
    for step, bucket in enumerate(buckets):
        for label in ("negative", "neutral", "positive"):
            assert bucket[label] == expected[step, label], (step, label)
        assert bucket["unscored"] == 0
        assert bucket["total"] == bucket["negative"] + bucket["neutral"] + bucket["positive"]
    assert sum(bucket["total"] for bucket in buckets) == sum(expected.values())


def test_volume_of_the_default_day_is_the_brands_whole_store(
        desk: httpx.Client, scored_mentions: list[Mention]) -> None:
    body = desk.get("/api/volume", params={"brand": "telvia", "tz": "Europe/Madrid"}).json()
    assert (body["since"], body["until"], body["tz"], body["interval"]) == (
        (NOW - timedelta(days=1)).isoformat(), NOW.isoformat(), "Europe/Madrid", "1h")
    assert sum(bucket["total"] for bucket in body["buckets"]) == sum(
        1 for mention in scored_mentions if "telvia" in mention["brands"])


def test_share_of_voice_counts_and_shares(
        desk: httpx.Client, scored_mentions: list[Mention]) -> None:
    brands = ("acme-mobile", "telvia", "nimbus-bank")
    answer = desk.get("/api/share-of-voice", params={"brands": ",".join(brands),
                                                     "interval": "1h"})
    assert answer.status_code == 200
    body = answer.json()
    assert body["brands"] == list(brands)
    for brand in brands:
        naming = [mention for mention in scored_mentions if brand in mention["brands"]]
        negative = [mention for mention in naming
                    if mention["sentiment"]["label"] == "negative"]
        assert (body["total"][brand]["mentions"], body["total"][brand]["negative"]) == (
            len(naming), len(negative))
        assert sum(bucket["brands"][brand]["mentions"] for bucket in body["buckets"]) == len(
            naming)
    assert sum(share["share"] for share in body["total"].values()) == pytest.approx(1, abs=2e-4)
    assert sum(share["negative_share"] for share in body["total"].values()) == pytest.approx(
        1, abs=2e-4)


def test_top_voices_rank_authors_by_reach(
        desk: httpx.Client, scored_mentions: list[Mention]) -> None:
    answer = desk.get("/api/top-voices", params={"brand": "acme-mobile", "limit": "5"})
    assert answer.status_code == 200
    voices = answer.json()["voices"]
    assert len(voices) == 5
    reaches = [voice["reach"] for voice in voices]
    assert reaches == sorted(reaches, reverse=True)
    for voice in voices:
        assert set(voice) == {"author_id", "handle", "followers", "mentions", "copies",
                              "engagement", "reach", "sentiment"}
        theirs = [mention for mention in scored_mentions
                  if mention["author"]["id"] == voice["author_id"]
                  and "acme-mobile" in mention["brands"]]
        assert voice["mentions"] == len(theirs)
        assert voice["followers"] == max(mention["author"]["followers"] for mention in theirs)
        assert voice["handle"] == theirs[0]["author"]["handle"]
        assert sum(voice["sentiment"].values()) == voice["mentions"]
        assert voice["reach"] >= voice["followers"]


def test_terms_count_mentions_and_find_the_crisis_rising(
        desk: httpx.Client, scored_mentions: list[Mention]) -> None:
    since = START + CRISIS.start_after
    until = since + CRISIS.duration
    answer = desk.get("/api/terms", params={"brand": "acme-mobile", "since": since.isoformat(),
                                            "until": until.isoformat(), "limit": "10"})
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {"since", "until", "previous", "terms", "hashtags", "rising"}
    assert body["previous"] == {"since": (since - CRISIS.duration).isoformat(),
                                "until": since.isoformat()}
    current: Counter[str] = Counter()
    previous: Counter[str] = Counter()
    for mention in scored_mentions:
        if "acme-mobile" not in mention["brands"]:
            continue
        terms, hashtags = mention_terms(mention["text"])
        if in_period(mention, since, until):
            current.update(terms | hashtags)
        elif in_period(mention, since - CRISIS.duration, since):
            previous.update(terms | hashtags)
    for listed in ("terms", "hashtags", "rising"):
        assert 0 < len(body[listed]) <= 10
        for term in body[listed]:
            assert (term["count"], term["previous"]) == (
                current[term["term"]], previous[term["term"]]), term
    assert not any(term["term"].startswith("#") for term in body["terms"])
    assert all(term["term"].startswith("#") for term in body["hashtags"])
    counts = [term["count"] for term in body["terms"]]
    assert counts == sorted(counts, reverse=True)
    assert counts[0] == max(count for term, count in current.items() if not term.startswith("#"))
    assert f"#{CRISIS.hashtag.lower()}" in [term["term"] for term in body["rising"]]


# -- CSV export ---------------------------------------------------------------------------


def read_export(answer: httpx.Response) -> list[dict[str, str]]:
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    assert answer.headers["content-disposition"] == "attachment; filename=mentions.csv"
    # a byte-order mark first, which Excel needs to read UTF-8
    assert answer.content.startswith(b"\xef\xbb\xbf")
    reader = csv.DictReader(io.StringIO(answer.content.decode("utf-8-sig"), newline=""))
    assert tuple(reader.fieldnames or ()) == EXPORT_COLUMNS
    return list(reader)


def test_export_holds_the_filtered_mentions_newest_first(
        desk: httpx.Client, scored_mentions: list[Mention]) -> None:
    rows = read_export(desk.get("/api/mentions.csv", params={"brand": "telvia"}))
    expected = newest_first(mention for mention in scored_mentions
                            if "telvia" in mention["brands"])
    assert [row["id"] for row in rows] == expected


def test_export_pages_past_the_api_page_size(
        desk: httpx.Client, scored_mentions: list[Mention]) -> None:
    rows = read_export(desk.get("/api/mentions.csv"))
    assert [row["id"] for row in rows] == newest_first(scored_mentions)
    limited = read_export(desk.get("/api/mentions.csv", params={"limit": "1234"}))
    assert [row["id"] for row in limited] == newest_first(scored_mentions)[:1234]


def test_export_row_carries_the_mention(
        desk: httpx.Client, scored_mentions: list[Mention]) -> None:
    by_id = {mention["id"]: mention for mention in scored_mentions}
    rows = read_export(desk.get("/api/mentions.csv", params={"q": "movil"}))
    assert rows
    for row in rows:
        mention = by_id[row["id"]]
        text = mention["text"]
        assert row["text"] == ("'" + text if text.startswith(("@", "=", "+", "-")) else text)
        assert row["brands"] == "|".join(mention["brands"])
        assert row["sentiment"] == mention["sentiment"]["label"]
        assert float(row["negative"]) == mention["sentiment"]["scores"]["negative"]
        assert int(row["author_followers"]) == mention["author"]["followers"]
        assert row["duplicate_of"] == (mention["duplicate_of"] or "")
        assert int(row["copy_count"]) == mention["copy_count"]
        assert row["created_at"] == mention["created_at"]
    assert any("Móvil" in row["text"] for row in rows)


def test_export_defuses_formulas(desk: httpx.Client, scored_mentions: list[Mention]) -> None:
    handle_first = {mention["id"] for mention in scored_mentions
                    if mention["text"].startswith("@") and "telvia" in mention["brands"]}
    assert handle_first
    rows = read_export(desk.get("/api/mentions.csv", params={"brand": "telvia"}))
    defused = [row for row in rows if row["id"] in handle_first]
    assert len(defused) == len(handle_first)
    assert all(row["text"].startswith("'@") for row in defused)


# -- bad parameters -----------------------------------------------------------------------


@pytest.mark.parametrize(("path", "query", "field"), [
    ("/api/mentions", "colour=red", "colour"),
    ("/api/mentions", "limit=0", "limit"),
    ("/api/mentions", "limit=501", "limit"),
    ("/api/mentions", "limit=abc", "limit"),
    ("/api/mentions", "since=2026-11-03&until=2026-11-02", "since"),
    ("/api/mentions", "since=0001-01-01", "since"),
    ("/api/mentions", "since=99999-01-01", "since"),
    ("/api/mentions", "until=2026-13-01", "until"),
    ("/api/mentions", "since=2026-11-02&tz=Mars/Olympus_Mons", "tz"),
    ("/api/mentions", "cursor=not-a-cursor", "cursor"),
    ("/api/mentions", "limit=1&limit=2", "limit"),
    ("/api/mentions", "brand=telvia&brand=lumo-air", "brand"),
    ("/api/mentions", "sentiment=furious", "sentiment"),
    ("/api/mentions", "copies=some", "copies"),
    ("/api/mentions", "q=%22unclosed", "q"),
    ("/api/volume", "interval=5m&since=2026-01-01&until=2026-03-01", "interval"),
    ("/api/volume", "interval=1w", "interval"),
    ("/api/volume", "since=2025-01-01&until=2026-11-02", "since"),
    ("/api/share-of-voice", "interval=1h", "brands"),
    ("/api/top-voices", "brand=telvia&limit=201", "limit"),
    ("/api/top-voices", "limit=5", "brand"),
    ("/api/volume", "brand=telvia,acme-mobile", "brand"),
    ("/api/terms", "cursor=abc", "cursor"),
    ("/api/mentions.csv", "limit=100001", "limit"),
    ("/api/mentions.csv", "limit=ten", "limit"),
    ("/api/mentions.csv", "cursor=abc", "cursor"),
    ("/api/mentions.csv", "lang=es&lang=pt", "lang"),
])
def test_bad_parameters_answer_400_with_field_and_reason(
        desk: httpx.Client, path: str, query: str, field: str) -> None:
    answer = desk.get(f"{path}?{query}")
    assert answer.status_code == 400, answer.text
    assert error_of(answer)["field"] == field


@pytest.mark.parametrize("created_ms", [253_402_300_800_000, -10**15, 2**62])
def test_a_forged_cursor_out_of_the_stores_time_is_refused(
        desk: httpx.Client, created_ms: int) -> None:
    forged = base64.urlsafe_b64encode(orjson.dumps([created_ms, "syn:1"])).decode()
    answer = desk.get("/api/mentions", params={"cursor": forged})
    assert answer.status_code == 400, answer.text
    assert error_of(answer)["field"] == "cursor"


def test_reasons_say_what_is_wrong(desk: httpx.Client) -> None:
    assert error_of(desk.get("/api/mentions?limit=abc")) == {
        "field": "limit", "reason": "'abc' is not an integer"}
    assert error_of(desk.get("/api/mentions?limit=1&limit=2")) == {
        "field": "limit", "reason": "given more than once (list values with commas)"}
    assert error_of(desk.get("/api/mentions.csv?limit=0")) == {
        "field": "limit", "reason": "must be between 1 and 100000"}


# -- hostile input ------------------------------------------------------------------------


@pytest.mark.parametrize("params", [
    {"q": "'; DROP TABLE mentions.mentions; --"},
    {"q": "\\' OR 1=1 --"},
    {"brand": "telvia') OR 1=1 --"},
    {"brand": "x'); DROP TABLE mentions.mentions; --"},
    {"lang": "es' OR '1'='1"},
    {"source": "twitter\\'; SELECT 1"},
    {"cursor": Cursor(0, "') OR 1=1; DROP TABLE mentions.mentions; --").encode()},
])
def test_injection_attempts_match_nothing(
        desk: httpx.Client, store: ListeningStore, params: dict[str, str]) -> None:
    answer = desk.get("/api/mentions", params=params)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"mentions": [], "next": None}
    assert store.count() == COUNT


def test_injection_in_a_cursor_id_is_only_an_id(
        desk: httpx.Client, scored_mentions: list[Mention]) -> None:
    # a cursor after every mention: the page is the newest mentions, the id compared as text
    cursor = Cursor(int(NOW.timestamp() * 1000), "' OR 1=1; DROP TABLE mentions.mentions; --")
    answer = desk.get("/api/mentions", params={"cursor": cursor.encode(), "limit": "3"})
    assert answer.status_code == 200
    assert [mention["id"] for mention in answer.json()["mentions"]] == newest_first(
        scored_mentions)[:3]


@pytest.mark.parametrize(("path", "params"), [
    ("/api/mentions", {"cursor": "'; DROP TABLE mentions.mentions; --"}),
    ("/api/mentions", {"tz": "UTC'); DROP TABLE mentions.mentions; --"}),
    ("/api/mentions", {"since": "2026-11-02'; DROP TABLE mentions.mentions; --"}),
    ("/api/volume", {"interval": "1 HOUR) FROM system.tables --"}),
    ("/api/top-voices", {"limit": "5; DROP TABLE mentions.mentions", "brand": "telvia"}),
])
def test_injection_attempts_in_typed_parameters_are_refused(
        desk: httpx.Client, store: ListeningStore, path: str, params: dict[str, str]) -> None:
    answer = desk.get(path, params=params)
    assert answer.status_code == 400, answer.text
    assert error_of(answer)["field"] == next(iter(params))
    assert store.count() == COUNT


def test_injection_in_share_of_voice_brands_is_a_brand_of_no_mentions(
        desk: httpx.Client, store: ListeningStore, scored_mentions: list[Mention]) -> None:
    hostile = "telvia') OR 1=1 --"
    answer = desk.get("/api/share-of-voice", params={"brands": f"{hostile},lumo-air"})
    assert answer.status_code == 200
    total = answer.json()["total"]
    assert (total[hostile]["mentions"], total[hostile]["share"]) == (0, 0.0)
    assert (total["lumo-air"]["mentions"], total["lumo-air"]["share"]) == (
        len(ids(scored_mentions, lambda mention: "lumo-air" in mention["brands"])), 1.0)
    assert store.count() == COUNT
