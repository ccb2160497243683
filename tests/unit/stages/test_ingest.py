import orjson

from pipeline.stages.brands import BrandMatcher, brand_rules_from_dicts
from pipeline.stages.ingest import Ingestor


class FixedLanguage:
    """A detector stand-in that reads the language from the text's first word."""

    class Guess:
        def __init__(self, lang: str) -> None:
            self.lang = lang
            self.score = 0.9

    def detect_batch(self, texts: list[str]) -> list["FixedLanguage.Guess"]:
        return [self.Guess(text.split()[0]) for text in texts]


def raw(mention_id: str, text: str) -> bytes:
    return orjson.dumps({
        "id": mention_id, "text": text, "created_at": "2026-11-22T10:00:00Z",
        "source": "twitter", "author": {"id": "u1"},
    })


def ingestor(language: FixedLanguage | None = None) -> Ingestor:
    rules = brand_rules_from_dicts([
        {"id": "acme", "query": "acme"}, {"id": "lumo", "query": "lumo", "languages": ["es"]},
    ])
    return Ingestor(
        BrandMatcher(rules), max_text_chars=100, max_record_bytes=10_000,
        language_detector=language,
    )


def test_batch_is_split_into_tagged_unmatched_and_rejects() -> None:
    outcome = ingestor().process([
        raw("1", "acme is down"), b"{oops", raw("2", "nothing here"), raw("3", "acme and lumo"),
    ])
    assert [m["id"] for m in outcome.mentions] == ["1", "3"]
    assert outcome.mentions[1]["brands"] == ["acme", "lumo"]
    assert [m["id"] for m in outcome.unmatched] == ["2"]
    assert [(r.raw, r.reason) for r in outcome.rejects] == [(b"{oops", "not_json")]
    # no language stage configured: the field is absent, not a placeholder
    assert "lang" not in outcome.mentions[0]


def test_language_restricts_brand_queries() -> None:
    outcome = ingestor(FixedLanguage()).process([raw("1", "en lumo rocks"), raw("2", "es lumo")])
    assert [(m["id"], m["lang"], m["brands"]) for m in outcome.mentions] == [("2", "es", ["lumo"])]
    assert outcome.unmatched[0]["lang"] == "en"
