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
from pipeline.desk.console.view import View, local_input, read_view
from pipeline.desk.users import Role
from pipeline.store.client import StoreRejected, StoreUnavailable
from pipeline.store.queries import BadParameter

log = logging.getLogger(__name__)

Page = Callable[[Request], Awaitable[Response]]
# the pages announced in the navigation that later work fills: (path, page, catalog prefix)
# incidents are rarer than mentions: their page looks back further by default
INCIDENTS_PERIOD: Final = "30d"
COMING: Final = (("/themes", "themes", "coming.themes"), ("/inbox", "inbox", "coming.inbox"))


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
    errors = functools.partial(page_errors, console)

    @errors("overview")
    async def overview(request: Request) -> Response:
        view = view_of(console, request)
        t, _ = console.reader(request)
        shown = await run_in_threadpool(views.overview, console, view, t)
        return console.render(request, "overview.html", page="overview",
                              **period_fields(console, view), **shown)

    @errors("mentions")
    async def mentions(request: Request) -> Response:
        view = view_of(console, request)

        def gather() -> dict[str, Any]:
            return {**views.mentions_page(console, view),
                    **views.filter_options(console, view)}

        shown = await run_in_threadpool(gather)
        export = {name: value for name, value in view.api().items() if name != "cursor"}
        return console.render(request, "mentions.html", page="mentions",
                              export_query=urlencode(export), export_role=Role.COMMUNITY_MANAGER,
                              **period_fields(console, view), **shown)

    @errors("voices")
    async def voices(request: Request) -> Response:
        view = view_of(console, request)
        own = console.own_brands() or console.brands
        brand = view.brand or (own[0].id if own else "")
        shown = await run_in_threadpool(views.voices, console, view, brand) if brand else {
            "voices": []}
        return console.render(request, "voices.html", page="voices", brand=brand,
                              brands=console.brands,
                              **period_fields(console, view), **shown)

    @errors("incidents")
    async def incidents(request: Request) -> Response:
        view = view_of(console, request, INCIDENTS_PERIOD)
        status = request.query_params.get("status", "")
        listing = await run_in_threadpool(
            console.incidents.listing, incident_params(view, status), console.clock())
        list_query = urlencode({**dict(request.query_params), "period": view.period_key})
        return console.render(request, "incidents.html", page="incidents", listing=listing,
                              status=status, brands=console.brands, list_query=list_query,
                              **period_fields(console, view))

    @errors("incidents")
    async def incident(request: Request) -> Response:
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

    def coming(page: str, prefix: str) -> Page:
        async def endpoint(request: Request) -> Response:
            view = view_of(console, request)
            return console.render(request, "coming.html", page=page, prefix=prefix,
                                  **period_fields(console, view))

        return errors(page)(endpoint)

    return [
        Route("/", overview),
        Route("/mentions", mentions),
        Route("/voices", voices),
        Route("/incidents", incidents),
        Route("/incidents/{incident_id:path}", incident),
        *(Route(path, coming(page, prefix)) for path, page, prefix in COMING),
        *fragment_routes(console),
    ]


def fragment_routes(console: Console) -> list[BaseRoute]:
    """The pieces of pages that ``console.js`` fetches: more mentions, new ones, the status."""

    async def more_mentions(request: Request) -> Response:
        view = view_of(console, request)
        newer_than = request.query_params.get("newer_than", "")
        shown = await run_in_threadpool(functools.partial(
            views.mentions_page, console, view, newer_than=newer_than))
        return console.render(request, "fragments/mentions.html", brand_names=console.brand_names,
                              headers={"x-next-cursor": shown["next"] or ""}, **shown)

    async def new_negatives(request: Request) -> Response:
        view = view_of(console, request)
        newer_than = request.query_params.get("newer_than", "")
        shown = await run_in_threadpool(
            views.newest_negative, console, view, console.clock(), newer_than)
        return console.render(request, "fragments/mentions.html", mentions=shown,
                              brand_names=console.brand_names)

    async def status(request: Request) -> Response:
        try:
            shown = await run_in_threadpool(views.freshness, console)
        except (StoreUnavailable, StoreRejected) as error:
            log.warning("desk: status: %s", error)
            shown = {"reachable": False}
        return console.render(request, "fragments/status.html", status=shown,
                              now=console.clock())

    async def incidents(request: Request) -> Response:
        view = view_of(console, request, INCIDENTS_PERIOD)
        listing = await run_in_threadpool(
            console.incidents.listing,
            incident_params(view, request.query_params.get("status", "")), console.clock())
        return console.render(request, "fragments/incidents.html", listing=listing,
                              brand_names=console.brand_names)

    return [
        Route("/fragments/incidents", fragment_errors(incidents)),
        Route("/fragments/mentions", fragment_errors(more_mentions)),
        Route("/fragments/negatives", fragment_errors(new_negatives)),
        Route("/fragments/status", status),
    ]


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
