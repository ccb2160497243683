from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from pipeline.connectors.sources.config import MastodonInstance
from pipeline.connectors.sources.filtering import SkipEvent, UnmappableEvent
from pipeline.connectors.sources.mastodon import (
    ServerSentEvent,
    SseParser,
    map_server_event,
    map_status,
    retry_after_s,
    stream_urls,
)
from pipeline.schema import validated_record
from tests.source_payloads import mastodon_status, sse

HTML = ('<p>¿Alguien más sin fibra de <a href="https://mastodon.social/tags/telvia" '
        'class="mention hashtag" rel="tag">#<span>Telvia</span></a>?</p>'
        '<p>Llevo 3 horas así &gt;:(<br>Ni el teléfono contestan</p>')


def test_a_status_maps_to_a_valid_mention_with_plain_text() -> None:
    mention = map_status(mastodon_status("113", HTML), "mastodon.social")
    record = validated_record(mention, max_text_chars=1000)
    assert record["text"] == ("¿Alguien más sin fibra de #Telvia?\n\nLlevo 3 horas así >:(\n"
                              "Ni el teléfono contestan")
    assert record["id"] == "mastodon:https://mastodon.social/users/lucia/statuses/113"
    assert record["author"] == {"id": "mastodon:https://mastodon.social/@lucia",
                                "handle": "lucia@mastodon.social", "followers": 842}
    assert record["url"] == "https://mastodon.social/@lucia/113"
    assert record["lang_hint"] == "es"
    assert record["created_at"] == "2025-12-06T10:15:42.512000+00:00"
    assert record["engagement"] == {"likes": 11, "reposts": 5, "replies": 2, "quotes": 0}


def test_a_boost_carries_the_boosted_text_and_a_repost_hint() -> None:
    original = mastodon_status("99", "<p>Telvia sube precios</p>", host="masto.es",
                               username="pedro")
    boost = mastodon_status("114", "", reblog=original)
    boost["account"]["acct"] = "ana@otra.example"
    mention = map_status(boost, "mastodon.social")
    assert mention["text"] == "Telvia sube precios"
    assert mention["repost_of"] == "mastodon:https://masto.es/users/pedro/statuses/99"
    assert mention["author"]["handle"] == "ana@otra.example"


def test_a_content_warning_is_part_of_the_text() -> None:
    mention = map_status(mastodon_status("115", "<p>detalles</p>", spoiler="Queja Telvia"),
                         "m.example")
    assert mention["text"] == "Queja Telvia\n\ndetalles"


def test_events_other_than_update_are_skipped_and_broken_ones_unmappable() -> None:
    with pytest.raises(SkipEvent):
        map_server_event(ServerSentEvent("delete", "113"), "m")
    with pytest.raises(UnmappableEvent) as broken:
        map_server_event(ServerSentEvent("update", "{not json"), "m")
    assert broken.value.reason == "not_json"
    with pytest.raises(UnmappableEvent):
        map_status({"id": "1", "content": "<p>x</p>"}, "m")


def test_sse_parser_joins_chunks_and_multi_line_data() -> None:
    status = orjson.dumps(mastodon_status("116", HTML)).decode()
    stream = b":)\n\n" + sse("update", status) + b"event: delete\r\ndata: 116\r\n\r\n"
    stream += b"data: line one\ndata: line two\n\n"
    parser = SseParser()
    events = [event for cut in range(0, len(stream), 7)
              for event in parser.feed(stream[cut:cut + 7])]
    assert [event.event for event in events] == ["update", "delete", "message"]
    assert orjson.loads(events[0].data)["id"] == "116"
    assert events[2].data == "line one\nline two"


def test_streams_and_pushed_hashtags() -> None:
    instance = MastodonInstance(url="https://m.example/", streams=("public", "hashtag:local"),
                                hashtags=("telvia",), hashtags_from_queries=False)
    assert stream_urls(instance, ["ignored"]) == [
        "https://m.example/api/v1/streaming/public",
        "https://m.example/api/v1/streaming/hashtag/local?tag=telvia"]


def test_retry_after_in_seconds_or_as_a_date() -> None:
    now = datetime(2025, 12, 6, 10, 0, 0, tzinfo=UTC)
    assert retry_after_s("Sat, 06 Dec 2025 10:00:30 GMT", now=now) == 30.0
    assert retry_after_s("-4") == 0.0


def test_a_token_comes_from_the_environment_or_a_file(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TEST_MASTODON_TOKEN", "sekret\n")
    from_env = MastodonInstance(url="https://m", token_env="TEST_MASTODON_TOKEN")
    token = from_env.token()
    assert token is not None and token.get_secret_value() == "sekret"
    assert "sekret" not in repr(from_env.token())
    path = tmp_path / "token"
    path.write_text("filetoken\n")
    from_file = MastodonInstance(url="https://m", token_file=path)
    assert from_file.token().get_secret_value() == "filetoken"  # type: ignore[union-attr]
    assert MastodonInstance(url="https://m").token() is None


def test_authors_who_opted_out_of_indexing_are_not_listened_to() -> None:
    status = mastodon_status("117", "<p>Telvia</p>")
    status["account"]["noindex"] = True
    with pytest.raises(SkipEvent) as skipped:
        map_status(status, "m.example")
    assert skipped.value.reason == "author_opted_out"
    boosted = mastodon_status("118", "", reblog=status)
    with pytest.raises(SkipEvent):
        map_status(boosted, "m.example")
