"""The crisis incidents the console shows, as the store answers ``GET /api/incidents``.

An incident is its latest alert as the crisis stage emitted it, plus when it opened, changed
and ended and how many alerts it had (:mod:`pipeline.store.incidents`); the console asks the
store's own parsers, so its pages answer what the API would.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from pipeline.store.client import ListeningStore
from pipeline.store.incidents import parse_incident_id, parse_incidents_query

OPEN_SHOWN: Final = 20
OPEN_LOOKBACK: Final = timedelta(days=30)
# the window of a detail page's chart: this long before the incident began and after it ended
CHART_BEFORE: Final = timedelta(hours=6)
CHART_AFTER: Final = timedelta(hours=2)


@dataclass(frozen=True, slots=True)
class IncidentList:
    """A page of incidents, the newest update first, and the next page's cursor."""

    incidents: Sequence[dict[str, Any]] = field(default=())
    next: str | None = None


class IncidentReader:
    """The store's incidents for the console's pages."""

    def __init__(self, store: ListeningStore) -> None:
        self.store = store

    def listing(self, params: Mapping[str, str], now: datetime) -> IncidentList:
        """Incidents as ``GET /api/incidents`` answers ``params``, the newest update first."""
        page = self.store.incidents(parse_incidents_query(dict(params), now))
        return IncidentList(page["incidents"], page["next"])

    def open_incidents(self, until: datetime, now: datetime) -> IncidentList:
        """The incidents still open, last updated in the 30 days before ``until``.

        ``until`` is the end of the page's period: the demo's compressed event time runs ahead
        of the clock, and its incidents with it.
        """
        return self.listing({"status": "open", "limit": str(OPEN_SHOWN),
                             "since": (until - OPEN_LOOKBACK).isoformat(),
                             "until": until.isoformat()}, now)

    def detail(self, incident_id: str) -> dict[str, Any] | None:
        """``{"incident": ..., "history": [...]}``, or None for an unknown incident."""
        return self.store.incident(parse_incident_id(incident_id, {}))

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


def peak_of(incident: Mapping[str, Any]) -> dict[str, Any]:
    """The incident's worst window as observed against usual (its ``peak``, else its latest).

    >>> peak = peak_of({"peak": {"window_end": "2026-12-01T09:30:00+00:00", "volume": 40,
    ...                 "negative": 30, "negative_share": 0.75, "expected_volume": 8.0,
    ...                 "expected_negative": 1.0}})
    >>> peak["negative"], peak["expected_negative"], peak["expected_negative_share"]
    (30, 1.0, None)
    """
    peak = incident.get("peak") or {}
    source = peak if "volume" in peak else incident
    expected_volume = float(source.get("expected_volume") or 0.0)
    expected_negative = float(source.get("expected_negative") or 0.0)
    return {
        "at": source.get("window_end") or incident.get("window_end"),
        "volume": source.get("volume", 0), "expected_volume": expected_volume,
        "negative": source.get("negative", 0), "expected_negative": expected_negative,
        "negative_share": source.get("negative_share", 0.0),
        # the baseline of the share is its own (not expected negatives over expected volume);
        # a peak does not record it
        "expected_negative_share": source.get("expected_negative_share"),
    }
