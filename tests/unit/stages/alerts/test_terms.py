from __future__ import annotations

from pipeline.stages.alerts.terms import mention_terms


def test_mention_terms_drop_urls_handles_and_function_words() -> None:
    terms, hashtags = mention_terms(
        "RT @jdoe: the Acme battery EXPLODED in l'appareil https://t.co/x 2025 #AcmeLeak #a")
    assert terms == {"acme", "battery", "exploded", "appareil"}
    assert hashtags == {"#acmeleak"}
