"""Authentication dependencies: ``CurrentUser`` and ``CurrentOrganizer``.

The user is read in a short unit of work of its own, so a route that then waits (a
long-poll, an event stream) or hashes holds no pooled connection meanwhile; the route's
``SessionDep`` takes one only when it first queries."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.accounts import service
from app.accounts.models import User
from app.core.database import session_scope
from app.core.errors import Unauthorized
from app.core.security import decode_access_token

_CANONICAL_ID = re.compile(r"[1-9][0-9]{0,17}", re.ASCII)

bearer = HTTPBearer(auto_error=False, description="The access token from /api/login.")


def get_current_user(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> User:
    if credentials is None:
        raise Unauthorized("Send 'Authorization: Bearer <token>'.")
    payload = decode_access_token(credentials.credentials) or {}
    sub, version = payload.get("sub"), payload.get("ver")
    user = None
    # Only canonical ids: str.isdigit() would take "\u0661" (an Arabic-Indic one) for user 1.
    if isinstance(sub, str) and _CANONICAL_ID.fullmatch(sub) and type(version) is int:
        with session_scope() as session:  # detached afterwards: plain attributes only
            user = service.get_user(session=session, user_id=int(sub))
        if user is not None and user.token_version != version:
            user = None  # revoked by a logout or a password change
    if user is None:
        raise Unauthorized("The access token is invalid or expired; log in again.", code="invalid_token")
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


def get_current_organizer(user: CurrentUser) -> User:
    return service.require_organizer(user)


CurrentOrganizer = Annotated[User, Depends(get_current_organizer)]
