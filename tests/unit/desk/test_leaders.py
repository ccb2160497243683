"""``GET /api/leaders`` and the Voces page over HTTP: a real uvicorn over the desk's store.

The desk's store holds the demo firehose with its crisis (``conftest.py``); the example
brands file names acme-mobile's own accounts and employees.
"""

from typing import Any

import httpx

from pipeline.config import Settings
from pipeline.connectors.generator import FirehoseGenerator
from pipeline.stages.brands import load_brand_rules
from pipeline.stages.leaders import InsideVoices
from tests.unit.desk.conftest import CRISIS, START

Mention = dict[str, Any]


def inside() -> InsideVoices:
    rule = next(rule for rule in load_brand_rules(Settings().brands_file)
                if rule.id == "acme-mobile")
    return InsideVoices(rule.accounts, rule.employees)


def test_leaders_answer_both_groups_with_their_components(
        desk: httpx.Client, scored_mentions: list[Mention]) -> None:
    answer = desk.get("/api/leaders", params={"brand": "acme-mobile", "limit": "5"})
    assert answer.status_code == 200
    body = answer.json()
    assert len(body["outside"]) == 5
    scores = [leader["score"] for leader in body["outside"]]
    assert scores == sorted(scores, reverse=True)
    assert [leader["rank"] for leader in body["outside"]] == [1, 2, 3, 4, 5]
    for leader in body["outside"] + body["inside"]:
        assert set(leader["points"]) == set(body["weights"])
        assert 0 < len(leader["recent"]) <= 3
        theirs = [mention for mention in scored_mentions
                  if mention["author"]["id"] == leader["author_id"]
                  and "acme-mobile" in mention["brands"]]
        assert leader["activity"]["mentions"] == len(theirs)
        assert {item["id"] for item in leader["recent"]} <= {m["id"] for m in theirs}
    roles = inside()
    for leader in body["inside"]:
        assert roles.role(leader["handle"]) == leader["role"] is not None
    assert all(roles.role(leader["handle"] or "") is None for leader in body["outside"])


def test_the_crisis_voices_lead_the_outside_ranking(desk: httpx.Client) -> None:
    # the crisis is driven by the firehose's eight loudest accounts and their copies
    loud = {author.id for author in FirehoseGenerator(
        seed=11, start=START, crisis=CRISIS)._crisis_voices}
    body = desk.get("/api/leaders", params={"brand": "acme-mobile", "limit": "10"}).json()
    assert len(loud & {leader["author_id"] for leader in body["outside"][:10]}) >= 4


def test_leaders_refuse_a_question_without_one_brand(desk: httpx.Client) -> None:
    answer = desk.get("/api/leaders", params={"brand": "acme-mobile,telvia"})
    assert answer.status_code == 400
    assert answer.json()["error"]["field"] == "brand"


def test_the_voices_page_shows_leaders_apart_and_in_english_too(desk: httpx.Client) -> None:
    page = desk.get("/voices", params={"brand": "acme-mobile"})
    assert page.status_code == 200
    assert "Líderes de opinión" in page.text and "Voces externas" in page.text
    assert 'data-group="outside"' in page.text
    assert "Por qué y menciones recientes" in page.text
    with httpx.Client(base_url=desk.base_url, cookies={"desk_lang": "en"}) as reader:
        english = reader.get("/voices", params={"brand": "telvia"})
    assert "Opinion leaders" in english.text and "Outside voices" in english.text
    # telvia names no accounts of its own: the page says how to add them
    assert "accounts, employees" in english.text
