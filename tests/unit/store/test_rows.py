"""A scored mention as a store row: columns, derived search fields, and the rejects."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from pipeline.store.rows import RowEncoder, search_tokens

KINDS = {"acme-mobile": "brand", "telvia": "competitor", "mobile-prices": "market"}


def scored(**fields: Any) -> dict[str, Any]:
    mention: dict[str, Any] = {
        "id": "tw:1", "text": "¡Acme Móvil me cobra de más! #AcmeFail @telvia es mejor",
        "created_at": "2026-12-01T10:00:00.250000+00:00", "source": "twitter",
        "author": {"id": "u1", "handle": "ana", "followers": 1200},
        "url": "https://x.example/ana/1", "engagement": {"likes": 3, "reposts": 1},
        "lang": "es", "brands": ["acme-mobile", "telvia"], "duplicate_of": None,
        "duplicate_kind": "unique", "copy_count": 1, "ingested_at": 1764583201.5,
        "sentiment": {"label": "negative",
                      "scores": {"negative": 0.8, "neutral": 0.15, "positive": 0.05}},
        "upstream_extra": {"kept": True},
    }
    mention.update(fields)
    return mention


def test_a_scored_mention_becomes_a_row_per_brand_with_every_column() -> None:
    batch = RowEncoder(KINDS).encode_dicts([scored()])
    assert batch.rejects == []
    rows = [orjson.loads(row) for row in batch.rows]
    assert [row.pop("brand") for row in rows] == ["acme-mobile", "telvia"]
    assert rows[0] == rows[1]
    row = rows[0]
    assert row["id"] == "tw:1"
    assert row["created_at"] == pytest.approx(
        datetime(2026, 12, 1, 10, 0, 0, 250000, tzinfo=UTC).timestamp())
    assert row["ingested_at"] == 1764583201.5
    assert row["brands"] == ["acme-mobile", "telvia"]
    assert row["kinds"] == ["brand", "competitor"]
    assert (row["author_id"], row["author_handle"], row["author_followers"]) == ("u1", "ana",
                                                                                1200)
    assert (row["likes"], row["reposts"], row["replies"], row["quotes"]) == (3, 1, 0, 0)
    assert (row["sentiment"], row["negative"], row["neutral"], row["positive"]) == (
        "negative", 0.8, 0.15, 0.05)
    assert (row["duplicate_of"], row["duplicate_kind"], row["copy_count"]) == ("", "unique", 1)
    # words folded as the listening queries fold them (case and accents), one space apart
    assert row["search_text"] == "acme movil me cobra de mas acmefail telvia es mejor"
    # content words and hashtags; handles and stopwords out
    assert row["terms"] == sorted(["#acmefail", "acme", "movil", "cobra", "mejor"])
    # the mention itself, as emitted, unknown keys included
    assert orjson.loads(row["mention"]) == scored()
    assert batch.payload == batch.rows[0] + b"\n" + batch.rows[1] + b"\n"


@pytest.mark.parametrize(("fields", "stored"), [
    ({"needs_reply": "complaint"}, "complaint"),
    ({"needs_reply": None}, None),
    ({}, None),  # a record from before the reply stage
])
def test_the_reply_verdict_is_stored_as_the_stage_wrote_it(fields: dict[str, Any],
                                                          stored: str | None) -> None:
    row = orjson.loads(RowEncoder(KINDS).encode_dicts([scored(**fields)]).rows[0])
    assert row["needs_reply"] == stored


def test_an_unscored_mention_is_kept_with_empty_sentiment() -> None:
    [row] = [orjson.loads(row) for row in RowEncoder(KINDS).encode_dicts([scored(
        sentiment=None, sentiment_error="TimeoutError", lang=None, ingested_at=None, brands=[],
    )]).rows]
    assert row["brand"] == ""
    assert (row["sentiment"], row["negative"], row["neutral"], row["positive"]) == ("", 0, 0, 0)
    assert row["lang"] == "und"
    assert row["ingested_at"] == row["created_at"]


def test_a_mention_delivered_twice_in_one_batch_is_one_row_per_brand_the_last() -> None:
    batch = RowEncoder(KINDS).encode_dicts([scored(copy_count=1), scored(copy_count=2),
                                      scored(id="tw:2", brands=["telvia", "telvia"])])
    rows = [orjson.loads(row) for row in batch.rows]
    assert [(row["id"], row["brand"]) for row in rows] == [
        ("tw:1", "acme-mobile"), ("tw:1", "telvia"), ("tw:2", "telvia")]
    assert [row["copy_count"] for row in rows] == [2, 2, 1]


@pytest.mark.parametrize(("change", "reason"), [
    ({"id": None}, "missing_field"),
    ({"id": ""}, "missing_field"),
    ({"created_at": None}, "missing_field"),
    ({"created_at": "yesterday"}, "bad_timestamp"),
    ({"text": 5}, "wrong_type"),
    ({"brands": "acme-mobile"}, "wrong_type"),
    ({"author": {"id": "u1", "followers": -3}}, "wrong_type"),
    ({"author": "ana"}, "wrong_type"),
    ({"engagement": {"likes": 2**40}}, "wrong_type"),
    ({"copy_count": True}, "wrong_type"),
    ({"sentiment": {"label": "angry", "scores": {}}}, "wrong_type"),
    ({"needs_reply": "rant"}, "wrong_type"),
])
def test_a_mention_the_store_cannot_keep_is_a_reject_with_its_reason(
    change: dict[str, Any], reason: str,
) -> None:
    batch = RowEncoder(KINDS).encode_dicts([scored(id="ok"), scored(**{"id": "bad", **change})])
    assert {orjson.loads(row)["id"] for row in batch.rows} == {"ok"}
    [reject] = batch.rejects
    assert (reject.index, reject.reason) == (1, reason)
    assert reject.detail
    assert orjson.loads(reject.raw) == scored(**{"id": "bad", **change})


def test_copies_share_their_texts_derived_columns() -> None:
    encoder = RowEncoder(KINDS, text_cache_size=1)
    rows = [orjson.loads(row) for row in encoder.encode_dicts(
        [scored(id=f"c{i}", brands=["telvia"]) for i in range(3)]
        + [scored(id="other", text="Telvia, hola", brands=["telvia"])],
    ).rows]
    assert [row["terms"] for row in rows[:3]] == [rows[0]["terms"]] * 3
    assert rows[3]["terms"] == ["hola", "telvia"]


def test_a_copy_names_its_originals_author_remembered_across_batches() -> None:
    encoder = RowEncoder(KINDS)
    encoder.encode_dicts([scored(id="orig", author={"id": "leader"})])
    copy = scored(id="copy", author={"id": "fan"}, duplicate_of="orig", duplicate_kind="exact")
    rows = [orjson.loads(row) for row in encoder.encode_dicts([copy]).rows]
    assert {row["original_author"] for row in rows} == {"leader"}


def test_an_original_the_encoder_never_saw_is_looked_up_within_the_copy_window() -> None:
    asked: list[tuple[list[str], float, float]] = []

    def find_originals(ids: Any, since_s: float, until_s: float) -> dict[str, str]:
        asked.append((list(ids), since_s, until_s))
        return {"gone": "leader"}

    encoder = RowEncoder(KINDS, copy_window_s=3600.0, find_originals=find_originals)
    copies = [scored(id=f"c{i}", duplicate_of=original, created_at=at) for i, (original, at) in
              enumerate((("gone", "2026-12-01T10:00:00+00:00"),
                         ("lost", "2026-12-01T11:00:00+00:00")))]
    rows = [orjson.loads(row) for row in encoder.encode_dicts(copies).rows]
    copy_time = datetime(2026, 12, 1, 10, tzinfo=UTC).timestamp()
    assert asked == [(["gone", "lost"], copy_time - 3600.0, copy_time + 3600.0)]
    assert {row["id"]: row["original_author"] for row in rows} == {"c0": "leader", "c1": ""}
    # found once, remembered: the next copy of it asks nothing
    encoder.encode_dicts([scored(id="c2", duplicate_of="gone")])
    assert len(asked) == 1


def test_without_a_lookup_an_unseen_original_leaves_the_author_empty() -> None:
    rows = [orjson.loads(row) for row in RowEncoder(KINDS).encode_dicts(
        [scored(duplicate_of="elsewhere")]).rows]
    assert {row["original_author"] for row in rows} == {""}


def test_search_tokens_split_as_clickhouse_tokens_do() -> None:
    assert search_tokens("e-mail: ACME_móvil 5G, l'app ¿dónde?«sí»—no…😡ok") == [
        "e", "mail", "acme", "movil", "5g", "l", "app", "donde", "si", "no", "ok"]


def test_each_brand_row_carries_that_brand_s_sentiment() -> None:
    by_brand = {"acme-mobile": {"label": "negative", "scores": {"negative": 0.9,
                                                               "neutral": 0.05,
                                                               "positive": 0.05}},
                "telvia": {"label": "positive", "scores": {"negative": 0.1, "neutral": 0.1,
                                                          "positive": 0.8}}}
    batch = RowEncoder(KINDS).encode_dicts([scored(sentiment_by_brand=by_brand)])
    rows = {row["brand"]: row for row in map(orjson.loads, batch.rows)}
    assert {brand: row["sentiment"] for brand, row in rows.items()} == {
        "acme-mobile": "negative", "telvia": "positive"}
    assert rows["telvia"]["positive"] == pytest.approx(0.8)
    # the stored mention keeps both the mention-level label and the per-brand ones
    assert orjson.loads(rows["telvia"]["mention"])["sentiment"]["label"] == "negative"


def test_a_bad_per_brand_label_rejects_the_mention() -> None:
    bad = {"telvia": {"label": "furious", "scores": {}}}
    batch = RowEncoder(KINDS).encode_dicts([scored(sentiment_by_brand=bad)])
    assert batch.rows == []
    assert [(r.reason, r.detail) for r in batch.rejects] == [
        ("wrong_type", "sentiment_by_brand.telvia label 'furious'")]
