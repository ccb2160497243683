"""The opinion leaders' scoring core: components, ranking, groups, rising voices, stance."""

from __future__ import annotations

import pytest

from pipeline.stages.leaders import (
    SLICES,
    WEIGHTS,
    AuthorActivity,
    InsideVoices,
    glob_to_like,
    mark_rising,
    rank_leaders,
    score_authors,
    stance_of,
)


def activity(author_id: str, *, handle: str = "", followers: int = 100, mentions: int = 1,
             engagement: int = 0, copies: int = 0, echoers: int = 0, echo_reach: int = 0,
             active: int = 1, sentiment: tuple[int, int, int] = (0, 1, 0)) -> AuthorActivity:
    return AuthorActivity(author_id, handle or author_id, followers, mentions, mentions,
                          engagement, copies, echoers, echo_reach, active, *sentiment)


def test_weights_share_one_hundred_points() -> None:
    assert sum(WEIGHTS.values()) == pytest.approx(1.0)


def test_the_loudest_on_every_component_scores_one_hundred() -> None:
    best = activity("best", followers=5000, engagement=80, copies=40, echoers=30,
                    echo_reach=9000, active=SLICES)
    other = activity("other", followers=50, engagement=2, copies=1, echoers=1, echo_reach=10)
    scored = {leader.author_id: leader for leader in score_authors([other, best])}
    assert scored["best"].score == pytest.approx(100.0)
    assert sum(scored["other"].points.values()) == pytest.approx(scored["other"].score, abs=0.05)
    assert set(scored["other"].points) == set(WEIGHTS)


def test_a_huge_audience_nobody_repeats_ranks_below_voices_people_repeat() -> None:
    bot = activity("bot", followers=3_000_000, mentions=120, active=SLICES)
    echoed = [activity(f"voice{i}", followers=900, mentions=3, copies=20 + i, echoers=15 + i,
                       echo_reach=4000, engagement=25, active=3) for i in range(10)]
    crowd = [activity(f"user{i}", followers=200 + i, copies=i % 2, echoers=i % 2,
                      echo_reach=150 * (i % 2)) for i in range(200)]
    ranked = rank_leaders([bot, *echoed, *crowd], limit=10)
    assert [leader.author_id for leader in ranked] == [f"voice{i}" for i in range(9, -1, -1)]


def test_more_distinct_echoers_beat_the_same_copies_by_one_fan() -> None:
    many = activity("many", copies=20, echoers=20, echo_reach=2000)
    one_fan = activity("one_fan", copies=20, echoers=1, echo_reach=2000)
    assert [leader.author_id for leader in rank_leaders([one_fan, many])] == ["many", "one_fan"]


def test_steady_voices_outrank_a_one_off_burst_of_equal_echo() -> None:
    steady = activity("steady", copies=10, echoers=10, active=SLICES)
    burst = activity("burst", copies=10, echoers=10, active=1)
    ranked = rank_leaders([burst, steady])
    assert [leader.author_id for leader in ranked] == ["steady", "burst"]
    assert ranked[0].points["consistency"] > ranked[1].points["consistency"]


def test_inside_voices_rank_apart_from_outside_ones() -> None:
    inside = InsideVoices(accounts=("@AcmeMobile",), employees=("*_acme", "lucia_?"))
    authors = [activity("a", handle="acmemobile", copies=50, echoers=40),
               activity("b", handle="pedro_acme", copies=5, echoers=5),
               activity("c", handle="lucia_7", copies=1, echoers=1),
               activity("d", handle="lucia_77", copies=30, echoers=30),
               activity("e", handle="ana_1", copies=2, echoers=2)]
    ranked = rank_leaders(authors, inside)
    groups = {leader.author_id: (leader.role, leader.rank) for leader in ranked}
    assert groups == {"a": ("account", 1), "b": ("employee", 2), "c": ("employee", 3),
                      "d": (None, 1), "e": (None, 2)}


def test_limit_applies_per_group() -> None:
    inside = InsideVoices(employees=("staff_*",))
    authors = [activity(f"o{i}", copies=i, echoers=i) for i in range(5)] + [
        activity(f"s{i}", handle=f"staff_{i}", copies=i, echoers=i) for i in range(5)]
    ranked = rank_leaders(authors, inside, limit=2)
    assert [(leader.author_id, leader.rank) for leader in ranked if leader.inside] == [
        ("s4", 1), ("s3", 2)]
    assert [leader.author_id for leader in ranked if not leader.inside] == ["o4", "o3"]


@pytest.mark.parametrize("limit", [None, 1, 3, 40])
def test_ranking_keeps_score_order_within_each_group(limit: int | None) -> None:
    inside = InsideVoices(employees=("staff_*",))
    authors = [activity(f"o{i}", followers=37 * i % 500, engagement=i % 7, copies=i % 11,
                        echoers=i % 5, echo_reach=i * 13 % 90, active=i % SLICES + 1)
               for i in range(30)]
    authors += [activity(f"s{i}", handle=f"staff_{i}", copies=i % 4, echoers=i % 3)
                for i in range(6)]
    scored = score_authors(authors, inside)
    ranked = rank_leaders(authors, inside, limit=limit)
    for group in (True, False):
        expected = [leader for leader in scored if leader.inside == group][:limit]
        kept = [leader for leader in ranked if leader.inside == group]
        assert [(leader.author_id, leader.score, leader.points, leader.role, leader.stance)
                for leader in kept] == [
            (leader.author_id, leader.score, leader.points, leader.role, leader.stance)
            for leader in expected]
        assert [leader.rank for leader in kept] == list(range(1, len(expected) + 1))


def test_rising_voices_are_new_to_their_groups_top_list() -> None:
    before = rank_leaders([activity("old", copies=9, echoers=9),
                           activity("faded", copies=8, echoers=8),
                           activity("climber", copies=1, echoers=1)], limit=2)
    now = mark_rising(rank_leaders([activity("climber", copies=20, echoers=20),
                                    activity("old", copies=9, echoers=9),
                                    activity("newcomer", copies=5, echoers=5)], limit=2),
                      before)
    shown = {leader.author_id: (leader.rising, leader.previous_rank) for leader in now}
    # the climber was third before: outside the previous top two, so rising
    assert shown == {"climber": (True, None), "old": (False, 1)}


def test_nobody_rises_against_a_previous_period_with_fewer_voices() -> None:
    now = rank_leaders([activity("a", copies=3, echoers=3), activity("b")])
    assert [leader.rising for leader in mark_rising(now, [])] == [False, False]
    before = rank_leaders([activity("c")])
    assert [leader.rising for leader in mark_rising(now, before)] == [False, False]


@pytest.mark.parametrize(("sentiment", "stance"), [
    ((0, 1, 4), "advocate"), ((3, 1, 0), "detractor"), ((2, 4, 2), "neutral"),
    ((0, 0, 0), "neutral"), ((1, 2, 2), "neutral"), ((0, 3, 1), "advocate"),
])
def test_stance_follows_the_net_sentiment_of_their_mentions(
        sentiment: tuple[int, int, int], stance: str) -> None:
    assert stance_of(activity("a", sentiment=sentiment)) == stance


def test_handles_match_patterns_ignoring_case_and_at_signs() -> None:
    inside = InsideVoices(accounts=("@ACME",), employees=("j?hn_*",))
    assert inside.role("@acme") == "account"
    assert inside.role("Acme") == "account"
    assert inside.role("acme2") is None
    assert inside.role("JOHN_smith") == "employee"
    assert inside.role("") is None


@pytest.mark.parametrize(("glob", "like"), [
    ("acme_*", "acme\\_%"), ("j?hn", "j_hn"), ("100%", "100\\%"), ("a\\b", "a\\\\b"),
])
def test_globs_become_like_patterns_with_the_rest_literal(glob: str, like: str) -> None:
    assert glob_to_like(glob) == like


def test_no_authors_rank_to_nothing() -> None:
    assert rank_leaders([]) == []
