"""What each console page shows, gathered from the store (blocking: run in a worker thread).

Every question goes through the store's own parsers with the JSON API's parameters
(:meth:`~pipeline.desk.console.view.View.api`), so a page and the API answer the same question
the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Final

from pipeline.desk.console.charts import Chart, share_of_voice_chart, volume_chart
from pipeline.desk.console.context import Console
from pipeline.desk.console.incidents import chart_period
from pipeline.desk.console.view import View
from pipeline.desk.i18n import Translator
from pipeline.stages.brands import BrandRule
from pipeline.store import freshness as store_freshness
from pipeline.store.queries import (
    parse_mentions_query,
    parse_share_of_voice_query,
    parse_terms_query,
    parse_volume_query,
)
from pipeline.store.theme_report import themes_report
from pipeline.store.themes import parse_themes_query

NEGATIVE_SHOWN: Final = 6
RISING_SHOWN: Final = 5
PAGE_SIZE: Final = 25
SENTIMENTS: Final = ("negative", "neutral", "positive")


@dataclass(frozen=True, slots=True)
class BrandSummary:
    """One brand on the overview: its volume, negative share, chart and rising terms."""

    rule: BrandRule
    mentions: int
    negative: int
    chart: Chart
    rising: list[dict[str, Any]]

    @property
    def negative_share(self) -> float:
        """The share of its mentions that are negative."""
        return self.negative / self.mentions if self.mentions else 0.0


def brand_summary(console: Console, view: View, rule: BrandRule, t: Translator,
                  now: datetime) -> BrandSummary:
    """A brand's overview card."""
    params = {"brand": rule.id, **view.period_params()}
    volume = console.store.volume(parse_volume_query({**params, "interval": view.interval},
                                                     now))
    terms = console.store.terms(parse_terms_query({**params, "limit": str(RISING_SHOWN)}, now))
    buckets = volume["buckets"]
    return BrandSummary(
        rule, sum(bucket["total"] for bucket in buckets),
        sum(bucket["negative"] for bucket in buckets),
        volume_chart(f"volume-{rule.id}", t("overview.volume_of", brand=rule.name), volume, t),
        terms["rising"],
    )


def overview(console: Console, view: View, t: Translator) -> dict[str, Any]:
    """The overview: each brand's card, the share of voice, the newest negative mentions."""
    now = console.clock()
    summaries = [brand_summary(console, view, rule, t, now) for rule in console.own_brands()]
    compared = console.compared_brands()
    share: dict[str, Any] | None = None
    share_chart = None
    if compared:
        share = console.store.share_of_voice(parse_share_of_voice_query(
            {"brands": ",".join(rule.id for rule in compared), "interval": view.interval,
             **view.period_params()}, now))
        share_chart = share_of_voice_chart("share-of-voice", t("overview.share_over_time"),
                                           share, console.brand_names)
    open_incidents = console.incidents.open_incidents(view.period.until, now)
    return {"summaries": summaries, "share": share, "share_chart": share_chart,
            "negatives": newest_negative(console, view, now), "open_incidents": open_incidents,
            "open_by_brand": console.incidents.open_by_brand(open_incidents)}


def newest_negative(console: Console, view: View, now: datetime,
                    newer_than: str = "") -> list[dict[str, Any]]:
    """The newest negative mentions of the team's own brands in the period."""
    params = {"kind": "brand", "sentiment": "negative", "limit": str(NEGATIVE_SHOWN),
              **view.period_params()}
    if newer_than:
        params["since"] = newer_than
    return list(console.store.mentions(parse_mentions_query(params, now))["mentions"])


def mentions_page(console: Console, view: View, *, newer_than: str = "",
                  limit: int = PAGE_SIZE) -> dict[str, Any]:
    """A page of the explorer: its mentions (newest first) and the next page's cursor.

    ``newer_than`` (an ISO time) asks only for mentions from then on: what a live page polls.
    """
    now = console.clock()
    extra = {"limit": str(limit)}
    if newer_than:
        extra["since"] = newer_than
    return dict(console.store.mentions(parse_mentions_query(view.api(**extra), now)))


def filter_options(console: Console, view: View) -> dict[str, Any]:
    """The choices of the explorer's filters: brands, languages, sources in the period."""
    langs = [*console.settings.languages, "und"]
    return {"brands": console.brands, "langs": langs,
            "sources": store_freshness.sources(console.store, view.period)}


def themes(console: Console, view: View, brand: str) -> dict[str, Any]:
    """A brand's themes in the period (``GET /api/themes``'s answer)."""
    return themes_report(console.store, parse_themes_query(
        {"brand": brand, **view.period_params()}, console.clock()))


def incident_page(console: Console, incident_id: str, t: Translator,
                  zone: str) -> dict[str, Any] | None:
    """An incident, its alerts in order and a chart of its brand's volume around it."""
    found = console.incidents.detail(incident_id)
    if found is None:
        return None
    incident = found["incident"]
    since, until = chart_period(incident)
    interval = "5m" if until - since <= timedelta(days=2) else "1h"
    volume = console.store.volume(parse_volume_query(
        {"brand": incident["brand"], "since": since.isoformat(), "until": until.isoformat(),
         "interval": interval, "tz": zone}, console.clock()))
    name = console.brand_names.get(incident["brand"], incident["brand_name"])
    chart = volume_chart("incident-volume", t("incident.chart", brand=name), volume, t)
    marks = [(datetime.fromisoformat(incident["opened_at"]), t("incident.opened"))]
    if incident.get("resolved_at"):
        marks.append((datetime.fromisoformat(incident["resolved_at"]), t("incident.resolved")))
    return {**found, "chart": replace(chart, marks=tuple(marks)),
            "window": {"since": since, "until": until}}


def freshness(console: Console, view: View) -> dict[str, Any]:
    """The status line: the store reachable, stale, since when; the open incidents' count."""
    now = console.clock()
    found = store_freshness.freshness(console.store, now)
    limit = console.settings.desk_stale_after_s
    age = found.age(now)
    open_count = len(console.incidents.open_incidents(view.period.until, now).incidents)
    return {"reachable": True, "newest_stored_at": found.newest_stored_at,
            "newest_created_at": found.newest_created_at, "age": age,
            "stale": age is None or age.total_seconds() > limit, "open_incidents": open_count}
