"""The leaders' echoes table: built by settles, read by the leaders query, as the mentions say."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pipeline.config import Settings
from pipeline.stages.leaders import AuthorActivity
from pipeline.store import echoes, leaders
from pipeline.store.client import ListeningStore
from pipeline.store.rows import RowEncoder
from tests.unit.store.test_leaders import DAY, INSIDE, MENTIONS, START, mention

HOUR = timedelta(hours=1)
KINDS = {"acme-mobile": "brand", "telvia": "competitor"}


@pytest.fixture
def store(chdb_store_url: str) -> Iterator[ListeningStore]:
    store = ListeningStore.open(Settings(store_url=chdb_store_url, store_retention_days=3650),
                                database="unit_echoes")
    for table in (store.table, f"unit_echoes.{echoes.ECHOES}",
                  f"unit_echoes.{echoes.ECHOES_SETTLED}"):
        store.command(f"TRUNCATE TABLE {table}")
    encoder = RowEncoder(KINDS)
    store.insert(encoder.encode_dicts(MENTIONS).payload)
    store.insert(encoder.encode_dicts(MENTIONS[::3]).payload)  # redelivered: counted once
    yield store


def activities(store: ListeningStore, since: datetime, until: datetime,
               settled: bool) -> tuple[list[AuthorActivity], list[AuthorActivity]]:
    query = leaders.parse_leaders_query({"brand": "acme-mobile", "since": since.isoformat(),
                                         "until": until.isoformat()}, until)
    source = leaders.EchoSource(f"unit_echoes.{echoes.ECHOES}",
                                echoes.frontier(store.query, "unit_echoes")) if settled else None
    return leaders.activities(store.query(leaders.leaders_sql(store.table, query, INSIDE,
                                                              echoes=source)))


def by_author(found: tuple[list[AuthorActivity], list[AuthorActivity]]) -> dict[
        tuple[bool, str], AuthorActivity]:
    current, previous = found
    return {**{(True, item.author_id): item for item in current},
            **{(False, item.author_id): item for item in previous}}


@pytest.mark.parametrize(("since", "until"), [
    (START, START + DAY),                                  # whole hours
    (START + timedelta(minutes=30), START + DAY - timedelta(minutes=7)),  # edges mid-hour
    (START + 5 * HOUR, START + 12 * HOUR),
    (START + timedelta(minutes=70), START + timedelta(minutes=190)),  # shorter than the slices
])
def test_settled_echoes_answer_as_the_mentions_do(store: ListeningStore, since: datetime,
                                                  until: datetime) -> None:
    raw = by_author(activities(store, since, until, settled=False))
    settled = store.settle_echoes(START + 2 * DAY)
    assert settled.frontier == START + 2 * DAY and settled.built_hours > 0
    assert by_author(activities(store, since, until, settled=True)) == raw


def test_the_echoes_table_counts_each_copy_once(store: ListeningStore) -> None:
    store.settle_echoes(START + 2 * DAY)
    lead = by_author(activities(store, START, START + DAY, settled=True))[(True, "lead")]
    assert (lead.copies, lead.echoers, lead.echo_reach) == (15, 3, 5 * (10 + 20 + 30))


def test_a_late_copy_counts_from_the_next_settle(store: ListeningStore) -> None:
    store.settle_echoes(START + 2 * DAY)
    late = mention("late1", "c7", START + timedelta(hours=5, minutes=30), followers=7,
                   copy_of="lead5")
    original = next(item for item in MENTIONS if item["id"] == "lead5")
    store.insert(RowEncoder(KINDS).encode_dicts([original, late]).payload)
    lead = by_author(activities(store, START, START + DAY, settled=True))[(True, "lead")]
    assert (lead.copies, lead.echoers) == (15, 3)  # the settled hour does not know it yet
    assert store.settle_echoes(START + 2 * DAY).built_hours >= 1
    lead = by_author(activities(store, START, START + DAY, settled=True))[(True, "lead")]
    assert (lead.copies, lead.echoers, lead.echo_reach) == (16, 4, 5 * 60 + 7)
    assert by_author(activities(store, START, START + DAY, settled=False))[
        (True, "lead")] == lead


def test_a_store_made_before_the_table_builds_it_when_opened(
        store: ListeningStore, chdb_store_url: str) -> None:
    store.command(f"DROP TABLE unit_echoes.{echoes.ECHOES}")
    store.command(f"DROP TABLE unit_echoes.{echoes.ECHOES_SETTLED}")
    store.ensure_schema()
    built = echoes.frontier(store.query, "unit_echoes")
    assert built is not None and built > START + DAY
    raw = by_author(activities(store, START, START + DAY, settled=False))
    assert by_author(activities(store, START, START + DAY, settled=True)) == raw


def test_an_empty_store_settles_to_now(chdb_store_url: str) -> None:
    store = ListeningStore.open(Settings(store_url=chdb_store_url), database="unit_echoes_empty")
    now = datetime(2026, 12, 3, 10, 45, tzinfo=UTC)
    assert store.settle_echoes(now) == echoes.Settled(0, datetime(2026, 12, 3, 10, tzinfo=UTC))


def test_hours_before_the_first_settle_are_read_from_the_mentions() -> None:
    built, rest = echoes.split_hours(START, START + DAY, START + 2 * DAY, None)
    assert built == [] and rest == [(START, START + 2 * DAY)]


def first_day_query(**extra: str) -> leaders.LeadersQuery:
    return leaders.parse_leaders_query({"brand": "acme-mobile", "since": START.isoformat(),
                                        "until": (START + DAY).isoformat(), **extra},
                                       START + DAY)


def answer(store: ListeningStore, settled: bool, **extra: str) -> dict[str, Any]:
    query = first_day_query(**extra)
    source = leaders.EchoSource(f"unit_echoes.{echoes.ECHOES}",
                                echoes.frontier(store.query, "unit_echoes")) if settled else None
    return leaders.leaders_answer(store.query, store.table, query, INSIDE, source)


def asked_kinds(store: ListeningStore, kind: str) -> tuple[str, ...]:
    return leaders.without_needless_kinds(store.query, store.table,
                                          first_day_query(kind=kind)).filter.kinds


def test_the_brands_own_kind_is_answered_from_the_echoes_table(store: ListeningStore) -> None:
    store.settle_echoes(START + 2 * DAY)
    assert asked_kinds(store, "brand") == ()
    assert asked_kinds(store, "brand,market") == ()
    assert asked_kinds(store, "competitor") == ("competitor",)  # it drops rows: kept
    assert answer(store, True, kind="brand") == answer(store, False, kind="brand")
    assert answer(store, True, kind="brand") == answer(store, True)
    with_search = leaders.parse_leaders_query(
        {"brand": "acme-mobile", "kind": "brand", "q": "acme"}, START + DAY)
    assert leaders.without_needless_kinds(store.query, store.table,
                                          with_search) == with_search


def test_a_row_without_the_kind_asked_keeps_the_filter(store: ListeningStore) -> None:
    # a mention stored while the brand was configured as a market (the day before)
    market = mention("mkt1", "m1", START - timedelta(hours=3))
    store.insert(RowEncoder({"acme-mobile": "market"}).encode_dicts([market]).payload)
    store.settle_echoes(START + 2 * DAY)
    assert asked_kinds(store, "brand") == ("brand",)
    assert answer(store, True, kind="brand") == answer(store, False, kind="brand")
    assert (False, "m1") in by_author(activities(store, START, START + DAY, settled=True))
