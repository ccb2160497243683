from collections import Counter
from datetime import UTC, datetime, timedelta

from pipeline.config import PACKAGE_DATA
from pipeline.connectors.generator import CrisisPlan, FirehoseGenerator
from pipeline.schema import decode_mention
from pipeline.stages.brands import BrandMatcher, load_brand_rules

START = datetime(2026, 11, 2, 12, tzinfo=UTC)


def test_same_seed_same_firehose() -> None:
    first = list(FirehoseGenerator(seed=3, start=START).mentions(200))
    again = list(FirehoseGenerator(seed=3, start=START).mentions(200))
    assert first == again


def test_mentions_are_valid_multilingual_and_match_the_example_brands() -> None:
    import orjson

    mentions = list(FirehoseGenerator(seed=1, start=START).mentions(3000))
    matcher = BrandMatcher(load_brand_rules(PACKAGE_DATA / "brands.example.yaml"))
    for record in mentions[:500]:
        decode_mention(orjson.dumps(record), max_text_chars=1000, max_record_bytes=10_000)
    hints = Counter(m["lang_hint"] for m in mentions if m["lang_hint"])
    assert {"es", "en", "pt", "fr"} <= set(hints)
    matched = sum(1 for m in mentions if matcher.match(m["text"]))
    assert matched / len(mentions) > 0.9
    retweets = sum(1 for m in mentions if m["text"].startswith("RT @"))
    assert 0.05 < retweets / len(mentions) < 0.3
    times = [m["created_at"] for m in mentions]
    assert times == sorted(times)


def test_crisis_is_a_negative_burst_about_one_brand() -> None:
    plan = CrisisPlan(start_after=timedelta(minutes=10), duration=timedelta(minutes=10))
    mentions = list(
        FirehoseGenerator(seed=2, start=START, rate_per_s=5, crisis=plan).mentions(9000)
    )
    matcher = BrandMatcher(load_brand_rules(PACKAGE_DATA / "brands.example.yaml"))

    def acme_share(lo: int, hi: int) -> float:
        window = [
            m for m in mentions
            if START + timedelta(minutes=lo) <= datetime.fromisoformat(m["created_at"])
            < START + timedelta(minutes=hi)
        ]
        return sum(1 for m in window if "acme-mobile" in matcher.match(m["text"])) / len(window)

    before, during = acme_share(0, 10), acme_share(13, 17)
    assert during > before + 0.2
    assert any(plan.hashtag in m["text"] for m in mentions)


def test_labelled_mentions_are_the_same_firehose_with_its_ground_truth_sentiment() -> None:
    plan = CrisisPlan(start_after=timedelta(minutes=10), duration=timedelta(minutes=10))
    plain = list(FirehoseGenerator(seed=4, start=START, rate_per_s=5, crisis=plan).mentions(6000))
    labelled = list(
        FirehoseGenerator(seed=4, start=START, rate_per_s=5, crisis=plan).labelled_mentions(6000))
    assert [record for record, _ in labelled] == plain
    labels = {record["id"]: label for record, label in labelled}
    assert set(labels.values()) == {"negative", "neutral", "positive"}
    crisis = [label for record, label in labelled if plan.hashtag in record["text"]]
    assert crisis and set(crisis) == {"negative"}
    # a retweet carries the sentiment of the mention it copies
    by_text = {record["text"]: label for record, label in labelled}
    retweets = [(record["text"].split(": ", 1)[1], label) for record, label in labelled
                if record["text"].startswith("RT @")]
    known = [(by_text[text], label) for text, label in retweets if text in by_text]
    assert len(known) > 100 and all(original == label for original, label in known)
