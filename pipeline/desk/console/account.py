"""Logging in and out, the reader's preferences, and who has access: the console's POSTs.

Every POST here checks the session's CSRF token (:func:`~pipeline.desk.security.csrf_ok`) and
answers with a redirect (post/redirect/get), to a path on this desk only.
"""

from __future__ import annotations

import secrets
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from pipeline.desk.console.context import (
    LANGUAGE_COOKIE,
    ZONE_COOKIE,
    Console,
    zone_names,
)
from pipeline.desk.i18n import LANGUAGES
from pipeline.desk.security import csrf_ok, local_path, visitor_of
from pipeline.desk.users import Role

PREFERENCE_MAX_AGE_S: Final = 365 * 86400
# a form field longer than this is not a user name or a password anyone typed
FIELD_MAX_CHARS: Final = 1024


def account_routes(console: Console) -> list[BaseRoute]:
    """``/login``, ``/logout``, ``/preferences`` and ``/users``."""
    access = console.access

    async def login_form(request: Request) -> Response:
        visitor = visitor_of(request)
        target = local_path(request.query_params.get("next"))
        if not visitor.auth_on or visitor.user is not None:
            return RedirectResponse(target, status_code=303)
        return console.render(request, "login.html", page="login", next=target, problem=None)

    async def login(request: Request) -> Response:
        form = await request.form(max_files=0, max_fields=10)
        target = local_path(str(form.get("next") or ""))
        if not csrf_ok(request, form):
            return console.render(request, "login.html", page="login", next=target,
                                  problem="csrf", status_code=403)
        name = str(form.get("username") or "").strip().lower()[:FIELD_MAX_CHARS]
        password = str(form.get("password") or "")[:FIELD_MAX_CHARS]
        address = request.client.host if request.client else "unknown"
        wait = access.throttle.retry_after(name, address)
        if wait is not None:
            return console.render(
                request, "login.html", page="login", next=target, problem="throttled",
                minutes=max(1, round(wait / 60)), status_code=429,
                headers={"retry-after": str(int(wait) + 1)})
        user = (await run_in_threadpool(access.users.authenticate, name, password)
                if access.users is not None and name and password else None)
        if user is None:
            access.throttle.failed(name, address)
            return console.render(request, "login.html", page="login", next=target,
                                  problem="wrong", status_code=401)
        access.throttle.succeeded(name)
        response = RedirectResponse(target, status_code=303)
        # a new token at login: one planted before it (session fixation) is worth nothing
        response.headers.append("set-cookie", access.sessions.cookie(
            user.name, secrets.token_urlsafe(24), request.scope))
        return response

    async def logout(request: Request) -> Response:
        form = await request.form(max_files=0, max_fields=10)
        if not csrf_ok(request, form):
            return console.render(request, "error.html", page="", status_code=403,
                                  problem="csrf", field=None, reason="")
        response = RedirectResponse("/login" if access.auth_on else "/", status_code=303)
        response.headers.append("set-cookie", access.sessions.ended(request.scope))
        return response

    async def preferences_form(request: Request) -> Response:
        return console.render(request, "preferences.html", page="preferences",
                              zones=zone_names(),
                              back=local_path(request.query_params.get("next")))

    async def save_preferences(request: Request) -> Response:
        form = await request.form(max_files=0, max_fields=10)
        if not csrf_ok(request, form):
            return console.render(request, "error.html", page="", status_code=403,
                                  problem="csrf", field=None, reason="")
        response = RedirectResponse(local_path(str(form.get("next") or "")), status_code=303)
        secure = request.url.scheme == "https" or console.settings.desk_secure_cookies
        language = str(form.get("lang") or "")
        if language in LANGUAGES:
            response.set_cookie(LANGUAGE_COOKIE, language, max_age=PREFERENCE_MAX_AGE_S,
                                httponly=True, samesite="lax", secure=secure)
        zone = str(form.get("tz") or "")
        if zone and _is_zone(zone):
            response.set_cookie(ZONE_COOKIE, zone, max_age=PREFERENCE_MAX_AGE_S,
                                httponly=True, samesite="lax", secure=secure)
        return response

    async def users(request: Request) -> Response:
        visitor = visitor_of(request)
        if not visitor.may(Role.ADMIN):
            return console.render(request, "error.html", page="users", status_code=403,
                                  problem="forbidden", field=None, reason="")
        people = sorted(access.users.users().values(), key=lambda user: user.name) \
            if access.users is not None else []
        return console.render(request, "users.html", page="users", people=people)

    return [
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/preferences", preferences_form, methods=["GET"]),
        Route("/preferences", save_preferences, methods=["POST"]),
        Route("/users", users, methods=["GET"]),
    ]


def _is_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True
