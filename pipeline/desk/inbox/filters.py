"""The inbox page's and API's filters, read from a query string.

>>> filters = parse_inbox_filters({"reason": "complaint", "status": "overdue"})
>>> filters.reason, filters.status, filters.sort
('complaint', 'overdue', 'urgency')
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from pipeline.stages.inbox.items import REASONS
from pipeline.store.queries import BadParameter

STATUSES: Final = ("pending", "overdue", "open", "assigned", "answered", "dismissed", "all")
SORTS: Final = ("urgency", "newest")
LOOKBACK_DAYS: Final = (1, 7, 30)
DEFAULT_LOOKBACK_DAYS: Final = 7
# the most items a page lists (the counts cover them all)
PAGE_ITEMS: Final = 100


@dataclass(frozen=True, slots=True)
class InboxFilters:
    """What the reader asks the inbox for; empty strings mean "any"."""

    brand: str = ""
    reason: str = ""
    lang: str = ""
    assignee: str = ""
    status: str = "pending"
    sort: str = "urgency"
    days: int = DEFAULT_LOOKBACK_DAYS

    def params(self, **changes: str) -> dict[str, str]:
        """The filters as query parameters (defaults left out), with ``changes``."""
        values = {"brand": self.brand, "reason": self.reason, "lang": self.lang,
                  "assignee": self.assignee, "status": self.status, "sort": self.sort,
                  "days": str(self.days)}
        values.update(changes)
        defaults = {"status": "pending", "sort": "urgency", "days": str(DEFAULT_LOOKBACK_DAYS)}
        return {name: value for name, value in values.items()
                if value and defaults.get(name) != value}


def parse_inbox_filters(params: Mapping[str, str]) -> InboxFilters:
    """The filters in ``params``; :class:`BadParameter` names one it cannot use."""
    reason = params.get("reason", "").strip()
    if reason and reason not in REASONS:
        raise BadParameter("reason", f"one of {', '.join(REASONS)}")
    status = params.get("status", "").strip() or "pending"
    if status not in STATUSES:
        raise BadParameter("status", f"one of {', '.join(STATUSES)}")
    sort = params.get("sort", "").strip() or "urgency"
    if sort not in SORTS:
        raise BadParameter("sort", f"one of {', '.join(SORTS)}")
    days_text = params.get("days", "").strip() or str(DEFAULT_LOOKBACK_DAYS)
    if days_text not in {str(days) for days in LOOKBACK_DAYS}:
        raise BadParameter("days", f"one of {', '.join(map(str, LOOKBACK_DAYS))}")
    lang = params.get("lang", "").strip()
    if lang and not (lang.isalpha() and len(lang) <= 3):
        raise BadParameter("lang", "a language code such as es or en")
    return InboxFilters(brand=params.get("brand", "").strip(), reason=reason, lang=lang,
                        assignee=params.get("assignee", "").strip()[:64], status=status,
                        sort=sort, days=int(days_text))
