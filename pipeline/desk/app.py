"""The desk's ASGI app: the store's queries as a JSON API, a CSV export, health and readiness.

Every ``/api/...`` endpoint reads its query string with the store's own parser
(:mod:`pipeline.store.queries`), so the API validates exactly what the store accepts. An
unusable parameter answers 400 with the field and the reason, a store that cannot be reached
503, anything else 500 (logged here, never sent to the client); every error, unknown paths
included, has the shape ``{"error": {"field": ..., "reason": ...}}``.

The store's client blocks, so each store call runs in a worker thread and the event loop keeps
serving other requests meanwhile. Served by :mod:`pipeline.desk.server`; for example::

    GET /api/mentions?brand=telvia&q=factura&limit=2
    -> {"mentions": [{"id": "syn:3", ...}, ...], "next": "WzE3OTY1..."}
    GET /api/mentions?limit=0
    -> 400 {"error": {"field": "limit", "reason": "must be between 1 and 500"}}
    GET /api/incidents?brand=telvia&status=open
    -> {"incidents": [{"incident_id": "telvia-20261201T0900Z", ..., "updates": 2}], "next": null}
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, Final, TypeVar

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from pipeline.config import Settings
from pipeline.desk.console.account import account_routes
from pipeline.desk.console.context import Console
from pipeline.desk.console.leaders import answer_leaders
from pipeline.desk.console.pages import console_routes
from pipeline.desk.inbox.courier import Courier
from pipeline.desk.inbox.routes import inbox_routes
from pipeline.desk.inbox.service import InboxService
from pipeline.desk.security import Access, Gate, is_api_path, login_redirect, visitor_of
from pipeline.desk.users import Role
from pipeline.store.client import ListeningStore, StoreRejected, StoreUnavailable, utc_now
from pipeline.store.incidents import parse_incident_id, parse_incidents_query
from pipeline.store.leaders import parse_leaders_query
from pipeline.store.queries import (
    MAX_MENTIONS_PAGE,
    BadParameter,
    Cursor,
    MentionsQuery,
    parse_mentions_query,
    parse_share_of_voice_query,
    parse_terms_query,
    parse_top_voices_query,
    parse_volume_query,
)
from pipeline.store.theme_report import themes_report
from pipeline.store.themes import parse_themes_query

log = logging.getLogger(__name__)

EXPORT_DEFAULT_LIMIT: Final = 10_000
EXPORT_MAX_LIMIT: Final = 100_000
EXPORT_COLUMNS: Final = (
    "id", "created_at", "source", "author_handle", "author_followers", "lang", "sentiment",
    "negative", "neutral", "positive", "brands", "duplicate_of", "copy_count", "url", "text",
)
# a spreadsheet opening the export runs a cell that starts with one of these as a formula, and
# anyone can post "=HYPERLINK(...)" (OWASP's CSV injection): such cells get a leading quote
_FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")

Clock = Callable[[], datetime]
Endpoint = Callable[[Request], Awaitable[Response]]
_Query = TypeVar("_Query")


class ORJSONResponse(Response):
    """A JSON response encoded with orjson."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        """The content as JSON bytes."""
        return orjson.dumps(content)


def error_response(
    status_code: int, field: str | None, reason: str,
    headers: Mapping[str, str] | None = None,
) -> ORJSONResponse:
    """The desk's one error shape.

    >>> error_response(400, "limit", "must be between 1 and 500").body
    b'{"error":{"field":"limit","reason":"must be between 1 and 500"}}'
    """
    return ORJSONResponse({"error": {"field": field, "reason": reason}},
                          status_code=status_code, headers=headers)


def single_parameters(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The query string's ``(name, value)`` pairs as ``{name: value}``, each name once.

    The parsers read one value per name; quietly keeping the first or the last of a repeated
    one would answer a question the client did not ask.

    >>> single_parameters([("brand", "telvia"), ("brand", "acme-mobile")])
    Traceback (most recent call last):
    ...
    pipeline.store.queries.BadParameter: brand: given more than once (list values with commas)
    """
    parameters: dict[str, str] = {}
    for name, value in pairs:
        if name in parameters:
            raise BadParameter(name, "given more than once (list values with commas)")
        parameters[name] = value
    return parameters


def parse_export_query(params: Mapping[str, str], now: datetime) -> tuple[MentionsQuery, int]:
    """``GET /api/mentions.csv``: the filters of ``/api/mentions`` and ``limit``, no cursor.

    ``limit`` is 1 to 100 000 mentions (default 10 000). The answer is the query of the first
    page and the number of mentions to export.

    >>> query, limit = parse_export_query({"brand": "telvia", "limit": "1200"}, utc_now())
    >>> query.filter.brands, query.limit, limit
    (('telvia',), 500, 1200)
    """
    if "cursor" in params:
        raise BadParameter("cursor", "the export starts at the newest mention; page with limit "
                           "and the period (since, until) instead")
    limit = _export_limit(params.get("limit", ""))
    query = parse_mentions_query({name: value for name, value in params.items()
                                  if name != "limit"}, now)
    return dataclasses.replace(query, limit=min(limit, MAX_MENTIONS_PAGE)), limit


def _export_limit(value: str) -> int:
    value = value.strip()
    if not value:
        return EXPORT_DEFAULT_LIMIT
    try:
        limit = int(value)
    except ValueError:
        raise BadParameter("limit", f"{value!r} is not an integer") from None
    if not 1 <= limit <= EXPORT_MAX_LIMIT:
        raise BadParameter("limit", f"must be between 1 and {EXPORT_MAX_LIMIT}")
    return limit


def spreadsheet_cell(value: Any) -> Any:
    """A CSV cell a spreadsheet shows as written: text that would start a formula gets a ``'``.

    >>> spreadsheet_cell("@telvia me ha cobrado dos veces"), spreadsheet_cell(-0.5)
    ("'@telvia me ha cobrado dos veces", -0.5)
    """
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def export_row(mention: Mapping[str, Any]) -> list[Any]:
    """One mention (as the store returns it) as the export's cells, in :data:`EXPORT_COLUMNS`.

    Brand ids are joined with ``|``; what the mention lacks is an empty cell.
    """
    author = mention.get("author") or {}
    sentiment = mention.get("sentiment") or {}
    scores = sentiment.get("scores") or {}
    cells = [
        mention.get("id"), mention.get("created_at"), mention.get("source"),
        author.get("handle"), author.get("followers"), mention.get("lang"),
        sentiment.get("label"), scores.get("negative"), scores.get("neutral"),
        scores.get("positive"), "|".join(mention.get("brands") or ()),
        mention.get("duplicate_of"), mention.get("copy_count"), mention.get("url"),
        mention.get("text"),
    ]
    return [spreadsheet_cell(cell) for cell in cells]


def csv_lines(rows: Iterable[Iterable[Any]]) -> str:
    """Rows as CSV text (RFC 4180: quoted where needed, CRLF line ends)."""
    lines = io.StringIO()
    csv.writer(lines).writerows(rows)
    return lines.getvalue()


async def export_csv(
    store: ListeningStore, query: MentionsQuery, limit: int, first_page: Mapping[str, Any],
) -> AsyncIterator[str]:
    """The export as CSV text, a page of mentions at a time, from an already fetched first page.

    Later pages follow the store's cursor. A store error past the first page ends the stream
    with the exception, so the client sees a broken transfer, never a short file that looks
    complete.
    """
    # a byte-order mark: Excel, where most teams open an export, reads UTF-8 only with it
    yield "\ufeff" + csv_lines([EXPORT_COLUMNS])
    page, written = first_page, 0
    while True:
        yield csv_lines(export_row(mention) for mention in page["mentions"])
        written += len(page["mentions"])
        if page["next"] is None or written >= limit:
            return
        query = dataclasses.replace(query, limit=min(MAX_MENTIONS_PAGE, limit - written),
                                    cursor=Cursor.decode(page["next"]))
        page = await run_in_threadpool(store.mentions, query)


def answering_errors(endpoint: Endpoint) -> Endpoint:
    """``endpoint``, with the desk's errors answered in the desk's shape (module docstring)."""

    @functools.wraps(endpoint)
    async def guarded(request: Request) -> Response:
        try:
            return await endpoint(request)
        except BadParameter as error:
            return error_response(400, error.field, error.reason)
        except StoreUnavailable as error:
            log.warning("desk: %s: %s", request.url.path, error)
            return error_response(503, None, f"the store is unavailable: {error}")
        except Exception:
            log.exception("desk: %s %s failed", request.method, request.url)
            return error_response(500, None, "internal error (the desk's log has the details)")

    return guarded


def build_desk(store: ListeningStore, *, clock: Clock = utc_now,
               settings: Settings | None = None) -> Starlette:
    """The desk over ``store``; ``clock`` ends the default period of every query.

    Routes: the console's pages (``/``, ``/mentions``, ``/incidents``, ``/voices``...,
    :mod:`pipeline.desk.console`), ``/login`` and ``/logout``, ``/static/...``, ``/healthz``,
    ``/readyz``, the API's index ``/api`` and ``/api/mentions``, ``/api/mentions.csv``,
    ``/api/volume``, ``/api/share-of-voice``, ``/api/top-voices``, ``/api/terms`` (their
    parameters: :mod:`pipeline.store.queries`), ``/api/themes``
    (:mod:`pipeline.store.theme_report`), ``/api/leaders``
    (:mod:`pipeline.store.leaders`), ``/api/incidents`` and
    ``/api/incidents/{incident_id}`` (:mod:`pipeline.store.incidents`). ``settings`` say who
    may use it (:mod:`pipeline.desk.security`) and the console's defaults.
    """
    settings = settings or Settings()
    access = Access.from_settings(settings)
    console = Console(settings, store, access, clock)
    inbox = InboxService.from_settings(settings, store, console.brands)
    courier = Courier(inbox.workflow, inbox.destinations, clock,
                      apply_rules=inbox.apply_rules, poll_s=settings.inbox_poll_s,
                      timeout_s=settings.webhook_timeout_s,
                      max_attempts=settings.webhook_max_attempts)
    desk = Starlette(
        routes=[*api_routes(store, clock, console), *inbox_routes(console, inbox, courier),
                *console_routes(console), *account_routes(console),
                Mount("/static", StaticFiles(packages=[("pipeline.desk", "static")]),
                      name="static")],
        middleware=[Middleware(Gate, access=access, refuse=refuse_anonymous)],
        exception_handlers={HTTPException: http_error, Exception: unexpected_error},
    )
    # the server starts the courier (forwards, forwarding rules); tests may drive it by hand
    desk.state.courier = courier
    return desk


def refuse_anonymous(request: Request) -> Response:
    """What an anonymous request gets when a login is needed: 401 from the API, else login."""
    if is_api_path(request.url.path):
        return error_response(401, None, "log in first (the console's /login)")
    return login_redirect(request)


def health_routes(store: ListeningStore, console: Console) -> list[BaseRoute]:
    """The API's index page, health (the process answers) and readiness (the store does)."""

    async def healthz(request: Request) -> Response:
        return ORJSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        try:
            await run_in_threadpool(store.ping)
        except (StoreUnavailable, StoreRejected) as error:
            log.warning("desk: not ready: %s", error)
            return error_response(503, None, f"the store does not answer: {error}")
        return ORJSONResponse({"status": "ready"})

    async def index(request: Request) -> Response:
        return console.render(request, "api_index.html", page="api")

    return [
        Route("/api", answering_errors(index)),
        Route("/healthz", healthz),
        Route("/readyz", answering_errors(readyz)),
    ]


def api_routes(store: ListeningStore, clock: Clock, console: Console) -> list[BaseRoute]:
    """The JSON API, its CSV export, its index, health and readiness."""

    def json_endpoint(
        parse: Callable[[Mapping[str, str], datetime], _Query],
        answer: Callable[[_Query], dict[str, Any]],
    ) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            query = parse(single_parameters(request.query_params.multi_items()), clock())
            return ORJSONResponse(await run_in_threadpool(answer, query))

        return answering_errors(endpoint)

    async def mentions_csv(request: Request) -> Response:
        if not visitor_of(request).may(Role.COMMUNITY_MANAGER):
            return error_response(403, None, "exporting mentions needs the community_manager "
                                  "or admin role")
        query, limit = parse_export_query(
            single_parameters(request.query_params.multi_items()), clock())
        # fetched before answering, so a store that is down is a 503, not a 200 cut short
        first_page = await run_in_threadpool(store.mentions, query)
        return StreamingResponse(
            export_csv(store, query, limit, first_page), media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": "attachment; filename=mentions.csv"},
        )

    async def incident(request: Request) -> Response:
        incident_id = parse_incident_id(request.path_params["incident_id"],
                                        single_parameters(request.query_params.multi_items()))
        found = await run_in_threadpool(store.incident, incident_id)
        if found is None:
            return error_response(404, "incident_id", "no such incident")
        return ORJSONResponse(found)

    return [
        *health_routes(store, console),
        Route("/api/mentions", json_endpoint(parse_mentions_query, store.mentions)),
        Route("/api/mentions.csv", answering_errors(mentions_csv)),
        Route("/api/volume", json_endpoint(parse_volume_query, store.volume)),
        Route("/api/share-of-voice",
              json_endpoint(parse_share_of_voice_query, store.share_of_voice)),
        Route("/api/top-voices", json_endpoint(parse_top_voices_query, store.top_voices)),
        Route("/api/terms", json_endpoint(parse_terms_query, store.terms)),
        Route("/api/themes", json_endpoint(parse_themes_query,
                                           functools.partial(themes_report, store))),
        Route("/api/leaders", json_endpoint(
            parse_leaders_query, functools.partial(answer_leaders, console))),
        Route("/api/incidents", json_endpoint(parse_incidents_query, store.incidents)),
        Route("/api/incidents/{incident_id}", answering_errors(incident)),
    ]


async def http_error(request: Request, error: Exception) -> Response:
    """Starlette's own errors (unknown path, wrong method) in the desk's shape."""
    assert isinstance(error, HTTPException)
    reason = f"{error.detail}: {request.method} {request.url.path}"
    return error_response(error.status_code, None, reason, headers=error.headers)


async def unexpected_error(request: Request, error: Exception) -> Response:
    """A failure outside the endpoints' own handling, in the desk's shape.

    Not logged here: Starlette raises the exception again once this answer is sent, and the
    server logs it with its traceback.
    """
    return error_response(500, None, "internal error (the desk's log has the details)")
