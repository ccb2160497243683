from __future__ import annotations

from pipeline.config import Settings
from pipeline.connectors.sources.filtering import QueryPrefilter, html_to_text
from pipeline.stages.brands import brand_rules_from_dicts, load_brand_rules


def test_the_prefilter_passes_what_a_query_matches_whatever_the_language() -> None:
    rules = brand_rules_from_dicts([
        {"id": "lumo", "query": '"lumo air" OR #lumoair', "languages": ["en"]},
        {"id": "nimbus", "query": '"nimbus bank" AND NOT weather'},
    ])
    keep = QueryPrefilter(rules)
    assert keep("Vuelo cancelado con Lumo Air otra vez")  # Spanish, rule says en: ingest decides
    assert keep("#LumoAir")
    assert not keep("Nimbus Bank weather report")
    assert not keep("nada que ver")
    assert QueryPrefilter(rules, enabled=False)("nada que ver")


def test_hashtags_pushed_to_mastodon_come_from_the_example_queries() -> None:
    tags = QueryPrefilter(load_brand_rules(Settings().brands_file)).hashtags()
    assert {"telvia", "lumoair", "acmemobile", "nimbusbank"} <= set(tags)
    assert not any(" " in tag or tag.endswith("*") for tag in tags)
    assert "weather" not in tags  # a NOT term never triggers a stream
    assert "caro" not in tags and "fibra" not in tags  # NEAR terms cannot match alone


def test_html_to_text_drops_scripts_and_keeps_paragraphs() -> None:
    assert html_to_text("<div>uno</div><script>alert(1)</script><div>dos &eacute;</div>") == (
        "uno\n\ndos é")
    assert html_to_text("sin etiquetas") == "sin etiquetas"
