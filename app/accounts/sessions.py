"""Browser sessions: the session cookie and CSRF tokens.

API clients send ``Authorization: Bearer``; browsers cannot put a header on an ``<img>`` or a
link, so the web app keeps the same access token in an HttpOnly cookie instead (``SameSite=Lax``,
``Secure`` outside development and on every request that came over HTTPS, kept across browser
restarts for the token's lifetime). A request authenticated by that cookie is one a browser
sends on its own, so every state-changing one must also prove it comes from our pages: the
signed double-submit pattern, bound to the session (OWASP). Each browser gets a random ``csrf``
cookie; our pages embed ``csrf_token(cookie, session)``, an HMAC under the server's key of that
cookie and of the session cookie it goes with, in every form and in a ``<meta>`` that scripts
send back as ``X-CSRF-Token``. Another site can make the browser send the cookies, but cannot
read them or our pages, so it cannot produce the token; a token made for another session (one
an attacker holds, or the anonymous one before login) does not pass. The ``csrf`` cookie is
replaced at login and logout.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from contextvars import ContextVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.config import get_settings
from app.core.errors import Forbidden

SESSION_COOKIE = "session"
CSRF_COOKIE = "csrf"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class CsrfFailed(Forbidden):
    code = "csrf_failed"
    message = "This form has expired or did not come from this site. Reload the page and try again."


_over_https: ContextVar[bool] = ContextVar("over_https", default=False)


class HttpsCookiesMiddleware:
    """Remembers whether the request came over HTTPS (directly, or through a trusted proxy's
    ``X-Forwarded-Proto``), so the cookies set on its answer are ``Secure`` even in
    development."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = _over_https.set(scope.get("scheme") == "https")
        try:
            await self.app(scope, receive, send)
        finally:
            _over_https.reset(token)


def _secure() -> bool:
    return get_settings().environment != "development" or _over_https.get()


def csrf_token(cookie_value: str, session: str | None = None) -> str:
    """The token our pages embed for the browser holding ``cookie_value`` and, when signed
    in, the session cookie ``session``."""
    key = get_settings().signing_key().encode()
    bound = hashlib.sha256((session or "").encode()).hexdigest()
    return hmac.new(key, f"csrf:{cookie_value}:{bound}".encode(), hashlib.sha256).hexdigest()


def csrf_token_for(request: Request, cookie_value: str) -> str:
    """The token for this request's browser: its CSRF cookie and its current session."""
    return csrf_token(cookie_value, session_token(request))


def ensure_csrf_cookie(request: Request) -> str:
    """This browser's CSRF cookie value (a new one when it has none yet; the caller sets it
    on the response with :func:`set_csrf_cookie`)."""
    value = request.cookies.get(CSRF_COOKIE, "")
    return value if 20 <= len(value) <= 64 else secrets.token_urlsafe(24)


def set_csrf_cookie(response: Response, value: str) -> None:
    response.set_cookie(
        CSRF_COOKIE, value, max_age=60 * 60 * 24 * 365, httponly=True, samesite="lax", secure=_secure()
    )


def check_csrf(request: Request, submitted: str | None) -> None:
    """403 ``csrf_failed`` unless ``submitted`` is the token of this browser's CSRF cookie."""
    cookie = request.cookies.get(CSRF_COOKIE)
    if not cookie or not submitted or not hmac.compare_digest(csrf_token_for(request, cookie), submitted):
        raise CsrfFailed()


def check_csrf_header(request: Request) -> None:
    """For cookie-authenticated API calls: unsafe methods need the ``X-CSRF-Token`` header."""
    if request.method not in SAFE_METHODS:
        check_csrf(request, request.headers.get(CSRF_HEADER))


def session_token(request: Request) -> str | None:
    return request.cookies.get(SESSION_COOKIE) or None


def start_session(response: Response, access_token: str) -> None:
    """Sign this browser in; its CSRF cookie is replaced (no token from before the login,
    which an attacker may have planted, survives it)."""
    set_csrf_cookie(response, secrets.token_urlsafe(24))
    response.set_cookie(
        SESSION_COOKIE,
        access_token,
        max_age=get_settings().access_token_expire_minutes * 60,
        httponly=True,
        samesite="lax",
        secure=_secure(),
    )


def end_session(response: Response) -> None:
    set_csrf_cookie(response, secrets.token_urlsafe(24))
    response.delete_cookie(SESSION_COOKIE, httponly=True, samesite="lax", secure=_secure())
