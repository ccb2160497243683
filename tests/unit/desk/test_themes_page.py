"""``GET /api/themes`` and the Temas page over the desk's store, after a themes job run.

The job embeds with a hashed bag of the mentions' words (any ``embed`` function will do; the
real encoder has its own test): generated mentions from one template share words, so they
form themes the way real ones share meaning.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from typing import Any

import httpx
import numpy as np
import pytest

from pipeline.stages.alerts.terms import mention_terms
from pipeline.store.client import ListeningStore
from pipeline.themes_job import ThemesJob
from tests.unit.desk.conftest import NOW

BRAND = "acme-mobile"


def hashed_words(texts: Sequence[str]) -> np.ndarray:
    """Each text's content words hashed into 64 counts, made unit length."""
    vectors = np.zeros((len(texts), 64), dtype=np.float32)
    for row, text in enumerate(texts):
        for word in mention_terms(text)[0]:
            vectors[row, zlib.crc32(word.encode()) % 64] += 1.0
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-6)


@pytest.fixture(scope="module")
def themed(store: ListeningStore) -> None:
    ThemesJob(store, embed=hashed_words).run(NOW)


def test_the_api_lists_the_brands_themes_emerging_first(
        themed: None, desk: httpx.Client, scored_mentions: list[dict[str, Any]]) -> None:
    answer = desk.get("/api/themes", params={"brand": BRAND})
    assert answer.status_code == 200, answer.text
    report = answer.json()
    brand_mentions = sum(BRAND in mention["brands"] for mention in scored_mentions)
    assert report["analysed"] == brand_mentions
    themes = report["themes"]
    assert themes and report["last_run"] is not None
    assert report["analysed"] >= sum(theme["mentions"] for theme in themes) + report["unassigned"]
    flags = [theme["emerging"] for theme in themes]
    assert flags == sorted(flags, reverse=True)
    for theme in themes:
        assert theme["label"] and theme["mentions"] > 0
        assert sum(theme["sentiment"].values()) == theme["mentions"]
        assert sum(theme["languages"].values()) == theme["mentions"]
        assert 1 <= len(theme["samples"]) <= 3
        # the whole period is new to the job: every theme is new against the day before
        assert theme["previous"] == 0 and theme["new"]


def test_the_api_needs_a_brand_and_a_sane_limit(desk: httpx.Client) -> None:
    missing = desk.get("/api/themes")
    assert missing.status_code == 400 and missing.json()["error"]["field"] == "brand"
    too_many = desk.get("/api/themes", params={"brand": BRAND, "limit": "51"})
    assert too_many.status_code == 400 and too_many.json()["error"]["field"] == "limit"


def test_the_page_shows_the_apis_themes_in_its_order(themed: None, desk: httpx.Client) -> None:
    api = desk.get("/api/themes", params={"brand": BRAND}).json()["themes"]
    page = desk.get("/themes", params={"brand": BRAND})
    assert page.status_code == 200
    assert "Temas de conversación" in page.text
    shown = [int(found) for found in re.findall(r'data-theme="(\d+)"', page.text)]
    assert shown == [theme["theme_id"] for theme in api]
    assert " · ".join(api[0]["label"]) in page.text
    if any(theme["emerging"] for theme in api):
        assert ">Emergente<" in page.text


def test_a_brand_without_themes_says_so(desk: httpx.Client) -> None:
    page = desk.get("/themes", params={"brand": BRAND, "period": "custom",
                                        "since": "2020-01-01T00:00", "until": "2020-01-02T00:00"})
    assert page.status_code == 200
    assert "Aún no hay temas de esta marca en el periodo." in page.text
