"""The inbox's page, its forms and its JSON API.

Reading (``GET /inbox``, ``GET /api/inbox``, ``GET /api/inbox/{id}``) is for every role;
acting (assign, answer, dismiss, reopen, note, forward, bulk) needs ``community_manager`` or
``admin``. Forms are CSRF-checked POSTs answered with a redirect back to the list, carrying a
notice (``done``, ``conflict``...); the API's POSTs take JSON and the session's CSRF token in
``X-CSRF-Token``. Someone else's change since the version the person saw is a conflict: 409
from the API, a notice that says who changed it on the page, and nothing overwritten.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from types import ModuleType
from typing import Any, Final
from urllib.parse import unquote_plus, urlencode

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from pipeline.desk.console.context import Console
from pipeline.desk.console.pages import page_errors, period_fields, view_of
from pipeline.desk.inbox.courier import Courier
from pipeline.desk.inbox.filters import STATUSES, parse_inbox_filters
from pipeline.desk.inbox.service import InboxService, UnknownDestination, UnknownItem
from pipeline.desk.security import csrf_ok, local_path, same_origin, visitor_of
from pipeline.desk.users import Role
from pipeline.stages.inbox.items import REASONS
from pipeline.stages.inbox.workflow import (
    DISMISS_REASONS,
    NOTE_MAX_CHARS,
    STATE_ACTIONS,
    Action,
    TransitionError,
)
from pipeline.store.queries import BadParameter
from pipeline.store.workflow import Conflict

Endpoint = Callable[[Request], Awaitable[Response]]
BULK_MAX: Final = 100
# what a form's redirect may tell the list page (anything else is ignored)
NOTICES: Final = ("assign", "unassign", "answer", "dismiss", "reopen", "noted", "forwarded",
                  "bulk", "conflict", "invalid")
FORM_FIELDS: Final = 20


class InboxRoutes:
    """The inbox's endpoints over one service and its courier."""

    def __init__(self, console: Console, inbox: InboxService, courier: Courier) -> None:
        self.console = console
        self.inbox = inbox
        self.courier = courier

    def routes(self) -> list[BaseRoute]:
        """The page, its forms, and ``/api/inbox...``."""
        page = page_errors(self.console, "inbox")
        answering_errors = _desk().answering_errors
        return [
            Route("/inbox", page(self.page), methods=["GET"]),
            Route("/inbox/act", self.act_form, methods=["POST"]),
            Route("/inbox/bulk", self.bulk_form, methods=["POST"]),
            Route("/inbox/forward", self.forward_form, methods=["POST"]),
            Route("/api/inbox", answering_errors(self.api_list), methods=["GET"]),
            Route("/api/inbox/forward", answering_errors(self.api_forward), methods=["POST"]),
            Route("/api/inbox/{mention_id:path}/actions", answering_errors(self.api_act),
                  methods=["POST"]),
            Route("/api/inbox/{mention_id:path}", answering_errors(self.api_item),
                  methods=["GET"]),
        ]

    # -- page ------------------------------------------------------------------------------

    async def page(self, request: Request) -> Response:
        """Bandeja: the items the filters ask for, most urgent (or newest) first."""
        console = self.console
        filters = parse_inbox_filters(dict(request.query_params))
        visitor = visitor_of(request)
        reader = _actor(request)
        listing = await run_in_threadpool(self.inbox.listing, filters, console.clock(), reader)
        return console.render(
            request, "inbox.html", page="inbox", filters=filters, listing=listing,
            reasons=REASONS, statuses=STATUSES, dismiss_reasons=DISMISS_REASONS,
            brands=console.own_brands(), destinations=sorted(self.inbox.destinations),
            assignees=self._assignees(), reader=reader,
            may_act=visitor.may(Role.COMMUNITY_MANAGER),
            notice=_notice(request.query_params.get("notice", "")),
            notice_by=request.query_params.get("by", "")[:64],
            notice_done=request.query_params.get("done", "0")[:6],
            notice_skipped=request.query_params.get("skipped", "0")[:6],
            timedelta_s=lambda seconds: timedelta(seconds=seconds),
            list_url="/inbox?" + urlencode(filters.params()), filter_url=filters.params,
            languages=console.reader(request)[1].languages(list(console.settings.languages)),
            **period_fields(console, view_of(console, request)),
        )

    def _assignees(self) -> list[str]:
        users = self.console.access.users
        if users is None:
            return []
        return sorted(user.name for user in users.users().values()
                      if user.role >= Role.COMMUNITY_MANAGER)

    async def act_form(self, request: Request) -> Response:
        """One action on one item, from its card's forms."""
        form = await request.form(max_files=0, max_fields=FORM_FIELDS)
        back = local_path(str(form.get("next") or ""), "/inbox")
        refused = self._refused(request, form)
        if refused:
            return refused
        name = str(form.get("action") or "")
        mention_id = str(form.get("id") or "")
        try:
            if name == "note":
                text = str(form.get("note") or "").strip()[:NOTE_MAX_CHARS]
                if text:
                    await run_in_threadpool(self.inbox.note, mention_id, text,
                                            _actor(request), self.console.clock())
                return _back(back, "noted")
            action = _action(name, form, _actor(request))
            await run_in_threadpool(self.inbox.act, mention_id, _version(form.get("version")),
                                    action, _actor(request), self.console.clock())
        except Conflict as conflict:
            return _back(back, "conflict", by=conflict.by or "")
        except (TransitionError, BadParameter, UnknownItem):
            return _back(back, "invalid")
        return _back(back, name)

    async def bulk_form(self, request: Request) -> Response:
        """One action on the items ticked in the list (each at the version shown)."""
        form = await request.form(max_files=0, max_fields=BULK_MAX + FORM_FIELDS)
        back = local_path(str(form.get("next") or ""), "/inbox")
        refused = self._refused(request, form)
        if refused:
            return refused
        actor = _actor(request)
        try:
            action = _action(str(form.get("action") or ""), form, actor)
        except (TransitionError, BadParameter):
            return _back(back, "invalid")
        done, conflicts = 0, 0
        for ticked in form.getlist("item")[:BULK_MAX]:
            mention_id, _, version = str(ticked).rpartition("@")
            try:
                await run_in_threadpool(self.inbox.act, mention_id, _version(version), action,
                                        actor, self.console.clock())
                done += 1
            except (Conflict, TransitionError, BadParameter, UnknownItem):
                conflicts += 1
        return _back(back, "bulk", done=str(done), skipped=str(conflicts))

    async def forward_form(self, request: Request) -> Response:
        """Forward a mention (its card) or an incident (its page) to a team."""
        form = await request.form(max_files=0, max_fields=FORM_FIELDS)
        back = local_path(str(form.get("next") or ""), "/inbox")
        refused = self._refused(request, form)
        if refused:
            return refused
        try:
            await self._forward(str(form.get("kind") or "mention"), str(form.get("id") or ""),
                                str(form.get("destination") or ""),
                                str(form.get("note") or "")[:NOTE_MAX_CHARS], _actor(request))
        except (UnknownItem, UnknownDestination, BadParameter):
            return _back(back, "invalid")
        return _back(back, "forwarded")

    async def _forward(self, kind: str, subject: str, destination: str, note: str,
                       sender: str) -> bool:
        now = self.console.clock()
        if kind == "incident":
            found = await run_in_threadpool(self.console.incidents.detail, subject)
            if found is None:
                raise UnknownItem(subject)
            queued = await run_in_threadpool(self.inbox.forward_incident, found["incident"],
                                             destination, sender, note, now)
        elif kind == "mention":
            item = await run_in_threadpool(self.inbox.item, subject, now)
            queued = await run_in_threadpool(self.inbox.forward_mention, item["mention"],
                                             destination, sender, note, now)
        else:
            raise BadParameter("kind", "mention or incident")
        self.courier.wake()
        return bool(queued)

    def _refused(self, request: Request, form: Any) -> Response | None:
        if not csrf_ok(request, form):
            return self.console.render(request, "error.html", page="inbox", status_code=403,
                                       problem="csrf", field=None, reason="")
        if not visitor_of(request).may(Role.COMMUNITY_MANAGER):
            return self.console.render(request, "error.html", page="inbox", status_code=403,
                                       problem="act_forbidden", field=None, reason="")
        return None

    # -- API -------------------------------------------------------------------------------

    async def api_list(self, request: Request) -> Response:
        """``GET /api/inbox``: the items, with the page's filters, and the counts."""
        params = _desk().single_parameters(request.query_params.multi_items())
        filters = parse_inbox_filters(params)
        listing = await run_in_threadpool(self.inbox.listing, filters, self.console.clock(),
                                          _actor(request))
        return _desk().ORJSONResponse({"items": listing.items, "total": listing.total,
                               "counts": listing.counts})

    async def api_item(self, request: Request) -> Response:
        """``GET /api/inbox/{id}``: one item with its copies, action log and forwards."""
        try:
            found = await run_in_threadpool(self.inbox.item, request.path_params["mention_id"],
                                            self.console.clock())
        except UnknownItem:
            return _desk().error_response(404, "mention_id",
                                           "no mention that needs a reply has it")
        return _desk().ORJSONResponse(found)

    async def api_act(self, request: Request) -> Response:
        """``POST /api/inbox/{id}/actions`` ``{"action", "version", ...}``: the new state."""
        body = await self._api_body(request)
        if isinstance(body, Response):
            return body
        mention_id = request.path_params["mention_id"]
        name = str(body.get("action") or "")
        try:
            if name == "note":
                text = str(body.get("note") or "").strip()[:NOTE_MAX_CHARS]
                if not text:
                    return _desk().error_response(400, "note", "write the note")
                await run_in_threadpool(self.inbox.note, mention_id, text, _actor(request),
                                        self.console.clock())
                return _desk().ORJSONResponse({"noted": True})
            state = await run_in_threadpool(
                self.inbox.act, mention_id, _version(body.get("version")),
                _action(name, body, _actor(request)), _actor(request), self.console.clock())
        except Conflict as conflict:
            current = conflict.current
            return _desk().ORJSONResponse({"error": {
                "field": "version", "reason": f"changed meanwhile by {conflict.by}",
                "current": {"status": str(current.status), "assignee": current.assignee,
                            "version": current.version}}}, status_code=409)
        except TransitionError as error:
            return _desk().error_response(400, error.field, error.reason)
        except UnknownItem:
            return _desk().error_response(404, "mention_id",
                                          "no mention that needs a reply has it")
        return _desk().ORJSONResponse({"id": mention_id, "status": str(state.status),
                               "assignee": state.assignee, "reply": state.reply,
                               "dismiss_reason": state.dismiss_reason,
                               "version": state.version})

    async def api_forward(self, request: Request) -> Response:
        """``POST /api/inbox/forward`` ``{"kind", "id", "destination", "note"}``: 202 queued."""
        body = await self._api_body(request)
        if isinstance(body, Response):
            return body
        try:
            queued = await self._forward(
                str(body.get("kind") or "mention"), str(body.get("id") or ""),
                str(body.get("destination") or ""), str(body.get("note") or "")[:NOTE_MAX_CHARS],
                _actor(request))
        except UnknownItem:
            return _desk().error_response(404, "id", "no such mention or incident")
        except UnknownDestination:
            return _desk().error_response(400, "destination",
                                           "not a destination of the routing file")
        return _desk().ORJSONResponse({"queued": queued}, status_code=202)

    async def _api_body(self, request: Request) -> dict[str, Any] | Response:
        visitor = visitor_of(request)
        token = request.headers.get("x-csrf-token", "")
        if not (hmac.compare_digest(token, visitor.csrf) and same_origin(request)):
            return _desk().error_response(403, "x-csrf-token", "send the session's CSRF token")
        if not visitor.may(Role.COMMUNITY_MANAGER):
            return _desk().error_response(
                403, None, "acting on the inbox needs the community_manager or admin role")
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return _desk().error_response(400, None, "the body is not JSON")
        if not isinstance(body, dict):
            return _desk().error_response(400, None, "the body is not a JSON object")
        return body


def _desk() -> ModuleType:
    # the desk's app module builds these routes, so it is imported when they run, not before
    from pipeline.desk import app

    return app


def _notice(notice: str) -> str:
    return notice if notice in NOTICES else ""


def _actor(request: Request) -> str:
    user = visitor_of(request).user
    return user.name if user is not None else "local"


def _version(value: Any) -> int:
    try:
        version = int(str(value))
    except ValueError:
        raise BadParameter("version", "the item's version, a whole number") from None
    if version < 0:
        raise BadParameter("version", "the item's version, a whole number")
    return version


def _action(name: str, fields: Mapping[str, Any], actor: str) -> Action:
    if name not in STATE_ACTIONS:
        raise BadParameter("action", f"one of {', '.join(STATE_ACTIONS)}")
    assignee = str(fields.get("assignee") or "").strip()
    return Action(name, assignee=actor if assignee == "me" else assignee or None,
                  reply=str(fields.get("reply") or "") or None,
                  reason=str(fields.get("reason") or "") or None)


def _back(target: str, notice: str, **extra: str) -> RedirectResponse:
    base, _, query = target.partition("?")
    kept = [(name, value) for name, value in
            (pair.split("=", 1) if "=" in pair else (pair, "") for pair in query.split("&")
             if pair) if name not in ("notice", "by", "done", "skipped")]
    params = [(unquote_plus(name), unquote_plus(value)) for name, value in kept]
    params += [("notice", notice), *extra.items()]
    return RedirectResponse(f"{base}?{urlencode(params)}", status_code=303)


def inbox_routes(console: Console, inbox: InboxService, courier: Courier) -> list[BaseRoute]:
    """Every route of the inbox (and the incident page's forward form's choices)."""
    console.templates.globals.update(forward_destinations=sorted(inbox.destinations),
                                     act_role=Role.COMMUNITY_MANAGER)
    return InboxRoutes(console, inbox, courier).routes()

