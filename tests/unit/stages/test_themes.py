"""The themes' pure cores: the theme book, language centring, labels, trends."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.stages.themes.book import (
    UNASSIGNED,
    LanguageMeans,
    ThemeBook,
    ThemeSettings,
    center_by_language,
)
from pipeline.stages.themes.labels import theme_labels
from pipeline.stages.themes.trends import emerging_first, trend

SETTINGS = ThemeSettings(assign_similarity=0.7, spawn_similarity=0.7, min_size=3)


def around(axis: int, count: int, seed: int, dims: int = 6) -> np.ndarray:
    """``count`` unit vectors scattered a little around one axis."""
    rng = np.random.default_rng(seed)
    vectors = rng.normal(0, 0.08, (count, dims)).astype(np.float32)
    vectors[:, axis] += 1.0
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_spawn_makes_a_theme_per_dense_group_and_leaves_strays() -> None:
    book = ThemeBook(SETTINGS)
    stray = np.eye(6, dtype=np.float32)[[5]]
    pool = np.vstack([around(0, 5, 1), around(1, 4, 2), stray])
    ids = book.spawn(pool)
    assert len(set(ids[:5].tolist())) == 1 and len(set(ids[5:9].tolist())) == 1
    assert ids[0] != ids[5] and UNASSIGNED not in ids[:9].tolist()
    assert ids[9] == UNASSIGNED
    assert sorted(book.themes) == [1, 2]
    assert {theme.size for theme in book.themes.values()} == {5, 4}


def test_a_group_below_the_least_size_stays_in_the_pool() -> None:
    book = ThemeBook(SETTINGS)
    assert book.spawn(around(2, 2, 3)).tolist() == [UNASSIGNED, UNASSIGNED]
    assert book.themes == {}


def test_new_mentions_join_the_nearest_theme_and_move_its_centroid() -> None:
    book = ThemeBook(SETTINGS)
    spawned = book.spawn(np.vstack([around(0, 5, 1), around(1, 5, 2)]))
    axis_0, axis_1 = int(spawned[0]), int(spawned[5])
    first = book.themes[axis_0].centroid.copy()
    arriving = np.vstack([around(0, 3, 4), around(3, 2, 5)])
    ids, similarity = book.assign(arriving)
    assert ids.tolist() == [axis_0, axis_0, axis_0, UNASSIGNED, UNASSIGNED]
    assert (similarity[:3] >= 0.7).all() and (similarity[3:] < 0.7).all()
    book.absorb(arriving, ids)
    assert book.themes[axis_0].size == 8 and book.themes[axis_1].size == 5
    assert not np.allclose(book.themes[axis_0].centroid, first)
    assert np.isclose(np.linalg.norm(book.themes[axis_0].centroid), 1.0)
    # the next new theme never reuses an id
    book.spawn(around(3, 3, 6))
    assert sorted(book.themes) == [1, 2, 3]


def test_an_empty_book_assigns_nothing() -> None:
    ids, similarity = ThemeBook(SETTINGS).assign(around(0, 3, 1))
    assert ids.tolist() == [0, 0, 0] and similarity.tolist() == [0, 0, 0]


def test_centring_by_language_brings_one_topic_in_two_languages_together() -> None:
    # each language shifts every text the same way; the topic is the rest
    spanish, english = np.zeros(6, np.float32), np.zeros(6, np.float32)
    spanish[4], english[5] = 2.0, 2.0
    topic_a, topic_b = around(0, 4, 1), around(1, 4, 2)
    vectors = np.vstack([topic_a + spanish, topic_b + spanish, topic_a + english,
                         topic_b + english])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    languages = ["es"] * 8 + ["en"] * 8
    raw_same_topic = float(vectors[0] @ vectors[8])
    raw_same_language = float(vectors[0] @ vectors[4])
    assert raw_same_language > raw_same_topic
    means = LanguageMeans(min_mentions=5)
    means.update(vectors, languages)
    centred = means.center(vectors, languages)
    assert float(centred[0] @ centred[8]) > 0.9 > 0 > float(centred[0] @ centred[4])


def test_a_rare_language_is_centred_by_the_mean_of_all() -> None:
    vectors = np.vstack([around(0, 60, 1), around(1, 2, 2)])
    languages = ["es"] * 60 + ["eu"] * 2
    means = LanguageMeans(min_mentions=50)
    means.update(vectors, languages)
    centred = means.center(vectors, languages)
    overall = center_by_language(vectors[60:], ["eu", "eu"], {"eu": means.means["*"]})
    np.testing.assert_allclose(centred[60:], overall, atol=1e-6)
    assert means.counts == {"es": 60, "eu": 2, "*": 62}


def test_too_few_mentions_are_not_centred_at_all() -> None:
    vectors = around(0, 10, 1)
    means = LanguageMeans(min_mentions=50)
    means.update(vectors, ["es"] * 10)
    np.testing.assert_array_equal(means.center(vectors, ["es"] * 10), vectors)


def test_labels_are_what_sets_each_theme_apart() -> None:
    labels = theme_labels({
        1: {"telvia": 20, "factura": 12, "cobro": 6, "bill": 5},
        2: {"telvia": 20, "cobertura": 9, "signal": 7},
        3: {"telvia": 20, "tienda": 3},
    }, size=3)
    # the brand's name is in every theme: it names none of them
    assert labels[1][:2] == ["factura", "cobro"] and "telvia" not in labels[1][:2]
    assert labels[2][:2] == ["cobertura", "signal"]
    assert labels[3][0] == "tienda"


def test_a_theme_without_terms_has_an_empty_label() -> None:
    assert theme_labels({1: {}, 2: {"app": 2}}) == {1: [], 2: ["app"]}


@pytest.mark.parametrize(("current", "previous", "emerging", "new"), [
    (5, 0, True, True),      # new and big enough
    (2, 0, False, True),     # new but two mentions are not a theme people talk about
    (30, 10, True, False),   # tripled, far above the Poisson spread
    (6, 2, False, False),    # tripled, but within noise
    (15, 10, False, False),  # growing slowly
    (3, 9, False, False),    # falling
])
def test_the_emerging_flag(current: int, previous: int, emerging: bool, new: bool) -> None:
    found = trend(current, previous)
    assert (found.emerging, found.new) == (emerging, new)


def test_trend_change_is_relative_to_the_previous_period() -> None:
    assert trend(15, 10).change == 0.5
    assert trend(5, 10).change == -0.5
    assert trend(4, 0).change is None


def test_emerging_themes_come_first_fastest_rise_first_then_by_volume() -> None:
    trends = {1: trend(100, 90), 2: trend(12, 0), 3: trend(40, 5), 4: trend(200, 190),
              5: trend(1, 0)}
    assert emerging_first(trends) == [3, 2, 4, 1, 5]
