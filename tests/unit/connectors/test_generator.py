from collections import Counter
from datetime import UTC, datetime, timedelta

from pipeline.config import PACKAGE_DATA
from pipeline.connectors.generator import CrisisPlan, FirehoseGenerator, LeadersPlan
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


def test_planted_leaders_are_copied_and_bots_never_are() -> None:
    firehose = FirehoseGenerator(seed=4, start=START, rate_per_s=1, leaders=LeadersPlan())
    mentions = list(firehose.mentions(8000))
    planted = firehose.planted_leaders()
    handles = {m["author"]["id"]: m["author"]["handle"] for m in mentions}
    retweeted = Counter(m["text"].split(":")[0][4:] for m in mentions
                        if m["text"].startswith("RT @"))
    bots = set(firehose.bot_ids())
    assert len(bots) == 20 and all(len(ids) == 10 for ids in planted.values())
    assert not any(handles.get(bot) in retweeted for bot in bots)
    influencers = [author for ids in planted.values() for author in ids]
    copied = [retweeted[handles[author]] for author in influencers if author in handles]
    assert sum(copied) / len(copied) > 5 * sum(retweeted.values()) / len(handles)
    assert min(firehose.bots, key=lambda bot: bot.followers).followers > max(
        author.followers for authors in firehose.influencers.values() for author in authors)


def test_without_a_leaders_plan_nothing_is_planted() -> None:
    firehose = FirehoseGenerator(seed=4, start=START)
    assert firehose.planted_leaders() == {} and firehose.bot_ids() == []


def test_the_default_firehose_is_the_one_before_leaders_were_planted() -> None:
    import hashlib
    import json

    # the digest of this stream as the generator made it before LeadersPlan existed: the
    # benchmarks that replay the default firehose must not move
    mentions = list(FirehoseGenerator(seed=5, start=START, crisis=CrisisPlan(
        start_after=timedelta(minutes=1))).mentions(3000))
    digest = hashlib.sha256(json.dumps(mentions, sort_keys=True,
                                       ensure_ascii=False).encode()).hexdigest()
    assert digest == "f7d68b88dc69499cc49eafaf18362c9934cf85a939f8280865d4d18c976093d8"
