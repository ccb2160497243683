from __future__ import annotations

import orjson

from pipeline.stages.alerts.context import IncidentContext
from tests.unit.stages.alerts.conftest import mention


def test_context_ranks_voices_by_reach_and_credits_copies() -> None:
    context = IncidentContext(capacity=16, samples=2)
    context.add(mention(1, text="my acme phone caught fire", author="small", followers=50))
    context.add(mention(2, text="acme phones catching fire, recall now", author="news",
                        followers=20_000, likes=30))
    for n in range(3, 40):  # 37 copies of the small account's post, by 1,000-follower accounts
        context.add(mention(n, text="my acme phone caught fire", author=f"c{n}",
                            followers=1000, duplicate_of="m1"))
    summary = context.summary(3)
    voices = [v.author_id for v in summary.top_voices]
    assert voices[:2] == ["small", "news"]
    small = summary.top_voices[0]
    assert (small.followers, small.mentions, small.copies) == (50, 1, 37)
    # samples are originals with links, ranked by the reach their copies brought them
    assert [s.id for s in summary.samples] == ["m1", "m2"]
    assert summary.samples[0].copies == 37
    assert summary.samples[0].url == "https://social.example/h_small/status/1"
    assert summary.top_terms[0] == ("acme", 39)
    assert context.summary(3, ignore_terms={"acme"}).top_terms[0] == ("fire", 39)


def test_context_memory_is_bounded() -> None:
    context = IncidentContext(capacity=8, samples=3, origins=32)
    for n in range(3000):
        context.add(mention(n, text=f"word{n} other{n % 7} #tag{n}", author=f"u{n}",
                            followers=n, lang=f"l{n % 50}"))
    state = context.to_state()
    for key in ("terms", "hashtags", "languages", "voices", "voice_info"):
        assert len(state[key]) <= 8, key
    assert len(state["samples"]) == 3
    assert len(state["origins"]) == 32
    assert context.mentions == 3000
    assert [s.id for s in context.summary().samples] == ["m2999", "m2998", "m2997"]


def test_one_sample_per_author() -> None:
    context = IncidentContext(samples=3)
    for n in range(5):
        context.add(mention(n, text=f"post {n}", author="same", followers=10, likes=n))
    context.add(mention(9, text="other", author="other", followers=1))
    assert [s.id for s in context.summary().samples] == ["m4", "m9"]


def test_context_merge_and_state_round_trip() -> None:
    a, b, whole = (IncidentContext(capacity=32) for _ in range(3))
    texts = ["signal lost again", "no signal for hours", "refund now #acmedown",
             "signal gone #acmedown", "refund refund"]
    for n, text in enumerate(texts):
        (a if n % 2 else b).add(mention(n, text=text, author=f"u{n}", lang="es" if n else "en"))
        whole.add(mention(n, text=text, author=f"u{n}", lang="es" if n else "en"))
    a.merge(b)
    assert a.summary() == whole.summary()
    restored = IncidentContext.from_state(orjson.loads(orjson.dumps(a.to_state())))
    assert restored.summary() == a.summary()
    assert dict(restored.summary().languages) == {"es": 0.8, "en": 0.2}
