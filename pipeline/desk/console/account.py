"""Logging in and out, the reader's preferences, and who has access: the console's POSTs.

Every POST here checks the session's CSRF token (:func:`~pipeline.desk.security.csrf_ok`) and
answers with a redirect (post/redirect/get), to a path on this desk only.
"""

from __future__ import annotations

import secrets
from typing import Any, Final
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
    return Account(console).routes()


class Account:
    """Logging in and out, the reader's preferences, who has access."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.access = console.access

    def routes(self) -> list[BaseRoute]:
        """The account's routes."""
        return [
            Route("/login", self.login_form, methods=["GET"]),
            Route("/login", self.login, methods=["POST"]),
            Route("/logout", self.logout, methods=["POST"]),
            Route("/preferences", self.preferences_form, methods=["GET"]),
            Route("/preferences", self.save_preferences, methods=["POST"]),
            Route("/users", self.users, methods=["GET"]),
        ]

    async def login_form(self, request: Request) -> Response:
        """The login page (straight on for a reader who needs none)."""
        visitor = visitor_of(request)
        target = local_path(request.query_params.get("next"))
        if not visitor.auth_on or visitor.user is not None:
            return RedirectResponse(target, status_code=303)
        return self.console.render(request, "login.html", page="login", next=target,
                                   problem=None)

    async def login(self, request: Request) -> Response:
        """Check the CSRF token, the throttle and the password; start a session."""
        form = await request.form(max_files=0, max_fields=10)
        target = local_path(str(form.get("next") or ""))
        if not csrf_ok(request, form):
            return self._login_problem(request, target, "csrf", 403)
        name = str(form.get("username") or "").strip().lower()[:FIELD_MAX_CHARS]
        password = str(form.get("password") or "")[:FIELD_MAX_CHARS]
        address = request.client.host if request.client else "unknown"
        wait = self.access.throttle.retry_after(name, address)
        if wait is not None:
            return self._login_problem(request, target, "throttled", 429,
                                       minutes=max(1, round(wait / 60)),
                                       headers={"retry-after": str(int(wait) + 1)})
        users = self.access.users
        user = (await run_in_threadpool(users.authenticate, name, password)
                if users is not None and name and password else None)
        if user is None:
            self.access.throttle.failed(name, address)
            return self._login_problem(request, target, "wrong", 401)
        self.access.throttle.succeeded(name)
        response = RedirectResponse(target, status_code=303)
        # a new token at login: one planted before it (session fixation) is worth nothing
        response.headers.append("set-cookie", self.access.sessions.cookie(
            user.name, secrets.token_urlsafe(24), request.scope))
        return response

    def _login_problem(self, request: Request, target: str, problem: str, status_code: int,
                       **values: Any) -> Response:
        return self.console.render(request, "login.html", page="login", next=target,
                                   problem=problem, status_code=status_code, **values)

    async def logout(self, request: Request) -> Response:
        """End the session (a CSRF-checked POST, so no other site can log a reader out)."""
        form = await request.form(max_files=0, max_fields=10)
        if not csrf_ok(request, form):
            return self._forbidden(request, "csrf")
        response = RedirectResponse("/login" if self.access.auth_on else "/", status_code=303)
        response.headers.append("set-cookie", self.access.sessions.ended(request.scope))
        return response

    def _forbidden(self, request: Request, problem: str, page: str = "") -> Response:
        return self.console.render(request, "error.html", page=page, status_code=403,
                                   problem=problem, field=None, reason="")

    async def preferences_form(self, request: Request) -> Response:
        """The language and time-zone form."""
        return self.console.render(request, "preferences.html", page="preferences",
                                   zones=zone_names(),
                                   back=local_path(request.query_params.get("next")))

    async def save_preferences(self, request: Request) -> Response:
        """Keep the reader's language and zone in cookies; back to where they were."""
        form = await request.form(max_files=0, max_fields=10)
        if not csrf_ok(request, form):
            return self._forbidden(request, "csrf")
        response = RedirectResponse(local_path(str(form.get("next") or "")), status_code=303)
        secure = request.url.scheme == "https" or self.console.settings.desk_secure_cookies
        language = str(form.get("lang") or "")
        if language in LANGUAGES:
            response.set_cookie(LANGUAGE_COOKIE, language, max_age=PREFERENCE_MAX_AGE_S,
                                httponly=True, samesite="lax", secure=secure)
        zone = str(form.get("tz") or "")
        if zone and _is_zone(zone):
            response.set_cookie(ZONE_COOKIE, zone, max_age=PREFERENCE_MAX_AGE_S,
                                httponly=True, samesite="lax", secure=secure)
        return response

    async def users(self, request: Request) -> Response:
        """Who has access, and their roles (admins only)."""
        if not visitor_of(request).may(Role.ADMIN):
            return self._forbidden(request, "forbidden", page="users")
        directory = self.access.users
        people = sorted(directory.users().values(), key=lambda user: user.name) \
            if directory is not None else []
        return self.console.render(request, "users.html", page="users", people=people)


def _is_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True
