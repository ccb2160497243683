"""The crisis incidents the console shows, read from the store when the store keeps them.

The store's incidents (``ListeningStore.incidents`` and ``ListeningStore.incident``, behind
``GET /api/incidents``) are another piece of work. Until a store has them the console says
so plainly ("no incidents stored yet") and shows nothing made up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline.store.client import ListeningStore


@dataclass(frozen=True, slots=True)
class IncidentList:
    """Incidents as the console lists them, and whether the store keeps incidents at all."""

    available: bool
    incidents: Sequence[dict[str, Any]] = field(default=())
    next: str | None = None


class IncidentReader:
    """The store's incidents, or an honest nothing where the store does not keep them."""

    def __init__(self, store: ListeningStore) -> None:
        self.store = store

    @property
    def available(self) -> bool:
        """True when the store answers questions about incidents."""
        return callable(getattr(self.store, "incidents", None))

    def open_incidents(self) -> IncidentList:
        """The incidents still open, the newest first."""
        return IncidentList(self.available)

    def listing(self, params: dict[str, str]) -> IncidentList:
        """Incidents as ``GET /api/incidents`` answers ``params``, the newest first."""
        return IncidentList(self.available)

    def open_by_brand(self, incidents: IncidentList) -> dict[str, int]:
        """How many open incidents each brand has."""
        counts: dict[str, int] = {}
        for incident in incidents.incidents:
            counts[incident["brand"]] = counts.get(incident["brand"], 0) + 1
        return counts
