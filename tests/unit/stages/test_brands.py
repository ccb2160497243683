from pathlib import Path

import pytest

from pipeline.config import PACKAGE_DATA
from pipeline.stages.brand_query import QuerySyntaxError, parse_query
from pipeline.stages.brands import (
    BrandMatcher,
    BrandRulesError,
    brand_rules_from_dicts,
    load_brand_rules,
)
from pipeline.text import _TOKEN, fold, tokenize


def matcher(*queries: str, **extra: object) -> BrandMatcher:
    return BrandMatcher(brand_rules_from_dicts(
        [{"id": f"b{i}", "query": q, **extra} for i, q in enumerate(queries)]
    ))


def test_tokens_fold_case_and_accents_and_keep_hashtags_handles() -> None:
    assert tokenize("¡Telefónica! #Fibra @MoviStar l\u2019app") == [
        "telefonica", "#fibra", "@movistar", "l'app",
    ]


@pytest.mark.parametrize("text", [
    "l\u2019app d\u2019Acme", "\u2019quoted\u2019 words", "rock\u2019n\u2019roll",
    "it\u2019\u2019s", "#acme\u2019s @acme\u2019 \u2019@x", "o\u2019\u2019 \u2019\u2019",
    "na\u00efve caf\u00e9\u2019s",
])
def test_apostrophes_become_plain_ones_as_if_replaced_in_each_token(text: str) -> None:
    """Replacing the typographic apostrophe in the text first finds the same tokens."""
    per_token = [token.replace("\u2019", "'") for token in _TOKEN.findall(fold(text))]
    assert tokenize(text) == per_token


@pytest.mark.parametrize(
    ("query", "text", "matches"),
    [
        ("telefonica", "TELEFÓNICA sin servicio", True),
        ("telefonica", "telefonicas", False),
        ('"acme mobile"', "I love Acme   Mobile!", True),
        ('"acme mobile"', "acme is not mobile", False),
        ("telef*", "telefonía móvil", True),
        ("telef*", "la tele", False),
        ("#acme", "#acme down", True),
        ("#acme", "acme down", False),
        ("acme", "#Acme down", True),
        ("@acme", "thanks @acme", True),
        ("@acme", "thanks acme", False),
        ("acme AND (caro OR cara)", "acme es cara", True),
        ("acme AND (caro OR cara)", "acme es barata", False),
        ("acme NOT roadrunner", "acme and the roadrunner", False),
        ("acme phone", "phone from acme", True),  # juxtaposition is AND
        ("acme NEAR/2 fraude", "acme es fraude", True),
        ("acme NEAR/2 fraude", "acme es un gran fraude", False),
        ("acme NEAR/3f fraude", "fraude de acme", False),
        ("acme NEAR/3 fraude", "fraude de acme", True),
        ('(acme OR "acme mobile") NEAR/1 outage', "acme mobile outage", True),
    ],
)
def test_query_semantics(query: str, text: str, matches: bool) -> None:
    assert (matcher(query).match(text) == ["b0"]) is matches


@pytest.mark.parametrize(
    ("query", "position", "message"),
    [
        ("acme AND", 8, "ends where a term"),
        ("(acme OR telvia", 0, "missing closing parenthesis"),
        ('acme "mobile', 5, "unterminated"),
        ("ac*me", 0, "only allowed at the end"),
        ("a*", 0, "two letters"),
        ("NOT acme", 0, "not negated"),
        ("acme NEAR/2 (a AND b)", 12, "NEAR takes"),
        ("acme OR OR x", 8, "expected a term"),
        ("()", 1, "empty parentheses"),
    ],
)
def test_invalid_queries_report_the_position(query: str, position: int, message: str) -> None:
    with pytest.raises(QuerySyntaxError) as caught:
        parse_query(query)
    assert caught.value.position == position
    assert message in str(caught.value)


def test_languages_and_exclusions() -> None:
    rules = brand_rules_from_dicts([
        {"id": "lumo", "query": "lumo", "languages": ["es"], "exclude": '"lumo lamp"'},
    ])
    lumo = BrandMatcher(rules)
    assert lumo.match("vuelo de lumo", "es") == ["lumo"]
    assert lumo.match("flight with lumo", "en") == []
    assert lumo.match("flight with lumo", None) == ["lumo"]  # language unknown: not filtered
    assert lumo.match("my lumo lamp broke", "es") == []


def test_many_queries_share_one_automaton() -> None:
    rules = brand_rules_from_dicts(
        [{"id": f"brand{i}", "query": f'"brand {i}" OR #brand{i}'} for i in range(3000)]
    )
    many = BrandMatcher(rules)
    assert many.match("loving brand 1234 and #brand7") == ["brand7", "brand1234"]


def test_rules_file_errors_name_the_brand_and_position(tmp_path: Path) -> None:
    bad = tmp_path / "brands.yaml"
    bad.write_text("brands:\n  - id: acme\n    query: 'acme AND (x'\n")
    with pytest.raises(BrandRulesError, match=r"brand #1 \(acme\).*position 9"):
        load_brand_rules(bad)
    bad.write_text("brands:\n  - id: Acme!\n    query: acme\n")
    with pytest.raises(BrandRulesError, match="'id' must be"):
        load_brand_rules(bad)


def test_example_rules_file_loads() -> None:
    rules = load_brand_rules(PACKAGE_DATA / "brands.example.yaml")
    assert {rule.kind for rule in rules} == {"brand", "competitor", "market"}
    example = BrandMatcher(rules)
    assert example.match("Banco Nimbus me cobra comisiones") == ["nimbus-bank"]
    assert example.match("nimbus bank weather app") == []
    assert example.match("la fibra es muy cara y el 5g muy caro en Acme Móvil") == [
        "acme-mobile", "mobile-prices",
    ]


def test_brands_name_their_own_accounts_and_employees_optionally() -> None:
    rules = brand_rules_from_dicts([
        {"id": "acme", "query": "acme", "accounts": ["@acme", "acme_help"],
         "employees": ["*_acme"]},
        {"id": "telvia", "query": "telvia"},
    ])
    assert (rules[0].accounts, rules[0].employees) == (("@acme", "acme_help"), ("*_acme",))
    assert (rules[1].accounts, rules[1].employees) == ((), ())
    example = {rule.id: rule for rule in load_brand_rules(PACKAGE_DATA / "brands.example.yaml")}
    assert example["acme-mobile"].accounts and example["telvia"].accounts == ()


@pytest.mark.parametrize("value", ["acme", [""], ["@"], [3], {"a": 1}])
def test_bad_inside_handles_name_the_brand_and_key(value: object) -> None:
    with pytest.raises(BrandRulesError, match=r"\(acme\): 'employees' must be a list"):
        brand_rules_from_dicts([{"id": "acme", "query": "acme", "employees": value}])


def test_repeated_texts_reuse_the_verdict_per_language_and_stay_bounded() -> None:
    restricted = BrandMatcher(brand_rules_from_dicts([
        {"id": "acme", "query": "acme", "languages": ["es"]}, {"id": "any", "query": "caida"},
    ]), cache_size=2)
    text = "Acme: otra caída"
    assert restricted.match(text, "es") == ["acme", "any"]
    assert restricted.match(text, "en") == ["any"]
    # a caller may change its list without changing the next caller's
    restricted.match(text, "es").append("mutated")
    assert restricted.match(text, "es") == ["acme", "any"]
    restricted.match("acme again", None)
    assert len(restricted._verdicts) == 2


# queries whose terms may start in a retweet's "RT @ana: " (a handle, "rt", a phrase across
# the prefix's end, handle prefixes) and ones that only the copied text can hold
RETWEET_QUERIES = [
    "acme", '"acme support"', "@acme", "#acme", "acm*", '"@ana acme"', "rt", "@an*",
    "acme NEAR/2 down", "acme NOT down", '"ana acme"', '"rt @ana acme"', "ana",
]
COPIED_TEXTS = [
    "acme is down", "Acme support never answers", "@acme down again", "#acme down",
    "acmes everywhere", "down down acme", "nothing here", "ana acme", "", "RT @bo: acme",
    "Acme\u2019s support, down", "ACME   support",
]


@pytest.mark.parametrize("query", RETWEET_QUERIES)
def test_a_retweet_is_named_only_when_it_matches_as_the_text_it_copies(query: str) -> None:
    single = matcher(query)
    for copied in COPIED_TEXTS:
        for handle in ("ana", "acme", "bo"):
            retweet = f"RT @{handle}: {copied}"
            named = single.retweeted(retweet)
            assert named in (None, copied)
            if named is not None:
                assert single.match(retweet) == single.match(copied), (query, retweet)
    # the prefix's own occurrences are what make it answer None
    assert matcher("@ana").retweeted("RT @ana: acme is down") is None
    assert matcher('"@ana acme"').retweeted("RT @ana: acme is down") is None
    assert matcher("rt").retweeted("RT @bo: hi") is None
    assert matcher("acme").retweeted("RT @ana: acme is down") == "acme is down"
    assert matcher("acme", '"is down"').retweeted("RT @ana: acme is down") == "acme is down"
    assert matcher("acme").retweeted("acme is down") is None  # not a retweet
    # an exact handle term is not a prefix term: "@an" does not start at "@ana"
    assert matcher("@an").retweeted("RT @ana: acme is down") == "acme is down"
    assert matcher("@an*").retweeted("RT @ana: acme is down") is None


def test_retweets_of_the_example_rules_match_as_the_texts_they_copy() -> None:
    example = BrandMatcher(load_brand_rules(PACKAGE_DATA / "brands.example.yaml"))
    texts = [
        "Banco Nimbus me cobra comisiones", "la fibra es muy cara en Acme Móvil",
        "nimbus bank weather app", "@AcmeMovil sin servicio", "#nimbus caído otra vez",
    ]
    named = 0
    for text in texts:
        for handle in ("AcmeMovil", "bancnimbus", "maria_88", "acme"):
            retweet = f"RT @{handle}: {text}"
            if example.retweeted(retweet) is not None:
                named += 1
                for lang in (None, "es", "en"):
                    assert example.match(retweet, lang) == example.match(text, lang)
    assert named >= len(texts) * 2  # most handles start no term
