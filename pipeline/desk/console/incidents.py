"""The crisis incidents the console shows, read from the store where the store keeps them.

An incident is its latest alert as the crisis stage emitted it, plus when it opened, changed
and ended and how many alerts it had (``GET /api/incidents``; ``ListeningStore.incidents`` and
``ListeningStore.incident``). A store without incidents (an older one, or a stand-in in tests)
gets an honest "no incidents stored yet" and nothing made up.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import ModuleType
from typing import Any, Final

from pipeline.store.client import ListeningStore

OPEN_SHOWN: Final = 20
# the window of a detail page's chart: this long before the incident opened and after it ended
CHART_BEFORE: Final = timedelta(hours=6)
CHART_AFTER: Final = timedelta(hours=2)


@dataclass(frozen=True, slots=True)
class IncidentList:
    """Incidents as the console lists them, and whether the store keeps incidents at all."""

    available: bool
    incidents: Sequence[dict[str, Any]] = field(default=())
    next: str | None = None


def _queries() -> ModuleType | None:
    try:
        return importlib.import_module("pipeline.store.incidents")
    except ImportError:
        return None


class IncidentReader:
    """The store's incidents, or an honest nothing where the store does not keep them."""

    def __init__(self, store: ListeningStore) -> None:
        self.store = store
        self.queries = _queries()

    @property
    def available(self) -> bool:
        """True when the store answers questions about incidents."""
        return self.queries is not None and callable(getattr(self.store, "incidents", None))

    def listing(self, params: Mapping[str, str], now: datetime) -> IncidentList:
        """Incidents as ``GET /api/incidents`` answers ``params``, the newest update first."""
        if not self.available or self.queries is None:
            return IncidentList(False)
        query = self.queries.parse_incidents_query(dict(params), now)
        page = getattr(self.store, "incidents")(query)  # noqa: B009 (absent on older stores)
        return IncidentList(True, page["incidents"], page["next"])

    def open_incidents(self, now: datetime) -> IncidentList:
        """The incidents still open, the newest update first."""
        return self.listing({"status": "open", "limit": str(OPEN_SHOWN)}, now)

    def detail(self, incident_id: str) -> dict[str, Any] | None:
        """``{"incident": ..., "history": [...]}``, or None for an unknown incident."""
        if not self.available or self.queries is None:
            return None
        incident_id = self.queries.parse_incident_id(incident_id, {})
        answer: dict[str, Any] | None = getattr(self.store, "incident")(incident_id)  # noqa: B009
        return answer

    @staticmethod
    def open_by_brand(incidents: IncidentList) -> dict[str, int]:
        """How many open incidents each brand has."""
        counts: dict[str, int] = {}
        for incident in incidents.incidents:
            counts[incident["brand"]] = counts.get(incident["brand"], 0) + 1
        return counts


def chart_period(incident: Mapping[str, Any]) -> tuple[datetime, datetime]:
    """The span a detail page charts: from before the incident began to after it ended.

    >>> chart_period({"started_at": "2026-12-01T09:00:00+00:00",
    ...               "updated_at": "2026-12-01T10:00:00+00:00"})[1].isoformat()
    '2026-12-01T12:00:00+00:00'
    """
    began = datetime.fromisoformat(incident["started_at"])
    ended = datetime.fromisoformat(incident.get("resolved_at") or incident["updated_at"])
    return began - CHART_BEFORE, ended + CHART_AFTER
