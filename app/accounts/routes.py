"""Guest account endpoints: availability and login (registration with an event code and
``/api/me`` involve events: they are served by ``app.events.routes``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.accounts import service
from app.accounts.schemas import (
    Availability,
    AvailabilityResponse,
    LoginIn,
    TokenResponse,
)
from app.core.database import SessionDep, release_connection
from app.core.errors import Unprocessable

router = APIRouter(prefix="/api", tags=["accounts"])


@router.get("/check-user-availability", response_model=AvailabilityResponse)
def check_user_availability(
    session: SessionDep,
    username: Annotated[str | None, Query(max_length=64)] = None,
    email: Annotated[str | None, Query(max_length=320)] = None,
) -> dict[str, Availability]:
    """Whether a username and/or an email can still be registered.

    Only the fields asked for are answered. ``reason`` is ``taken`` or ``invalid``
    (with a ``message`` saying what is wrong), or null when the value is available.
    """
    if username is None and email is None:
        raise Unprocessable("Give a username and/or an email to check.", code="missing_parameter")
    return service.check_availability(session=session, username=username, email=email)


@router.post("/login")
def login(body: LoginIn, session: SessionDep) -> TokenResponse:
    """Exchange a username or email and a password for a bearer access token.

    Unknown account and wrong password give the same 401 ``invalid_credentials``.
    """
    user = service.get_user_by_login(session=session, login=body.login)
    release_connection(session)  # argon2 runs next: its connection goes back to the pool meanwhile
    user = service.authenticate(session=session, user=user, password=body.password)
    return service.token_for(user)
