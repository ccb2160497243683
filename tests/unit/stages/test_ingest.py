import json

import orjson

from pipeline.schema import decode_record
from pipeline.stages.brands import BrandMatcher, BrandRule, brand_rules_from_dicts
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


def tagged(raw: bytes, brands: list[str], **stamp: float) -> dict[str, object]:
    """The normalised record (decode_record) with FixedLanguage's guess and ``brands``."""
    record = decode_record(raw, max_text_chars=100, max_record_bytes=10_000)
    return {**record, "lang": record["text"].split()[0], "lang_score": 0.9, "brands": brands,
            **stamp}


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


def test_encoded_mentions_are_the_enriched_records_in_input_order_stamped() -> None:
    """Usual records (decoded in C) and the rest (normalised in Python) come out alike."""
    unusual = orjson.dumps({
        "id": "5", "text": "es acme y lumo", "created_at": 1_795_000_000, "source": "x",
        "author": {"id": 9}, "campaign": "launch", "lang": "stale",
    })
    raws = [raw("1", "en acme"), unusual, b"{oops", raw("2", "en nothing"), raw("3", "es lumo")]
    core = ingestor(FixedLanguage())
    outcome = core.process_encoded(raws, ingested_at=1_795_000_001.25)
    expected = [tagged(record, brands, ingested_at=1_795_000_001.25) for record, brands in zip(
        [raws[0], unusual, raws[3], raws[4]], [["acme"], ["acme", "lumo"], [], ["lumo"]],
        strict=True)]
    encoded = [orjson.loads(m.encoded) for m in outcome.mentions + outcome.unmatched]
    assert sorted(encoded, key=lambda m: m["id"]) == sorted(expected, key=lambda m: m["id"])
    assert [m.text for m in outcome.mentions] == ["en acme", "es acme y lumo", "es lumo"]
    assert [m.brands for m in outcome.mentions] == [("acme",), ("acme", "lumo"), ("lumo",)]
    assert outcome.mentions[1].created_at == "2026-11-18T11:06:40+00:00"
    assert [r.reason for r in outcome.rejects] == ["not_json"]


def spelled_out(mention_id: str, text: str) -> dict[str, object]:
    """A record that spells every key out, in the wire form's order, its time canonical."""
    return {
        "id": mention_id, "text": text, "created_at": "2026-11-22T10:00:00.250000+00:00",
        "source": "twitter", "author": {"id": "u1", "handle": "ana", "followers": 3},
        "url": None, "lang_hint": "es",
        "engagement": {"likes": 1, "reposts": 0, "replies": 0, "quotes": 2},
    }


def test_a_record_that_spells_every_key_out_is_tagged_as_it_came() -> None:
    records = [spelled_out("1", "en acme"), spelled_out("2", "es lumo é😀\u2028"),
               {**spelled_out("3", "en nothing"), "engagement": None}]
    del records[2]["engagement"]
    core = ingestor(FixedLanguage())
    outcome = core.process_encoded([orjson.dumps(record) for record in records],
                                   ingested_at=1_795_000_001.25)
    # byte for byte what encoding the tagged record gives (the same key order and numbers)
    assert [m.encoded for m in outcome.mentions + outcome.unmatched] == [orjson.dumps({
        **record, "lang": text.split()[0], "lang_score": 0.9, "brands": brands,
        "ingested_at": 1_795_000_001.25,
    }) for record, text, brands in zip(
        records, ["en acme", "es lumo", "en nothing"], [["acme"], ["lumo"], []], strict=True)]
    assert [m.brands for m in outcome.mentions] == [("acme",), ("lumo",)]


def test_spacing_order_and_absent_keys_come_out_as_the_normalised_record() -> None:
    record = spelled_out("1", "en acme")
    variants = [
        json.dumps(record, indent=2).encode(),  # spaced: tagged as it came
        orjson.dumps(dict(reversed(record.items()))),  # keys in another order
        orjson.dumps(record) + b"\n",  # ends after its brace: encoded again
        orjson.dumps({key: value for key, value in record.items() if key != "url"}),
        orjson.dumps({**record, "author": {"id": "u1"}}),
        orjson.dumps({**record, "engagement": {"likes": 4}}),
    ]
    core = ingestor(FixedLanguage())
    outcome = core.process_encoded(variants, ingested_at=None)
    assert [orjson.loads(m.encoded) for m in outcome.mentions] == [
        tagged(variant, ["acme"]) for variant in variants]
    assert len(outcome.mentions) == len(variants)


class CountingLanguage(FixedLanguage):
    """Counts the texts it is asked about."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def detect_batch(self, texts: list[str]) -> list[FixedLanguage.Guess]:
        self.asked.extend(texts)
        return super().detect_batch(texts)


def test_a_text_seen_lately_is_tagged_without_asking_the_detector_again() -> None:
    language = CountingLanguage()
    rules = brand_rules_from_dicts([{"id": "lumo", "query": "lumo", "languages": ["es"]}])
    core = Ingestor(BrandMatcher(rules), max_text_chars=100, max_record_bytes=10_000,
                    language_detector=language, tags_cache_size=2)
    texts = ["es lumo", "en lumo", "es lumo", "fr hola", "es lumo", "en lumo"]
    first = core.process([raw(str(index), text) for index, text in enumerate(texts)])
    # each new text once, even the two that the 2-entry cache no longer holds at the end
    assert language.asked == ["es lumo", "en lumo", "fr hola"]
    assert [(m["id"], m["lang"], m["brands"]) for m in first.mentions] == [
        ("0", "es", ["lumo"]), ("2", "es", ["lumo"]), ("4", "es", ["lumo"])]
    assert [(m["id"], m["lang"]) for m in first.unmatched] == [
        ("1", "en"), ("3", "fr"), ("5", "en")]
    second = core.process([raw("6", "fr hola"), raw("7", "es lumo")])
    assert language.asked[3:] == ["es lumo"]  # "fr hola" was still held, "es lumo" evicted
    assert [(m["id"], m["brands"]) for m in second.mentions] == [("7", ["lumo"])]
    # a held text, then two new ones that evict it while the batch is being tagged
    third = core.process([raw("8", "fr hola"), raw("9", "es otro"), raw("10", "es lumo")])
    assert language.asked[4:] == ["es otro"]
    assert [(m["id"], m["lang"]) for m in third.unmatched] == [("8", "fr"), ("9", "es")]
    assert [m["id"] for m in third.mentions] == ["10"]


class CountingMatcher(BrandMatcher):
    """Records the texts it matches."""

    def __init__(self, rules: list[BrandRule]) -> None:
        super().__init__(rules, cache_size=0)
        self.matched: list[str] = []

    def match(self, text: str, lang: str | None = None) -> list[str]:
        self.matched.append(text)
        return super().match(text, lang)


class FirstWordAfterRetweet(FixedLanguage):
    """The language is the first word after a retweet's prefix (as the real detector drops it)."""

    def detect_batch(self, texts: list[str]) -> list[FixedLanguage.Guess]:
        return super().detect_batch([text.split(": ", 1)[-1] for text in texts])


def test_a_retweet_of_a_known_text_takes_its_brands_without_a_match() -> None:
    rules = brand_rules_from_dicts([
        {"id": "acme", "query": "acme OR @acme"},
        {"id": "lumo", "query": "lumo", "languages": ["es"]},
    ])
    matcher = CountingMatcher(rules)
    core = Ingestor(matcher, max_text_chars=100, max_record_bytes=10_000,
                    language_detector=FirstWordAfterRetweet())
    texts = ["es acme y lumo", "RT @ana: es acme y lumo", "RT @acme: es lumo",
             "RT @bo: es acme y lumo", "RT @ana: en lumo"]
    outcome = core.process([raw(str(index), text) for index, text in enumerate(texts)])
    assert [(m["id"], m["brands"]) for m in outcome.mentions] == [
        ("0", ["acme", "lumo"]), ("1", ["acme", "lumo"]), ("2", ["acme", "lumo"]),
        ("3", ["acme", "lumo"])]
    # the two retweets of the known text took its brands; a handle that is a term, and a
    # text never seen, were matched
    assert matcher.matched == ["es acme y lumo", "RT @acme: es lumo", "RT @ana: en lumo"]
    assert [m["id"] for m in outcome.unmatched] == ["4"]


def test_a_retweet_in_another_language_than_its_copy_is_matched_itself() -> None:
    rules = brand_rules_from_dicts([{"id": "lumo", "query": "lumo", "languages": ["es"]}])
    matcher = CountingMatcher(rules)
    # this detector reads the retweet's "RT" as its language: the copy's verdict, for
    # Spanish, must not be taken
    core = Ingestor(matcher, max_text_chars=100, max_record_bytes=10_000,
                    language_detector=FixedLanguage())
    outcome = core.process([raw("1", "es lumo"), raw("2", "RT @ana: es lumo")])
    assert [m["id"] for m in outcome.mentions] == ["1"]
    assert matcher.matched == ["es lumo", "RT @ana: es lumo"]


def test_a_source_s_own_tag_of_another_type_is_rejected_not_routed() -> None:
    # without detection ingest leaves a source's "lang" as it came: a routed mention's is text
    record = {**spelled_out("1", "en acme"), "lang": 7}
    outcome = ingestor().process_encoded([orjson.dumps(record), raw("2", "en acme")])
    assert [m.text for m in outcome.mentions] == ["en acme"]
    assert [(r.reason, r.raw) for r in outcome.rejects] == [("wrong_type", orjson.dumps(record))]
