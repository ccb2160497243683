"""Crisis incidents as the crisis stage emits them, for the store's and the desk's tests.

:func:`incident` builds one incident's alert events (real :class:`Alert` records, as
``to_dict`` puts them on the alerts topic): one 5-minute window each, from its start.
:func:`listed_incidents` is the set both test trees store: brands, kinds, statuses and
periods to filter on, and enough incidents of one brand to page through.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.stages.alerts.record import (
    CRISIS,
    OPENED,
    RESOLVED,
    UPDATED,
    VOLUME_SPIKE,
    Alert,
    ContextSummary,
    SampleMention,
    Severity,
    Voice,
)

STEP = timedelta(minutes=5)


def incident(brand: str, started_at: datetime, statuses: Sequence[str], *,
             kinds: Sequence[str] = (CRISIS,)) -> list[dict[str, Any]]:
    """One incident's alerts as emitted: the i-th in the i-th window from ``started_at``.

    ``kinds`` gives each alert's kind (the last one repeats), so an incident can escalate.
    """
    alerts = []
    for sequence, status in enumerate(statuses):
        kind = kinds[min(sequence, len(kinds) - 1)]
        previous = kinds[min(sequence - 1, len(kinds) - 1)] if sequence else kind
        window_start = started_at + sequence * STEP
        severity = Severity.CRITICAL if kind == CRISIS and sequence else Severity.WARNING
        negative = 40 + 10 * sequence
        alerts.append(Alert(
            kind=kind, status=status, severity=severity, brand=brand,
            brand_name=brand.replace("-", " ").title(),
            incident_id=f"{brand}-{started_at.astimezone(UTC):%Y%m%dT%H%MZ}",
            sequence=sequence, started_at=started_at, window_start=window_start,
            window_end=window_start + STEP, volume=120 + sequence, expected_volume=60.0,
            negative=negative, expected_negative=8.0, negative_share=negative / 120,
            expected_negative_share=0.12, scores={"volume": 0.8, "negative": 0.9},
            peak={"negative": negative}, totals={"windows": sequence + 1},
            context=ContextSummary(
                mentions=negative, top_terms=(("factura", 12),),
                top_hashtags=(("#caida", 5),),
                top_voices=(Voice("u1", "ana", 1200, 3, 2, 10, 4500.0),),
                languages=(("es", 0.8), ("en", 0.2)),
                samples=(SampleMention(f"{brand}:{sequence}", "sin servicio otra vez",
                                       "https://social.example/ana/1", "ana", "es", 4500.0,
                                       2),),
            ),
            previous_kind=previous if previous != kind else None,
        ).to_dict())
    return alerts


def listed_incidents(now: datetime) -> list[list[dict[str, Any]]]:
    """Incidents around ``now``: each a list of its alerts in sequence order.

    - acme-mobile: a crisis opened 4 hours ago and resolved, and a volume spike that became a
      crisis and is still open;
    - telvia: an open crisis, and a spike that resolved 40 days ago (outside the default
      30 days);
    - nimbus-bank: twelve short resolved spikes, one an hour, to page through.
    """
    hour = timedelta(hours=1)
    return [
        incident("acme-mobile", now - 4 * hour, (OPENED, UPDATED, RESOLVED)),
        incident("acme-mobile", now - 2 * hour, (OPENED, UPDATED),
                 kinds=(VOLUME_SPIKE, CRISIS)),
        incident("telvia", now - 90 * timedelta(minutes=1), (OPENED,)),
        incident("telvia", now - timedelta(days=40), (OPENED, RESOLVED), kinds=(VOLUME_SPIKE,)),
        *(incident("nimbus-bank", now - (30 - index) * hour, (OPENED, RESOLVED),
                   kinds=(VOLUME_SPIKE,)) for index in range(12)),
    ]


def newest_update_first(incidents: Sequence[Sequence[dict[str, Any]]], since: datetime,
                        until: datetime) -> list[str]:
    """Ids of the incidents last updated in ``[since, until)``, newest update first.

    Computed from the alerts alone (a tie goes to the greater id, as the store orders them).
    """
    chosen = [alerts for alerts in incidents
              if since <= datetime.fromisoformat(alerts[-1]["window_end"]) < until]
    chosen.sort(key=lambda alerts: (datetime.fromisoformat(alerts[-1]["window_end"]),
                                    alerts[-1]["incident_id"]), reverse=True)
    return [alerts[-1]["incident_id"] for alerts in chosen]
