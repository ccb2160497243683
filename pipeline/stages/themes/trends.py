"""A theme's trend against the period before, and which themes are emerging.

A theme is **emerging** when it is new in the period (no mention in the period before) with at
least ``min_mentions``, or when it rose fast: at least ``min_ratio`` times its previous volume
and ``min_rise`` Poisson spreads above it (so 30 after 10 counts, 3 after 1 does not). The
desk lists emerging themes first.

>>> trend(12, 0).emerging, trend(30, 10).emerging, trend(11, 10).emerging
(True, True, False)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

MIN_MENTIONS: Final = 3
MIN_RATIO: Final = 2.0
MIN_RISE: Final = 3.0


@dataclass(frozen=True, slots=True)
class Trend:
    """A theme's volume now and before, its change and whether it is emerging."""

    current: int
    previous: int
    change: float | None
    rise: float
    emerging: bool
    new: bool


def rise_spreads(current: int, previous: int) -> float:
    """The rise in units of the previous count's Poisson spread.

    >>> round(rise_spreads(30, 10), 2)
    6.03
    """
    return (current - previous) / math.sqrt(previous + 1)


def trend(current: int, previous: int, *, min_mentions: int = MIN_MENTIONS,
          min_ratio: float = MIN_RATIO, min_rise: float = MIN_RISE) -> Trend:
    """Compare a theme's mentions in the period with those of the period before.

    ``change`` is the relative change (``None`` when there was nothing before).

    >>> trend(15, 10).change
    0.5
    """
    new = previous == 0 and current > 0
    rise = rise_spreads(current, previous)
    fast = (current >= min_ratio * previous and rise >= min_rise)
    emerging = current >= min_mentions and (new or fast)
    change = None if previous == 0 else round((current - previous) / previous, 4)
    return Trend(current, previous, change, round(rise, 3), emerging, new)


def emerging_first(trends: dict[int, Trend]) -> list[int]:
    """Theme ids ordered for people: emerging ones first (fastest rise), then by volume."""
    return sorted(trends, key=lambda theme_id: (
        not trends[theme_id].emerging,
        -trends[theme_id].rise if trends[theme_id].emerging else 0.0,
        -trends[theme_id].current, theme_id))
