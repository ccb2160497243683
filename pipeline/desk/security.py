"""Who may use the desk: login sessions, CSRF tokens, a login throttle, and the gate itself.

The desk listens on loopback by default, where whoever can reach it is already on the machine.
Beyond loopback, or whenever a users file is set (``PIPELINE_DESK_USERS_FILE``), every page and
API route needs a login: an anonymous page request is sent to ``/login``, an anonymous API
request answers 401 in the desk's error shape. ``/healthz``, ``/readyz``, the login page and the
static files (styles, scripts, the chart library and its licence) stay open.

- **Sessions** are a signed cookie (itsdangerous, keyed by ``PIPELINE_DESK_SESSION_SECRET``;
  generated per process, with a warning, when unset), ``HttpOnly``, ``SameSite=Lax``, and
  ``Secure`` over HTTPS (or always, with ``PIPELINE_DESK_SECURE_COOKIES``). It carries the user
  name and a CSRF token, and expires after ``PIPELINE_DESK_SESSION_HOURS``; the user's role is
  read from the users file on every request, so a removed user is out at once.
- **CSRF**: every state-changing request (login, logout, the preferences) is a POST whose form
  carries the session's token; a POST whose ``Origin`` is another site is refused as well.
- **Login throttle**: failed logins are counted per user name and per client address over a
  window; past either limit the login answers 429 before any password is checked.
"""

from __future__ import annotations

import collections
import hmac
import ipaddress
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote, urlsplit

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipeline.config import Settings
from pipeline.desk.users import Role, User, UserDirectory

log = logging.getLogger(__name__)

SESSION_COOKIE: Final = "desk_session"
OPEN_PATHS: Final = frozenset({"/healthz", "/readyz", "/login", "/favicon.ico"})
OPEN_PREFIXES: Final = ("/static/",)
# answered 401 rather than sent to the login page: scripts and the console's own fetches
API_PREFIXES: Final = ("/api/", "/api", "/fragments/")
# failed logins allowed per user name and per client address within the window
USER_FAILURES: Final = 5
ADDRESS_FAILURES: Final = 20
THROTTLE_WINDOW_S: Final = 900.0
_THROTTLE_KEYS: Final = 10_000
# what every HTML answer carries: no framing, no inline script, no referrer to other sites
SECURITY_HEADERS: Final = {
    "content-security-policy": "default-src 'self'; img-src 'self' data:; "
                               "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; "
                               "base-uri 'none'; form-action 'self'",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


class DeskAccessError(RuntimeError):
    """The desk cannot start with these access settings (listening beyond loopback, no users)."""


def is_loopback(host: str) -> bool:
    """True when ``host`` is reachable from this machine only.

    >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("0.0.0.0")
    (True, True, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class Visitor:
    """Who sent a request: their user (None when anonymous or auth is off) and session."""

    user: User | None
    csrf: str
    auth_on: bool
    fresh_session: bool = False

    @property
    def role(self) -> Role | None:
        """What they may do: everything when auth is off, nothing when anonymous."""
        if not self.auth_on:
            return Role.ADMIN
        return self.user.role if self.user else None

    def may(self, role: Role) -> bool:
        """True when they hold ``role`` or a higher one."""
        return self.role is not None and self.role >= role


class Sessions:
    """Signed session cookies: ``{"u": user name or None, "c": CSRF token}``."""

    def __init__(self, secret: str, max_age_s: float, *, always_secure: bool) -> None:
        self.serializer = URLSafeTimedSerializer(secret, salt="mentions-desk-session")
        self.max_age_s = max_age_s
        self.always_secure = always_secure

    def read(self, cookie: str | None) -> tuple[str | None, str] | None:
        """The user name and CSRF token of a valid, unexpired cookie; None otherwise."""
        if not cookie:
            return None
        try:
            payload = self.serializer.loads(cookie, max_age=int(self.max_age_s))
        except BadSignature:
            return None
        if not isinstance(payload, dict) or not isinstance(payload.get("c"), str):
            return None
        user = payload.get("u")
        return (user if isinstance(user, str) else None), payload["c"]

    def cookie(self, user: str | None, csrf: str, scope: Scope) -> str:
        """The ``Set-Cookie`` value of a session for ``user`` (a new token on every login)."""
        value = self.serializer.dumps({"u": user, "c": csrf})
        secure = "; Secure" if self.always_secure or scope.get("scheme") == "https" else ""
        return (f"{SESSION_COOKIE}={value}; Path=/; Max-Age={int(self.max_age_s)}; HttpOnly; "
                f"SameSite=Lax{secure}")

    def ended(self, scope: Scope) -> str:
        """The ``Set-Cookie`` value that ends a session (logout)."""
        secure = "; Secure" if self.always_secure or scope.get("scheme") == "https" else ""
        return f"{SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax{secure}"


@dataclass
class LoginThrottle:
    """Failed logins per user name and per client address within a sliding window."""

    per_user: int = USER_FAILURES
    per_address: int = ADDRESS_FAILURES
    window_s: float = THROTTLE_WINDOW_S
    clock: Callable[[], float] = time.monotonic
    _failures: dict[str, collections.deque[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def retry_after(self, user: str, address: str) -> float | None:
        """Seconds until ``user`` may try again from ``address``; None when they may now.

        >>> throttle = LoginThrottle(per_user=2, clock=lambda: 100.0)
        >>> for _ in range(2):
        ...     throttle.failed("ana", "10.0.0.1")
        >>> throttle.retry_after("ana", "10.0.0.2"), throttle.retry_after("luis", "10.0.0.1")
        (900.0, None)
        """
        now = self.clock()
        waits = [self._wait(f"user:{user.lower()}", self.per_user, now),
                 self._wait(f"address:{address}", self.per_address, now)]
        longest = max(wait or 0.0 for wait in waits)
        return longest or None

    def failed(self, user: str, address: str) -> None:
        """Count one failed login."""
        now = self.clock()
        with self._lock:
            if len(self._failures) >= _THROTTLE_KEYS:
                self._forget_before(now - self.window_s)
            for key in (f"user:{user.lower()}", f"address:{address}"):
                self._failures.setdefault(key, collections.deque()).append(now)

    def succeeded(self, user: str) -> None:
        """Forget the user's failures (the address's stay: a guesser may know one password)."""
        with self._lock:
            self._failures.pop(f"user:{user.lower()}", None)

    def _wait(self, key: str, limit: int, now: float) -> float | None:
        with self._lock:
            times = self._failures.get(key)
            if not times:
                return None
            while times and times[0] <= now - self.window_s:
                times.popleft()
            if len(times) < limit:
                return None
            return times[-limit] + self.window_s - now

    def _forget_before(self, moment: float) -> None:
        for key in [key for key, times in self._failures.items() if times[-1] <= moment]:
            del self._failures[key]
        if len(self._failures) >= _THROTTLE_KEYS:  # a flood of distinct keys: start over
            self._failures.clear()


@dataclass(frozen=True, slots=True)
class Access:
    """The desk's access rules for one process: on or off, its users, sessions and throttle."""

    auth_on: bool
    users: UserDirectory | None
    sessions: Sessions
    throttle: LoginThrottle

    @classmethod
    def from_settings(cls, settings: Settings) -> Access:
        """The rules the settings ask for; :class:`DeskAccessError` when they cannot hold."""
        auth_on = settings.desk_users_file is not None or not is_loopback(settings.desk_host)
        if auth_on and settings.desk_users_file is None:
            raise DeskAccessError(
                f"the desk would listen on {settings.desk_host}, beyond this machine, so it "
                "needs a login: set PIPELINE_DESK_USERS_FILE and add a user with "
                "`mentions desk user add NAME --role viewer`")
        secret = settings.desk_session_secret.get_secret_value()
        if auth_on and not secret:
            log.warning("desk: PIPELINE_DESK_SESSION_SECRET is not set: this process signs "
                        "sessions with a key of its own, so logins end when it restarts and "
                        "other replicas do not accept them")
        users = UserDirectory(settings.desk_users_file) if settings.desk_users_file else None
        return cls(auth_on, users,
                   Sessions(secret or secrets.token_urlsafe(32),
                            settings.desk_session_hours * 3600,
                            always_secure=settings.desk_secure_cookies),
                   LoginThrottle())

    def visitor(self, scope: Scope) -> Visitor:
        """Who sent the request in ``scope``, from its session cookie."""
        session = self.sessions.read(Request(scope).cookies.get(SESSION_COOKIE))
        if session is None:
            return Visitor(None, secrets.token_urlsafe(24), self.auth_on, fresh_session=True)
        name, csrf = session
        user = self.users.get(name) if (self.users is not None and name) else None
        return Visitor(user, csrf, self.auth_on)


def visitor_of(request: Request) -> Visitor:
    """The visitor the gate found for ``request``."""
    visitor = request.scope.get("desk.visitor")
    assert isinstance(visitor, Visitor), "the request did not pass the desk's gate"
    return visitor


def is_api_path(path: str) -> bool:
    """True for the paths that answer JSON (401 when anonymous) rather than pages."""
    return path == "/api" or path.startswith(API_PREFIXES)


class Gate:
    """ASGI middleware: finds the visitor, turns anonymous ones away when auth is on.

    It also gives a visitor without a session one (for its CSRF token), unless the answer sets
    the session cookie itself (login, logout), and adds :data:`SECURITY_HEADERS` to HTML.
    """

    def __init__(self, app: ASGIApp, access: Access,
                 refuse: Callable[[Request], Response]) -> None:
        self.app = app
        self.access = access
        self.refuse = refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request (only HTTP requests are looked at)."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        visitor = self.access.visitor(scope)
        scope["desk.visitor"] = visitor
        path = scope["path"]
        if (visitor.auth_on and visitor.user is None and path not in OPEN_PATHS
                and not path.startswith(OPEN_PREFIXES)):
            await self.refuse(Request(scope))(scope, receive, send)
            return

        async def send_with_session(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                sets_session = any(value.startswith(f"{SESSION_COOKIE}=")
                                   for value in headers.getlist("set-cookie"))
                if visitor.fresh_session and not sets_session:
                    headers.append("set-cookie",
                                   self.access.sessions.cookie(None, visitor.csrf, scope))
                if headers.get("content-type", "").startswith("text/html"):
                    for name, value in SECURITY_HEADERS.items():
                        headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_session)


def login_redirect(request: Request) -> RedirectResponse:
    """Send an anonymous reader to the login page, coming back here afterwards."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


def local_path(target: str | None, default: str = "/") -> str:
    """``target`` if it is a path on this desk, else ``default`` (no open redirect).

    >>> local_path("/mentions?q=factura"), local_path("//evil.example/"), local_path(None)
    ('/mentions?q=factura', '/', '/')
    """
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return default
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else default


def same_origin(request: Request) -> bool:
    """False when a browser says the request came from another site (its ``Origin``)."""
    origin = Headers(scope=request.scope).get("origin")
    if origin is None or origin == "null":
        return origin is None
    host = request.headers.get("host", "")
    return urlsplit(origin).netloc == host


def csrf_ok(request: Request, form: Any) -> bool:
    """True when a POST's form carries the session's CSRF token and no foreign ``Origin``."""
    token = form.get("csrf") if form is not None else None
    expected = visitor_of(request).csrf
    return (isinstance(token, str) and hmac.compare_digest(token, expected)
            and same_origin(request))
