"""A theme's label: its terms ranked by class-based TF-IDF.

Each theme is one "document" made of its mentions' terms; a term ranks high in a theme when
it is frequent there and rare in the other themes of the same brand and period (c-TF-IDF:
``tf(t, c) * log(1 + A / f(t))``, ``A`` the average number of terms per theme and ``f(t)`` the
term's count over every theme), so the label says what sets the theme apart. A term found in
every theme (the brand's own name, in a brand's themes) names none of them and is left out
when there are several themes.

>>> theme_labels({1: {"factura": 9, "cobro": 4, "telvia": 9},
...               2: {"app": 8, "error": 5, "telvia": 7}}, 2)
{1: ['factura', 'cobro'], 2: ['app', 'error']}
"""

from __future__ import annotations

import math
from collections.abc import Mapping


def theme_labels(term_counts: Mapping[int, Mapping[str, int]],
                 size: int = 4) -> dict[int, list[str]]:
    """The ``size`` best terms of each theme, best first (ties by term)."""
    totals: dict[str, int] = {}
    for counts in term_counts.values():
        for term, count in counts.items():
            totals[term] = totals.get(term, 0) + count
    themes = [counts for counts in term_counts.values() if counts]
    average = sum(sum(counts.values()) for counts in themes) / max(len(themes), 1)
    everywhere = (set.intersection(*(set(counts) for counts in themes))
                  if len(themes) > 1 else set())
    labels: dict[int, list[str]] = {}
    for theme_id, counts in term_counts.items():
        length = sum(counts.values()) or 1
        scores = {term: (count / length) * math.log(1 + average / totals[term])
                  for term, count in counts.items() if term not in everywhere}
        labels[theme_id] = sorted(scores, key=lambda term: (-scores[term], term))[:size]
    return labels
