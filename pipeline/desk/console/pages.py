"""The console's pages and the fragments its script fetches, as Starlette routes.

Pages are rendered on the server (Jinja2 templates, Babel formats) and work without scripts;
``static/console.js`` adds the charts, "load more" in place, and the live parts: it polls the
``/fragments/...`` routes, which answer pieces of HTML rendered by the same templates, so the
browser never formats a date or translates a word itself (the charts' axes excepted).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from pipeline.desk.console import views
from pipeline.desk.console.context import Console
from pipeline.desk.console.leaders import leaders_page
from pipeline.desk.console.view import View, local_input, read_view
from pipeline.desk.users import Role
from pipeline.store.client import StoreRejected, StoreUnavailable
from pipeline.store.queries import BadParameter

log = logging.getLogger(__name__)

Page = Callable[[Request], Awaitable[Response]]
# incidents are rarer than mentions: their page looks back further by default
INCIDENTS_PERIOD: Final = "30d"


def page_errors(console: Console, page: str) -> Callable[[Page], Page]:
    """A page that answers a bad parameter or an unreachable store with a page that says so."""

    def decorate(endpoint: Page) -> Page:
        @functools.wraps(endpoint)
        async def guarded(request: Request) -> Response:
            try:
                return await endpoint(request)
            except BadParameter as error:
                return console.render(request, "error.html", page=page, status_code=400,
                                      problem="bad_parameter", field=error.field,
                                      reason=error.reason)
            except (StoreUnavailable, StoreRejected) as error:
                log.warning("desk: %s: %s", request.url.path, error)
                return console.render(request, "error.html", page=page, status_code=503,
                                      problem="store", field=None, reason=str(error))

        return guarded

    return decorate


def view_of(console: Console, request: Request, default_period: str = "24h") -> View:
    """The view the request's query string asks for, in the reader's zone."""
    zone = console.preferences(request).zone
    return read_view(dict(request.query_params), zone, console.clock(), default_period)


def incident_params(view: View, status: str) -> dict[str, str]:
    """``GET /api/incidents``'s parameters for the incidents page's filters."""
    params = {**view.period_params(), "limit": "50"}
    if view.brand:
        params["brand"] = view.brand
    if status in ("open", "resolved"):
        params["status"] = status
    return params


def period_fields(console: Console, view: View) -> dict[str, Any]:
    """What the period picker shows: the choice, and a custom period's start and end."""
    zone = view.zone
    return {"view": view, "since_input": local_input(view.period.since, zone),
            "until_input": local_input(view.period.until, zone),
            "period_query": view.period_query(), "brand_names": console.brand_names}


def console_routes(console: Console) -> list[BaseRoute]:
    """Every page and fragment of the console."""
    return [*Pages(console).routes(), *Fragments(console).routes()]


class Pages:
    """The console's pages; each method is one route's endpoint."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def routes(self) -> list[BaseRoute]:
        """The pages' routes, each answering its errors with a page."""
        errors = functools.partial(page_errors, self.console)
        return [
            Route("/", errors("overview")(self.overview)),
            Route("/mentions", errors("mentions")(self.mentions)),
            Route("/voices", errors("voices")(self.voices)),
            Route("/themes", errors("themes")(self.themes)),
            Route("/incidents", errors("incidents")(self.incidents)),
            Route("/incidents/{incident_id:path}", errors("incidents")(self.incident)),
        ]

    async def overview(self, request: Request) -> Response:
        """Resumen: each brand, the share of voice, open incidents, new negatives."""
        console = self.console
        view = view_of(console, request)
        t, _ = console.reader(request)
        shown = await run_in_threadpool(views.overview, console, view, t)
        return console.render(request, "overview.html", page="overview",
                              **period_fields(console, view), **shown)

    async def mentions(self, request: Request) -> Response:
        """Menciones: the explorer's first page and its filters' choices."""
        console = self.console
        view = view_of(console, request)

        def gather() -> dict[str, Any]:
            return {**views.mentions_page(console, view),
                    **views.filter_options(console, view)}

        shown = await run_in_threadpool(gather)
        export = {name: value for name, value in view.api().items() if name != "cursor"}
        return console.render(request, "mentions.html", page="mentions",
                              export_query=urlencode(export), export_role=Role.COMMUNITY_MANAGER,
                              **period_fields(console, view), **shown)

    async def voices(self, request: Request) -> Response:
        """Voces: a brand's opinion leaders (the first own brand unless one is asked for)."""
        console = self.console
        view = view_of(console, request)
        own = console.own_brands() or console.brands
        brand = view.brand or (own[0].id if own else "")
        shown = await run_in_threadpool(leaders_page, console, view, brand) if brand else {
            "leaders": None}
        return console.render(request, "voices.html", page="voices", brand=brand,
                              brands=console.brands, **period_fields(console, view), **shown)

    async def themes(self, request: Request) -> Response:
        """Temas: a brand's themes, emerging first (the first own brand unless one is asked)."""
        console = self.console
        view = view_of(console, request)
        own = console.own_brands() or console.brands
        brand = view.brand or (own[0].id if own else "")
        report: dict[str, Any] = (
            await run_in_threadpool(views.themes, console, view, brand) if brand
            else {"themes": [], "analysed": 0, "unassigned": 0, "last_run": None})
        return console.render(request, "themes.html", page="themes", brand=brand,
                              brands=console.brands, report=report,
                              **period_fields(console, view))

    async def incidents(self, request: Request) -> Response:
        """Incidentes: the incidents the filters ask for."""
        console = self.console
        view = view_of(console, request, INCIDENTS_PERIOD)
        status = request.query_params.get("status", "")
        listing = await run_in_threadpool(
            console.incidents.listing, incident_params(view, status), console.clock())
        list_query = urlencode({**dict(request.query_params), "period": view.period_key})
        return console.render(request, "incidents.html", page="incidents", listing=listing,
                              status=status, brands=console.brands, list_query=list_query,
                              **period_fields(console, view))

    async def incident(self, request: Request) -> Response:
        """An incident: its lifecycle, baseline, context and the chart around it."""
        console = self.console
        view = view_of(console, request, INCIDENTS_PERIOD)
        t, fmt = console.reader(request)
        shown = await run_in_threadpool(views.incident_page, console,
                                        request.path_params["incident_id"], t, fmt.zone.key)
        if shown is None:
            return console.render(request, "error.html", page="incidents", status_code=404,
                                  problem="no_incident", field=None, reason="",
                                  **period_fields(console, view))
        return console.render(request, "incident.html", page="incidents",
                              **period_fields(console, view), **shown)


class Fragments:
    """The pieces of pages that ``console.js`` fetches: more mentions, new ones, the status."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def routes(self) -> list[BaseRoute]:
        """The fragments' routes (errors as plain text: the script keeps what it shows)."""
        return [
            Route("/fragments/incidents", fragment_errors(self.incidents)),
            Route("/fragments/mentions", fragment_errors(self.mentions)),
            Route("/fragments/negatives", fragment_errors(self.negatives)),
            Route("/fragments/status", fragment_errors(self.status)),
        ]

    async def mentions(self, request: Request) -> Response:
        """The next page of mentions (``cursor``) or the newer ones (``newer_than``)."""
        console = self.console
        view = view_of(console, request)
        newer_than = request.query_params.get("newer_than", "")
        shown = await run_in_threadpool(functools.partial(
            views.mentions_page, console, view, newer_than=newer_than))
        return console.render(request, "fragments/mentions.html", brand_names=console.brand_names,
                              headers={"x-next-cursor": shown["next"] or ""}, **shown)

    async def negatives(self, request: Request) -> Response:
        """The overview's newest negative mentions (from ``newer_than``)."""
        console = self.console
        view = view_of(console, request)
        newer_than = request.query_params.get("newer_than", "")
        shown = await run_in_threadpool(
            views.newest_negative, console, view, console.clock(), newer_than)
        return console.render(request, "fragments/mentions.html", mentions=shown,
                              brand_names=console.brand_names)

    async def status(self, request: Request) -> Response:
        """The status line: how fresh the store is (or that it cannot be read)."""
        try:
            view = view_of(self.console, request)
            shown = await run_in_threadpool(views.freshness, self.console, view)
        except (StoreUnavailable, StoreRejected) as error:
            log.warning("desk: status: %s", error)
            shown = {"reachable": False}
        return self.console.render(request, "fragments/status.html", status=shown,
                                   now=self.console.clock())

    async def incidents(self, request: Request) -> Response:
        """The incidents page's list, as its filters ask."""
        console = self.console
        view = view_of(console, request, INCIDENTS_PERIOD)
        listing = await run_in_threadpool(
            console.incidents.listing,
            incident_params(view, request.query_params.get("status", "")), console.clock())
        return console.render(request, "fragments/incidents.html", listing=listing,
                              brand_names=console.brand_names)


def fragment_errors(endpoint: Page) -> Page:
    """A fragment that answers a bad parameter 400 and an unreachable store 503, as text."""

    @functools.wraps(endpoint)
    async def guarded(request: Request) -> Response:
        try:
            return await endpoint(request)
        except BadParameter as error:
            return Response(f"{error.field}: {error.reason}", status_code=400)
        except (StoreUnavailable, StoreRejected) as error:
            log.warning("desk: %s: %s", request.url.path, error)
            return Response("the store is unavailable", status_code=503)

    return guarded
