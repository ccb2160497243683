"""The themes job and ``GET /api/themes``'s report on the embedded store (chDB).

The encoder is replaced by a deterministic embedding of a text's topic words (the job takes
any ``embed`` function), so the test knows which mentions belong together; the real encoder
has its own test (``tests/unit/test_embeddings.py``).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from pipeline.config import Settings
from pipeline.store.client import ListeningStore
from pipeline.store.queries import BoundQuery, Period
from pipeline.store.rows import RowEncoder
from pipeline.store.theme_report import themes_report
from pipeline.store.themes import THEME_CENTROIDS, THEME_LANGUAGES, THEME_MENTIONS, ThemesQuery
from pipeline.themes_job import JobSettings, ThemesJob

START = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)
DAY = timedelta(days=1)
# topic words -> embedding axis; Spanish and English words of one topic share an axis
AXES = {"factura": 0, "bill": 0, "cobertura": 1, "signal": 1, "tienda": 2, "store": 2,
        "apagón": 3, "outage": 3}
TEXTS = {
    "billing": ("Telvia me cobró la factura dos veces {n}", "Telvia charged my bill twice {n}"),
    "coverage": ("Sin cobertura en casa con Telvia {n}", "No signal at home with Telvia {n}"),
    "shop": ("La tienda de Telvia atiende genial {n}", "Telvia store staff were lovely {n}"),
    "outage": ("Apagón total de Telvia en Madrid {n}", "Telvia outage all over Madrid {n}"),
}


def topic_embedding(texts: Sequence[str]) -> np.ndarray:
    """A unit vector on the axis of the text's topic word, with a little per-text noise."""
    vectors = np.zeros((len(texts), 8), dtype=np.float32)
    for row, text in enumerate(texts):
        words = text.lower().split()
        for word, axis in AXES.items():
            if word in words:
                vectors[row, axis] = 1.0
        noise = np.random.default_rng(zlib.crc32(text.encode())).normal(0, 0.05, 8)
        vectors[row] += noise.astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


class CountingEmbed:
    """:func:`topic_embedding`, remembering how many texts it was asked for."""

    def __init__(self) -> None:
        self.texts = 0

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        self.texts += len(texts)
        return topic_embedding(texts)


def mentions(topic: str, count: int, day: int, first: int) -> list[dict[str, Any]]:
    """``count`` mentions of a topic on ``day``, Spanish and English alternating."""
    found = []
    for n in range(first, first + count):
        lang = n % 2
        found.append({
            "id": f"{topic}-{n}", "text": TEXTS[topic][lang].format(n=n),
            "created_at": (START + day * DAY + timedelta(minutes=n)).isoformat(),
            "source": "twitter", "author": {"id": f"a{n}", "handle": f"user{n}", "followers": 10},
            "lang": ("es", "en")[lang], "brands": ["telvia"], "duplicate_of": None,
            "duplicate_kind": "unique", "copy_count": 1,
            "sentiment": {"label": "negative" if topic != "shop" else "positive",
                          "scores": {"negative": 0.5, "neutral": 0.2, "positive": 0.3}},
        })
    return found


@pytest.fixture(scope="module")
def store(chdb_store_url: str) -> Iterator[ListeningStore]:
    settings = Settings(store_url=chdb_store_url, store_retention_days=3650)
    store = ListeningStore.open(settings, database="unit_themes")
    for table in (store.table, THEME_MENTIONS, THEME_CENTROIDS, THEME_LANGUAGES):
        store.command(f"TRUNCATE TABLE {store.location.database}.{table.split('.')[-1]}")
    yield store
    store.close()


def insert(store: ListeningStore, batch: list[dict[str, Any]]) -> None:
    store.insert(RowEncoder({"telvia": "brand"}).encode_dicts(batch).payload)


def themes_of(store: ListeningStore) -> dict[str, set[int]]:
    rows = store.query(ThemesJob(store).sql.pool(Period(START, START + 9 * DAY), 0))
    assert rows == []
    found: dict[str, set[int]] = {}
    for mention_id, theme_id in store.query(_assignments(store)):
        found.setdefault(mention_id.split("-")[0], set()).add(int(theme_id))
    return found


def _assignments(store: ListeningStore) -> Any:
    return BoundQuery(f"SELECT id, theme_id FROM {store.location.database}.{THEME_MENTIONS} "
                      "FINAL ORDER BY id")


def test_job_spawns_assigns_incrementally_and_reports(store: ListeningStore) -> None:
    embed = CountingEmbed()
    job = ThemesJob(store, embed=embed, settings=JobSettings(lookback=9 * DAY))
    day_one = mentions("billing", 12, 0, 0) + mentions("coverage", 10, 0, 100)
    insert(store, day_one)
    first = job.run(START + DAY)
    assert (first.mentions, first.new_themes, first.spawned) == (22, 2, 22)
    themes = themes_of(store)
    # one theme per topic, Spanish and English together
    assert len(themes["billing"]) == len(themes["coverage"]) == 1
    assert themes["billing"] != themes["coverage"]

    # nothing new: nothing read, nothing embedded
    embedded = embed.texts
    assert job.run(START + DAY).mentions == 0
    assert embed.texts == embedded

    # the next day: more billing (joins its theme), a new outage topic, and some shop
    day_two = (mentions("billing", 30, 1, 200) + mentions("outage", 8, 1, 300)
               + mentions("coverage", 10, 1, 400))
    insert(store, day_two)
    second = job.run(START + 2 * DAY)
    assert embed.texts == embedded + len(day_two)
    assert (second.mentions, second.assigned, second.new_themes) == (48, 40, 1)
    themes = themes_of(store)
    assert len(themes["billing"]) == 1 and len(themes["outage"]) == 1
    assert themes["outage"].isdisjoint(themes["billing"] | themes["coverage"])

    # a claimed mention's vector is not kept (its theme's centroid is)
    kept = store.query(BoundQuery(
        f"SELECT countIf(length(embedding) > 0), count() FROM {store.location.database}."
        f"{THEME_MENTIONS} FINAL WHERE theme_id != 0"))
    assert kept == [(0, 70)]

    # a theme's first sighting stays; the new one is first seen in this run
    first_seen = {theme_id: seen.replace(tzinfo=UTC) for theme_id, _, _, seen
                  in store.query(job.sql.themes())}
    assert first_seen[min(themes["billing"])] == START + DAY
    assert first_seen[min(themes["outage"])] == START + 2 * DAY

    report = themes_report(store, ThemesQuery("telvia", Period(START + DAY, START + 2 * DAY)))
    listed = {tuple(theme["label"][:1]): theme for theme in report["themes"]}
    assert report["analysed"] == 48 and report["unassigned"] == 0
    first_theme = report["themes"][0]
    # emerging first: the outage is new and the billing theme tripled
    assert first_theme["emerging"] and first_theme["theme_id"] in (
        themes["outage"] | themes["billing"])
    outage = next(theme for theme in report["themes"]
                  if theme["theme_id"] in themes["outage"])
    assert outage["new"] and outage["previous"] == 0 and outage["mentions"] == 8
    assert {"apagón", "outage"} & set(outage["label"])
    assert outage["languages"] == {"en": 4, "es": 4}
    assert outage["sentiment"] == {"negative": 8, "neutral": 0, "positive": 0}
    assert len(outage["samples"]) == 3 and "Telvia" in outage["samples"][0]["text"]
    billing = next(theme for theme in report["themes"]
                   if theme["theme_id"] in themes["billing"])
    assert (billing["mentions"], billing["previous"], billing["change"]) == (30, 12, 1.5)
    coverage = next(theme for theme in report["themes"]
                    if theme["theme_id"] in themes["coverage"])
    assert not coverage["emerging"] and coverage["change"] == 0.0
    assert listed and report["last_run"] is not None
