"""What a console page was asked to show: the period and the filters, from its query string.

A page's query string is the reader's: ``period`` (``24h``, ``7d``, ``30d`` or ``custom`` with
``since`` and ``until`` in the reader's time zone, as a ``datetime-local`` field sends them),
``brand``, ``q``, ``lang``, ``sentiment``, ``source``, ``copies`` and ``cursor``.
:meth:`View.api` turns it into the JSON API's parameters, which the store's own parsers then
check, so a page accepts exactly what the API does and says why when it does not.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Final
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from pipeline.store.queries import BadParameter, Interval, Period, parse_instant

PERIODS: Final[dict[str, timedelta]] = {
    "24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30),
}
DEFAULT_PERIOD: Final = "24h"
FILTERS: Final = ("brand", "q", "lang", "sentiment", "source", "copies")
COPIES: Final = ("all", "original", "copies")


@dataclass(frozen=True, slots=True)
class View:
    """A page's period (resolved against the clock), filters and cursor."""

    period_key: str
    period: Period
    zone: ZoneInfo
    since_text: str = ""
    until_text: str = ""
    brand: str = ""
    q: str = ""
    lang: str = ""
    sentiment: str = ""
    source: str = ""
    copies: str = "all"
    cursor: str = ""
    # the period reaches the present (or beyond): new mentions belong on the page
    live: bool = True

    @property
    def interval(self) -> Interval:
        """The chart interval for the period: 5 minutes up to 6 h, hours up to 14 days.

        >>> read_view({"period": "7d"}, ZoneInfo("UTC"), datetime(2026, 12, 1)).interval
        '1h'
        """
        length = self.period.length
        if length <= timedelta(hours=6):
            return "5m"
        return "1h" if length <= timedelta(days=14) else "1d"

    def period_params(self) -> dict[str, str]:
        """The API's ``since``, ``until`` and ``tz`` for this period."""
        return {"since": self.period.since.isoformat(), "until": self.period.until.isoformat(),
                "tz": self.zone.key}

    def api(self, **extra: str) -> dict[str, str]:
        """The JSON API's parameters for ``/api/mentions`` (and the CSV export)."""
        params = self.period_params()
        for name in FILTERS:
            value = getattr(self, name)
            if value and not (name == "copies" and value == "all"):
                params[name] = value
        if self.cursor:
            params["cursor"] = self.cursor
        params.update({name: value for name, value in extra.items() if value})
        return params

    def query(self, **changes: str) -> str:
        """The view's own query string, with ``changes`` (an empty value drops a name).

        >>> view = read_view({"brand": "telvia"}, ZoneInfo("UTC"), datetime(2026, 12, 1))
        >>> view.query(q="factura")
        'period=24h&brand=telvia&q=factura'
        """
        params = {"period": self.period_key}
        if self.period_key == "custom":
            params.update(since=self.since_text, until=self.until_text)
        params.update({name: getattr(self, name) for name in FILTERS})
        if params.get("copies") == "all":
            params.pop("copies")
        params.update(changes)
        return urlencode({name: value for name, value in params.items() if value})

    def period_query(self) -> str:
        """Only the period, for links to other pages (they keep the period, not the filters)."""
        return replace(self, brand="", q="", lang="", sentiment="", source="", copies="all",
                       cursor="").query()


def read_view(params: Mapping[str, str], zone: ZoneInfo, now: datetime,
              default_period: str = DEFAULT_PERIOD) -> View:
    """The view a query string asks for; :class:`BadParameter` names a value it cannot use.

    >>> from datetime import UTC
    >>> view = read_view({"period": "custom", "since": "2026-11-02T09:00",
    ...                   "until": "2026-11-02T12:00"}, ZoneInfo("Europe/Madrid"),
    ...                  datetime(2026, 12, 1, tzinfo=UTC))
    >>> view.period.since.isoformat(), view.interval
    ('2026-11-02T08:00:00+00:00', '5m')
    """
    key = params.get("period", "").strip() or default_period
    since_text = params.get("since", "").strip()
    until_text = params.get("until", "").strip()
    if key == "custom":
        if not since_text:
            raise BadParameter("since", "a custom period needs its start")
        since = parse_instant("since", since_text, zone)
        until = parse_instant("until", until_text, zone) if until_text else now
        if since >= until:
            raise BadParameter("since", "must be before until")
        period = Period(since, until)
    elif key in PERIODS:
        period = Period(now - PERIODS[key], now)
    else:
        raise BadParameter("period", f"{key!r} is not one of {', '.join([*PERIODS, 'custom'])}")
    copies = params.get("copies", "").strip() or "all"
    if copies not in COPIES:
        raise BadParameter("copies", f"{copies!r} is not one of {', '.join(COPIES)}")
    return View(
        key, period, zone, since_text, until_text,
        **{name: params.get(name, "").strip()[:500] for name in FILTERS if name != "copies"},
        copies=copies, cursor=params.get("cursor", "").strip(), live=period.until >= now,
    )


def local_input(moment: datetime, zone: ZoneInfo) -> str:
    """A moment as a ``datetime-local`` field shows it in ``zone`` (``2026-11-02T09:00``)."""
    return moment.astimezone(zone).strftime("%Y-%m-%dT%H:%M")
