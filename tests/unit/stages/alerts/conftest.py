"""Builders shared by the alerts tests: 5-minute windows of a fake event-time clock, mentions,
and one crisis that opens and resolves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pipeline.records import ScoredMention, Sentiment
from pipeline.stages.alerts.lifecycle import BrandIncidents, IncidentConfig, WindowObservation
from pipeline.stages.alerts.record import Alert

START = datetime(2025, 3, 3, 10, 0, tzinfo=UTC)
STEP = timedelta(minutes=5)
BRAND = "acme-mobile"


def window(index: int, *, volume: int = 100, negative: int = 10, volume_score: float = 0.05,
           negative_score: float = 0.05, share_score: float = 0.05,
           expected_negative: float = 8.0, brand: str = BRAND) -> WindowObservation:
    """The index-th 5-minute window of the fake event-time clock."""
    start = START + index * STEP
    return WindowObservation(
        brand=brand, start=start, end=start + STEP, volume=volume, negative=negative,
        expected_volume=80.0, expected_negative=expected_negative, expected_negative_share=0.1,
        volume_score=volume_score, negative_score=negative_score, share_score=share_score,
    )


def crisis(index: int, negative: int = 60, score: float = 0.7) -> WindowObservation:
    return window(index, volume=150, negative=negative, volume_score=0.4, negative_score=score,
                  share_score=score)


def calm(index: int) -> WindowObservation:
    return window(index)


def mention(n: int, *, text: str, author: str = "a1", followers: int = 100,
            label: str = "negative", lang: str = "en", duplicate_of: str | None = None,
            likes: int = 0) -> ScoredMention:
    return ScoredMention(
        id=f"m{n}", text=text, created_at=(START + timedelta(seconds=n)).isoformat(),
        author={"id": author, "handle": f"h_{author}", "followers": followers},
        url=f"https://social.example/h_{author}/status/{n}", lang=lang,
        sentiment=Sentiment(label, {label: 0.9}), brands=[BRAND],
        duplicate_of=duplicate_of, copy_count=1,
        engagement={"likes": likes, "reposts": 0, "replies": 0},
    )


def run(incidents: BrandIncidents, windows: list[WindowObservation]) -> list[Alert]:
    alerts: list[Alert] = []
    for observation in windows:
        alerts.extend(incidents.update(observation))
    return alerts


def alert_sequence() -> list[Alert]:
    incidents = BrandIncidents(BRAND, IncidentConfig(calm_windows=1), brand_name="Acme Mobile")
    incidents.observe(mention(1, text="Acme Mobile battery fire, stay safe", author="newsdesk",
                              followers=1_200_000, lang="en"), START)
    incidents.observe(mention(2, text="bateria explotó #AcmeLeak", author="ana", lang="es"),
                      START)
    return run(incidents, [
        window(0, volume=340, negative=230, volume_score=0.8, negative_score=0.99,
               share_score=0.9),
        calm(1),
    ])
