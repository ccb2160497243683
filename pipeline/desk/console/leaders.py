"""Voces: a brand's opinion leaders, inside and outside, from ``GET /api/leaders``'s query.

Blocking (runs in a worker thread). The brand's inside voices come from its listening
query's ``accounts`` and ``employees`` (the brands file).
"""

from __future__ import annotations

from typing import Any, Final

from pipeline.desk.console.context import Console
from pipeline.desk.console.view import View
from pipeline.stages.leaders import WEIGHTS, InsideVoices
from pipeline.store.leaders import LeadersQuery, parse_leaders_query

LEADERS_SHOWN: Final = 15
RECENT_SHOWN: Final = 3
# the score's components in the order the page draws them
COMPONENTS: Final = tuple(WEIGHTS)


def inside_voices(console: Console, brand: str) -> InsideVoices:
    """The brand's own accounts and employees' handles (none for an unknown brand)."""
    for rule in console.brands:
        if rule.id == brand:
            return InsideVoices(accounts=rule.accounts, employees=rule.employees)
    return InsideVoices()


def answer_leaders(console: Console, query: LeadersQuery) -> dict[str, Any]:
    """``GET /api/leaders``'s answer, with the brand's inside voices."""
    return console.store.leaders(query, inside_voices(console, query.brand))


def leaders_page(console: Console, view: View, brand: str) -> dict[str, Any]:
    """What the Voces page shows for ``brand`` in the view's period."""
    query = parse_leaders_query({"brand": brand, "limit": str(LEADERS_SHOWN),
                                 "recent": str(RECENT_SHOWN), **view.period_params()},
                                console.clock())
    inside = inside_voices(console, brand)
    answer = console.store.leaders(query, inside)
    return {"leaders": answer, "components": COMPONENTS, "weights": WEIGHTS,
            "inside_configured": bool(inside.accounts or inside.employees)}
