"""The leaders query on the embedded engine (chDB), against aggregates counted in Python."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pipeline.config import Settings
from pipeline.stages.leaders import SLICES, InsideVoices
from pipeline.store import leaders
from pipeline.store.client import ListeningStore
from pipeline.store.queries import BadParameter
from pipeline.store.rows import RowEncoder

START = datetime(2026, 12, 1, tzinfo=UTC)
DAY = timedelta(days=1)
INSIDE = InsideVoices(accounts=("AcmeMobile",), employees=("*_acme",))
PARAMS = {"brand": "acme-mobile", "since": START.isoformat(),
          "until": (START + DAY).isoformat()}


def mention(mention_id: str, author: str, at: datetime, *, followers: int = 100,
            handle: str = "", copy_of: str | None = None, label: str = "neutral",
            likes: int = 0, brand: str = "acme-mobile") -> dict[str, Any]:
    return {
        "id": mention_id, "text": f"Acme Mobile {mention_id}", "created_at": at.isoformat(),
        "author": {"id": author, "handle": handle or author, "followers": followers},
        "engagement": {"likes": likes, "reposts": 0, "replies": 0, "quotes": 0},
        "lang": "en", "brands": [brand], "duplicate_of": copy_of,
        "url": f"https://social.example/{author}/{mention_id}",
        "sentiment": {"label": label, "scores": {label: 1.0}},
    }


def conversation() -> list[dict[str, Any]]:
    """A day about acme-mobile and the day before, in time order."""
    before = [mention("old1", "old", START - DAY + timedelta(hours=2), followers=500)]
    before += [mention(f"oldc{i}", f"p{i}", START - DAY + timedelta(hours=3 + i),
                       copy_of="old1") for i in range(5)]
    now: list[dict[str, Any]] = []
    for hour in (1, 5, 9, 13, 17):  # the leader: five posts over five slices, all copied
        now.append(mention(f"lead{hour}", "lead", START + timedelta(hours=hour), followers=900,
                           label="positive", likes=4))
        now += [mention(f"copy{hour}-{i}", f"c{i}", START + timedelta(hours=hour, minutes=i + 1),
                        followers=10 * (i + 1), copy_of=f"lead{hour}") for i in range(3)]
    now += [mention(f"bot{i}", "bot", START + timedelta(hours=2 * i), followers=2_000_000)
            for i in range(12)]
    now += [mention("brand1", "acct", START + timedelta(hours=3), handle="acmemobile"),
            mention("brand1c", "c9", START + timedelta(hours=4), copy_of="brand1"),
            mention("staff1", "staff", START + timedelta(hours=6), handle="lucia_acme",
                    label="negative"),
            mention("other", "lead", START + timedelta(hours=2), brand="telvia")]
    return sorted(before + now, key=lambda item: item["created_at"])


MENTIONS = conversation()


@pytest.fixture(scope="module")
def store(chdb_store_url: str) -> Iterator[ListeningStore]:
    store = ListeningStore.open(Settings(store_url=chdb_store_url, store_retention_days=3650),
                                database="unit_leaders")
    store.command(f"TRUNCATE TABLE {store.table}")
    encoder = RowEncoder({"acme-mobile": "brand", "telvia": "competitor"})
    store.insert(encoder.encode_dicts(MENTIONS).payload)
    store.insert(encoder.encode_dicts(MENTIONS[::3]).payload)  # redelivered: counted once
    yield store


def answer(store: ListeningStore, **extra: str) -> dict[str, Any]:
    query = leaders.parse_leaders_query({**PARAMS, **extra}, START + DAY)
    return store.leaders(query, INSIDE)


def test_aggregates_match_the_mentions(store: ListeningStore) -> None:
    query = leaders.parse_leaders_query(PARAMS, START + DAY)
    current, previous = leaders.activities(store.query(
        leaders.leaders_sql(store.table, query, INSIDE)))
    lead = {activity.author_id: activity for activity in current}["lead"]
    assert (lead.mentions, lead.originals, lead.copies, lead.echoers) == (5, 5, 15, 3)
    assert lead.echo_reach == 5 * (10 + 20 + 30)
    assert (lead.engagement, lead.positive, lead.followers) == (20, 5, 900)
    assert lead.active_slices == 5
    bot = {activity.author_id: activity for activity in current}["bot"]
    assert (bot.mentions, bot.copies, bot.echoers, bot.active_slices) == (12, 0, 0, SLICES)
    assert {activity.author_id for activity in previous} == {"old", *(f"p{i}" for i in range(5))}
    assert {activity.author_id: activity.echoers for activity in previous}["old"] == 5


def test_leaders_rank_echo_above_audience_and_split_inside_voices(
        store: ListeningStore) -> None:
    found = answer(store)
    outside = [leader["author_id"] for leader in found["outside"]]
    assert outside[0] == "lead"
    assert outside.index("bot") > outside.index("lead")
    assert {(leader["author_id"], leader["role"]) for leader in found["inside"]} == {
        ("acct", "account"), ("staff", "employee")}
    lead = found["outside"][0]
    assert lead["stance"] == "advocate" and lead["rank"] == 1
    assert lead["score"] == pytest.approx(sum(lead["points"].values()), abs=0.05)
    staff = next(leader for leader in found["inside"] if leader["author_id"] == "staff")
    assert staff["stance"] == "detractor"


def test_leaders_new_against_a_full_list_the_day_before_are_rising(
        store: ListeningStore) -> None:
    # the day before holds six outside voices and no inside one: with three a group, only
    # the outside list was full
    found = answer(store, limit="3")
    rising = {voice["author_id"] for voice in found["rising"]}
    assert rising == {leader["author_id"] for leader in found["outside"]}
    assert found["inside"]
    assert all(voice["previous_rank"] is None for voice in found["rising"])
    # the inside voices had no list the day before: none of them is said to rise
    assert {voice["group"] for voice in answer(store, limit="20")["rising"]} == {"outside"}


def test_recent_mentions_are_the_leaders_newest_about_the_brand(store: ListeningStore) -> None:
    lead = answer(store, recent="2")["outside"][0]
    assert [item["id"] for item in lead["recent"]] == ["lead17", "lead13"]
    assert lead["recent"][0]["sentiment"] == "positive"
    assert all(item["id"] != "other" for item in answer(store, recent="10")["outside"][0][
        "recent"])


def test_a_redelivered_mention_is_one_of_the_newest_keys(store: ListeningStore) -> None:
    # every third mention is stored twice (the fixture); each key is asked for once
    query = leaders.parse_leaders_query({**PARAMS, "recent": "3"}, START + DAY)
    rows = store.query(leaders.recent_keys_sql(store.table, query, ["lead"]))
    assert [mention_id for _, _, _, mention_id in rows] == ["lead17", "lead13", "lead9"]


def test_without_recent_no_mention_is_fetched(store: ListeningStore) -> None:
    assert all(leader["recent"] == [] for leader in answer(store, recent="0")["outside"])


def test_a_small_candidate_list_keeps_the_inside_voices(store: ListeningStore) -> None:
    query = leaders.parse_leaders_query(PARAMS, START + DAY)
    current, _ = leaders.activities(store.query(
        leaders.leaders_sql(store.table, query, INSIDE, candidates=3)))
    assert [activity.author_id for activity in current][:2] in (["acct", "staff"],
                                                                ["staff", "acct"])
    assert len(current) == 3


@pytest.mark.parametrize(("params", "field"), [
    ({"limit": "5"}, "brand"), ({"brand": "a,b"}, "brand"),
    ({"brand": "a", "limit": "101"}, "limit"), ({"brand": "a", "recent": "11"}, "recent"),
    ({"brand": "a", "top": "3"}, "top"),
])
def test_bad_parameters_name_their_field(params: dict[str, str], field: str) -> None:
    with pytest.raises(BadParameter) as raised:
        leaders.parse_leaders_query(params, START)
    assert raised.value.field == field
