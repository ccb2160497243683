"""What every console page shares: the reader's preferences, the templates, the brands.

:class:`Console` is built once per desk; :meth:`Console.render` renders a template for one
request with the reader's translator (``t``), formats (``fmt``), their access (``visitor``) and
the navigation. Templates autoescape everything; nothing a mention says reaches a page unescaped.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2
import orjson
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse

from pipeline.config import Settings
from pipeline.desk.console.charts import Chart
from pipeline.desk.console.incidents import IncidentReader, peak_of
from pipeline.desk.i18n import LANGUAGE_NAMES, LANGUAGES, Translator
from pipeline.desk.i18n.formatting import LocalFormat, reader_locale
from pipeline.desk.security import Access, Visitor, visitor_of
from pipeline.stages.brands import BrandRule, load_brand_rules
from pipeline.store.client import ListeningStore

LANGUAGE_COOKIE: Final = "desk_lang"
ZONE_COOKIE: Final = "desk_tz"
# the pages of the navigation, in order: (path, catalog key, name of the page)
NAVIGATION: Final = (
    ("/", "nav.overview", "overview"),
    ("/mentions", "nav.mentions", "mentions"),
    ("/incidents", "nav.incidents", "incidents"),
    ("/voices", "nav.voices", "voices"),
    ("/themes", "nav.themes", "themes"),
    ("/inbox", "nav.inbox", "inbox"),
)


@dataclass(frozen=True, slots=True)
class Preferences:
    """The reader's language and time zone (cookies, else the desk's defaults)."""

    language: str
    zone: ZoneInfo


def zone_names() -> list[str]:
    """Every IANA zone a reader may choose (``Area/City``; no ``Etc`` or legacy aliases)."""
    return sorted(name for name in zoneinfo.available_timezones()
                  if ("/" in name and not name.startswith(("Etc/", "SystemV/", "US/")))
                  or name == "UTC")


def json_script(value: Any) -> Markup:
    """``value`` as JSON safe inside ``<script type="application/json">`` (no ``</``)."""
    text = orjson.dumps(value).decode().replace("<", "\\u003c").replace(">", "\\u003e")
    return Markup(text.replace("&", "\\u0026"))


class Console:
    """The console's shared parts over one store."""

    def __init__(self, settings: Settings, store: ListeningStore, access: Access,
                 clock: Callable[[], datetime]) -> None:
        self.settings = settings
        self.store = store
        self.access = access
        self.clock = clock
        self.templates = jinja2.Environment(
            loader=jinja2.PackageLoader("pipeline.desk", "templates"),
            autoescape=jinja2.select_autoescape(["html"]), trim_blocks=True,
            lstrip_blocks=True, undefined=jinja2.StrictUndefined,
        )
        self.templates.filters["json_script"] = json_script
        self.incidents = IncidentReader(store)
        self.templates.globals["peak_of"] = peak_of

    @cached_property
    def brands(self) -> list[BrandRule]:
        """The listening queries' brands, competitors and markets, in the file's order."""
        return load_brand_rules(self.settings.brands_file)

    @cached_property
    def brand_names(self) -> dict[str, str]:
        """Brand id to its name."""
        return {rule.id: rule.name for rule in self.brands}

    def own_brands(self) -> list[BrandRule]:
        """The brands the team listens for (kind ``brand``)."""
        return [rule for rule in self.brands if rule.kind == "brand"]

    def compared_brands(self) -> list[BrandRule]:
        """The brands and their competitors: the share of voice's field."""
        return [rule for rule in self.brands if rule.kind in ("brand", "competitor")]

    def preferences(self, request: Request) -> Preferences:
        """The reader's language and zone from their cookies, else the desk's defaults."""
        language = request.cookies.get(LANGUAGE_COOKIE, "")
        if language not in LANGUAGES:
            language = self.settings.desk_language
        try:
            zone = ZoneInfo(request.cookies.get(ZONE_COOKIE) or self.settings.desk_time_zone)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            zone = ZoneInfo(self.settings.desk_time_zone)
        return Preferences(language, zone)

    def reader(self, request: Request) -> tuple[Translator, LocalFormat]:
        """The reader's translator and formats."""
        preferences = self.preferences(request)
        locale = reader_locale(preferences.language, request.headers.get("accept-language"))
        return Translator(preferences.language), LocalFormat(locale, preferences.zone)

    def render(self, request: Request, template: str, *, page: str = "",
               status_code: int = 200, headers: Mapping[str, str] | None = None,
               **values: Any) -> HTMLResponse:
        """``template`` rendered for the reader of ``request``."""
        t, fmt = self.reader(request)
        visitor: Visitor = visitor_of(request)
        current = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        html = self.templates.get_template(template).render(
            t=t, fmt=fmt, visitor=visitor, page=page, navigation=NAVIGATION,
            language_names=LANGUAGE_NAMES, other_language=next(
                language for language in LANGUAGES if language != t.language),
            current=current, refresh_ms=int(self.settings.desk_refresh_s * 1000),
            chart_payload=lambda chart: _chart_payload(chart, fmt), **values,
        )
        return HTMLResponse(html, status_code=status_code, headers=headers)


def _chart_payload(chart: Chart, fmt: LocalFormat) -> dict[str, Any]:
    return chart.payload(fmt.tag, fmt.zone.key)
