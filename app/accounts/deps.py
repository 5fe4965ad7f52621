"""Authentication dependencies: ``CurrentUser`` and ``CurrentOrganizer``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.accounts import service
from app.accounts.models import User
from app.core.database import SessionDep
from app.core.errors import Unauthorized
from app.core.security import decode_access_token
from app.events.service import require_organizer

bearer = HTTPBearer(auto_error=False, description="The access token from /api/login.")


def get_current_user(
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> User:
    if credentials is None:
        raise Unauthorized("Send 'Authorization: Bearer <token>'.")
    payload = decode_access_token(credentials.credentials)
    sub = payload.get("sub") if payload else None
    user = service.get_user(session=session, user_id=int(sub)) if sub and sub.isdigit() else None
    if user is None:
        raise Unauthorized("The access token is invalid or expired; log in again.", code="invalid_token")
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


def get_current_organizer(user: CurrentUser) -> User:
    return require_organizer(user)


CurrentOrganizer = Annotated[User, Depends(get_current_organizer)]
