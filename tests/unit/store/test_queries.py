"""The store's query parameters and SQL, without a store: validation, cursors, buckets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from pipeline.store import queries, sql
from pipeline.store.queries import BadParameter, Cursor, Period

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("endpoint", "params", "field"), [
    ("mentions", {"limit": "0"}, "limit"),
    ("mentions", {"limit": "501"}, "limit"),
    ("mentions", {"limit": "ten"}, "limit"),
    ("mentions", {"cursor": "not-a-cursor"}, "cursor"),
    ("mentions", {"cursor": "WzEsMl0"}, "cursor"),  # [1,2]: the id is not a string
    ("mentions", {"sentiment": "angry"}, "sentiment"),
    ("mentions", {"kind": "brand,partner"}, "kind"),
    ("mentions", {"copies": "some"}, "copies"),
    ("mentions", {"q": 'say "hello'}, "q"),
    ("mentions", {"q": " ".join(f"w{i}" for i in range(17))}, "q"),
    ("mentions", {"since": "yesterday"}, "since"),
    ("mentions", {"since": "0001-01-01"}, "since"),
    ("mentions", {"until": "9999-12-31T00:00:00+00:00"}, "until"),
    ("mentions", {"since": "2026-12-06", "until": "2026-12-05"}, "since"),
    ("mentions", {"brnad": "acme"}, "brnad"),
    ("volume", {"brand": "a", "interval": "2m"}, "interval"),
    ("volume", {"brand": "a", "interval": "5m", "since": "2026-10-01"}, "interval"),
    ("volume", {"brand": "a", "since": "2024-01-01"}, "since"),
    ("volume", {"brand": "a", "tz": "Mars/Olympus"}, "tz"),
    ("volume", {}, "brand"),
    ("volume", {"brand": "a,b"}, "brand"),
    ("top-voices", {}, "brand"),
    ("terms", {"brand": "a,b"}, "brand"),
    ("share-of-voice", {}, "brands"),
    ("share-of-voice", {"brands": ",".join(f"b{i}" for i in range(21))}, "brands"),
    ("share-of-voice", {"brands": "a,b", "brand": "a"}, "brand"),
    ("top-voices", {"brand": "a", "limit": "201"}, "limit"),
    ("terms", {"brand": "a", "limit": "-1"}, "limit"),
])
def test_a_bad_parameter_names_its_field_and_says_why(
    endpoint: str, params: dict[str, str], field: str,
) -> None:
    with pytest.raises(BadParameter) as error:
        queries.PARSERS[endpoint](params, NOW)
    assert error.value.field == field
    assert error.value.reason


def test_periods_default_to_the_last_day_and_read_dates_in_the_chosen_zone() -> None:
    volume = queries.parse_volume_query({"brand": "acme-mobile"}, NOW)
    assert volume.period == Period(NOW - timedelta(days=1), NOW)
    assert (volume.interval, volume.tz.key) == ("1h", "UTC")
    madrid = queries.parse_volume_query(
        {"brand": "acme-mobile", "since": "2026-12-01", "until": "2026-12-02T00:00",
         "tz": "Europe/Madrid", "interval": "1d"}, NOW)
    assert madrid.period == Period(datetime(2026, 11, 30, 23, tzinfo=UTC),
                                   datetime(2026, 12, 1, 23, tzinfo=UTC))
    # the explorer is unbounded unless asked
    assert queries.parse_mentions_query({}, NOW).filter.period is None


def test_lists_are_comma_separated_and_deduplicated() -> None:
    query = queries.parse_mentions_query(
        {"brand": "acme-mobile, telvia,acme-mobile", "lang": "es,en",
         "sentiment": "negative", "copies": "original", "kind": "competitor"}, NOW)
    assert query.filter.brands == ("acme-mobile", "telvia")
    assert query.filter.langs == ("es", "en")
    assert (query.filter.sentiments, query.filter.copies, query.filter.kinds) == (
        ("negative",), "original", ("competitor",))


def test_search_words_and_phrases_are_folded_like_the_stored_text() -> None:
    assert queries.parse_search('Teléfono "POR FIN cobertura" ¿dónde?') == (
        ("telefono", "donde", "por", "fin", "cobertura"), ("por fin cobertura",))
    assert queries.parse_search("") == ((), ())


def test_cursors_round_trip_and_reject_tampering() -> None:
    cursor = Cursor(1_764_583_200_250, "tw:9")
    assert Cursor.decode(cursor.encode()) == cursor
    with pytest.raises(BadParameter):
        Cursor.decode(cursor.encode()[:-3] + "!!!")


def test_buckets_follow_the_zone_across_a_daylight_saving_change() -> None:
    period = Period(datetime(2026, 10, 24, 22, tzinfo=UTC), datetime(2026, 10, 26, 23, tzinfo=UTC))
    starts = queries.bucket_starts(period, "1d", ZoneInfo("Europe/Madrid"))
    assert [start.isoformat() for start in starts] == [
        "2026-10-25T00:00:00+02:00", "2026-10-26T00:00:00+01:00"]
    assert starts[1].timestamp() - starts[0].timestamp() == 25 * 3600


def test_hour_buckets_align_on_local_hours_in_a_half_hour_zone() -> None:
    period = Period(datetime(2026, 12, 6, 10, 10, tzinfo=UTC),
                    datetime(2026, 12, 6, 12, tzinfo=UTC))
    starts = queries.bucket_starts(period, "1h", ZoneInfo("Asia/Kolkata"))
    assert [start.astimezone(UTC).strftime("%H:%M") for start in starts] == [
        "09:30", "10:30", "11:30"]


def test_user_values_are_bound_never_written_into_the_sql() -> None:
    hostile = "x') OR 1=1; DROP TABLE mentions; --"
    query = queries.parse_mentions_query(
        {"q": f'"{hostile}" {hostile}', "brand": hostile, "lang": hostile, "source": hostile},
        NOW)
    bound = sql.mentions_sql("db.mentions", query)
    assert "DROP" not in bound.sql and "OR 1=1" not in bound.sql
    assert hostile in bound.parameters.values() or [hostile] in bound.parameters.values()
    assert all(f"{{{name}:" in bound.sql for name in bound.parameters)


@pytest.mark.parametrize("endpoint", sorted(queries.PARSERS))
def test_every_query_binds_each_parameter_it_declares(endpoint: str) -> None:
    params = {"brands": "acme-mobile,telvia"} if endpoint == "share-of-voice" else {
        "brand": "acme-mobile", "q": "cobertura", "lang": "es"}
    query = queries.PARSERS[endpoint](params, NOW)
    builders = {
        "mentions": sql.mentions_sql, "volume": sql.volume_sql,
        "share-of-voice": sql.share_of_voice_sql, "terms": sql.terms_sql,
        "top-voices": lambda table, q: sql.top_voices_sql(table, q, 10.0),
    }
    bound = builders[endpoint]("db.mentions", query)
    for name in bound.parameters:
        assert f"{{{name}:" in bound.sql
