"""A scored-mention series with one crisis, shared by the crisis unit and integration tests.

Five-minute windows of one brand: a day and a quarter of calm traffic with a daily rhythm (the
detector's warm-up is a day), then a negative burst that grows, then calm again. Each window
is one micro-batch as the sentiment stage would write it to ``mentions.scored``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.records import SCORED, ScoredMention

START = datetime(2026, 3, 2, tzinfo=UTC)
WINDOW = timedelta(minutes=5)
BRAND = "acme-mobile"
CALM_WINDOWS = 360          # 30 hours
# extra negative mentions in the crisis windows: it opens, grows (an update), then calms down
CRISIS_EXTRA = (30, 45, 60, 90, 120, 180, 180, 120, 60)
AFTER_WINDOWS = 12
CRISIS_START = START + CALM_WINDOWS * WINDOW


def mention(index: int, created_at: datetime, *, negative: bool, crisis: bool = False,
            brand: str = BRAND) -> dict[str, Any]:
    """One scored mention as the sentiment stage emits it."""
    author = f"u{index % 97}" if not crisis else f"loud{index % 5}"
    text = ("Acme Mobile leaked customer data and says nothing #AcmeLeak" if crisis
            else "Acme Mobile down again, no signal" if negative
            else "Acme Mobile new plans look fine")
    label = "negative" if negative else "neutral"
    return {
        "id": f"{brand}-{index}", "text": f"{text} {index}", "created_at": created_at.isoformat(),
        "brands": [brand], "lang": "en",
        "author": {"id": author, "handle": author, "followers": 50_000 if crisis else 200},
        "engagement": {"likes": 3, "reposts": 1, "replies": 0},
        "url": f"https://social.example/{author}/status/{index}",
        "duplicate_of": None, "copy_count": 1,
        "sentiment": {"label": label, "scores": {label: 0.9}},
    }


def typed(mentions: Iterable[dict[str, Any]]) -> list[ScoredMention]:
    """Scored mentions as the crisis stage reads them off ``mentions.scored``."""
    return [SCORED.from_dict(mention) for mention in mentions]


def typed_windows(seed: int = 5) -> Iterator[list[ScoredMention]]:
    """:func:`windows`, each window's mentions as the crisis stage reads them."""
    return (typed(batch) for batch in windows(seed))


def windows(seed: int = 5) -> Iterator[list[dict[str, Any]]]:
    """The whole series, one list of mentions per window, in event-time order."""
    rng = random.Random(seed)
    index = 0
    extras = [0] * CALM_WINDOWS + list(CRISIS_EXTRA) + [0] * AFTER_WINDOWS
    for number, extra in enumerate(extras):
        start = START + number * WINDOW
        rhythm = 0.6 + 0.4 * math.sin(math.pi * start.hour / 24) ** 2
        volume = max(1, round(rng.gauss(24 * rhythm, 3)))
        batch = []
        for slot in range(volume + extra):
            created_at = start + (slot + 0.5) * WINDOW / (volume + extra)
            crisis = slot >= volume
            batch.append(mention(index, created_at, negative=crisis or rng.random() < 0.15,
                                 crisis=crisis))
            index += 1
        batch.sort(key=lambda m: m["created_at"])
        yield batch
