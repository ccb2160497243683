"""The console's charts as data: what ``console.js`` hands to uPlot, and a table for everyone.

A chart is a :class:`Chart`: the bucket starts (Unix seconds), one series per line with its
label and colour, and how values read (counts or shares). The page embeds it as JSON (a
``<script type="application/json">``, never run) and also renders it as a table inside a
``<details>``, so the figures are there for a screen reader and without scripts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from pipeline.desk.i18n import Translator

# Okabe and Ito's palette, told apart with every common colour blindness
BRAND_COLOURS: Final = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9",
                        "#000000")
SENTIMENT_COLOURS: Final = {"total": "#1f3d7a", "negative": "#b3261e", "neutral": "#5f6368",
                            "positive": "#1b7f3b"}


@dataclass(frozen=True, slots=True)
class Series:
    """One line: its label, colour and a value per bucket."""

    label: str
    colour: str
    values: tuple[float, ...]
    dashed: bool = False


@dataclass(frozen=True, slots=True)
class Chart:
    """A time chart: bucket starts, series, and whether values are shares (0-1) or counts."""

    id: str
    title: str
    starts: tuple[datetime, ...]
    series: tuple[Series, ...]
    shares: bool = False
    marks: tuple[tuple[datetime, str], ...] = field(default=())

    @property
    def empty(self) -> bool:
        """True when every value is zero (the page says so instead of drawing flat lines)."""
        return not any(any(series.values) for series in self.series)

    def payload(self, locale_tag: str, zone: str) -> dict[str, Any]:
        """The JSON ``console.js`` reads."""
        return {
            "x": [int(start.timestamp()) for start in self.starts],
            "series": [{"label": series.label, "colour": series.colour,
                        "values": list(series.values), "dashed": series.dashed}
                       for series in self.series],
            "shares": self.shares, "locale": locale_tag, "tz": zone,
            "marks": [{"at": int(moment.timestamp()), "label": label}
                      for moment, label in self.marks],
        }


def volume_chart(chart_id: str, title: str, volume: Mapping[str, Any],
                 t: Translator) -> Chart:
    """Mentions per bucket: all, negative and positive (``/api/volume``'s answer)."""
    buckets: Sequence[Mapping[str, Any]] = volume["buckets"]
    return Chart(
        chart_id, title,
        tuple(datetime.fromisoformat(bucket["start"]) for bucket in buckets),
        tuple(Series(t(f"chart.{name}"), SENTIMENT_COLOURS[name],
                     tuple(float(bucket[name]) for bucket in buckets), dashed=name == "positive")
              for name in ("total", "negative", "positive")),
    )


def share_of_voice_chart(chart_id: str, title: str, answer: Mapping[str, Any],
                         names: Mapping[str, str]) -> Chart:
    """Each brand's share of the mentions per bucket (``/api/share-of-voice``'s answer)."""
    buckets: Sequence[Mapping[str, Any]] = answer.get("buckets", ())
    brands: Sequence[str] = answer["brands"]
    return Chart(
        chart_id, title,
        tuple(datetime.fromisoformat(bucket["start"]) for bucket in buckets),
        tuple(Series(names.get(brand, brand), BRAND_COLOURS[index % len(BRAND_COLOURS)],
                     tuple(float(bucket["brands"][brand]["share"]) for bucket in buckets))
              for index, brand in enumerate(brands)),
        shares=True,
    )
