"""Authentication dependencies: ``CurrentUser``, ``CurrentOrganizer`` and ``PageUser``, and
``LoginAttempt`` (where a password attempt comes from, for the login throttles).

A request is authenticated by its bearer token or, for browsers, by the session cookie of
``accounts.sessions`` (then an unsafe method also needs the CSRF header).

The user is read in a short unit of work of its own, so a route that then waits (a
long-poll, an event stream) or hashes holds no pooled connection meanwhile; the route's
``SessionDep`` takes one only when it first queries."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.accounts import devices, guard, service, sessions
from app.accounts.models import User
from app.core.database import session_scope
from app.core.errors import Unauthorized
from app.core.security import decode_access_token
from app.core.throttle import ClientAddress

_CANONICAL_ID = re.compile(r"[1-9][0-9]{0,17}", re.ASCII)

bearer = HTTPBearer(auto_error=False, description="The access token from /api/login.")


def _user_for_token(token: str) -> User | None:
    payload = decode_access_token(token) or {}
    sub, version = payload.get("sub"), payload.get("ver")
    user = None
    # Only canonical ids: str.isdigit() would take "\u0661" (an Arabic-Indic one) for user 1.
    if isinstance(sub, str) and _CANONICAL_ID.fullmatch(sub) and type(version) is int:
        with session_scope() as session:  # detached afterwards: plain attributes only
            user = service.get_user(session=session, user_id=int(sub))
        if user is not None and user.token_version != version:
            user = None  # revoked by a logout or a password change
    return user


def get_current_user(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> User:
    token = credentials.credentials if credentials is not None else sessions.session_token(request)
    if token is None:
        raise Unauthorized("Send 'Authorization: Bearer <token>'.")
    user = _user_for_token(token)
    if user is None:
        raise Unauthorized("The access token is invalid or expired; log in again.", code="invalid_token")
    if credentials is None:  # the browser's cookie: the request must come from our pages
        sessions.check_csrf_header(request)
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


def get_current_organizer(user: CurrentUser) -> User:
    return service.require_organizer(user)


CurrentOrganizer = Annotated[User, Depends(get_current_organizer)]


def get_page_user(request: Request) -> User | None:
    """The signed-in browser's user, or None (pages show the sign-in form instead)."""
    token = sessions.session_token(request)
    return _user_for_token(token) if token else None


PageUser = Annotated[User | None, Depends(get_page_user)]


def require_page_user(user: PageUser) -> User:
    if user is None:
        raise Unauthorized("Log in to see this page.")
    return user


def require_page_organizer(user: Annotated[User, Depends(require_page_user)]) -> User:
    return service.require_organizer(user)


#: Pages that need a signed-in browser; the web app turns the 401 into the log-in page.
SignedIn = Annotated[User, Depends(require_page_user)]
SignedInOrganizer = Annotated[User, Depends(require_page_organizer)]


def login_attempt(request: Request, address: ClientAddress) -> guard.Attempt:
    """The client's address and device cookie, as the login throttles count them."""
    return guard.Attempt(address=address, device_cookie=request.cookies.get(devices.DEVICE_COOKIE))


LoginAttempt = Annotated[guard.Attempt, Depends(login_attempt)]
