"""Guest account endpoints: availability, registration with an event code, login, me."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from app.accounts import service
from app.accounts.deps import CurrentUser
from app.accounts.schemas import (
    Availability,
    AvailabilityResponse,
    LoginIn,
    MeResponse,
    RegisterIn,
    TokenResponse,
    UserPublic,
)
from app.core.database import SessionDep, release_connection
from app.core.errors import Unprocessable
from app.core.security import create_access_token
from app.events.schemas import EventPublic
from app.events.service import user_events

router = APIRouter(prefix="/api", tags=["accounts"])


def _token_for(user: object) -> TokenResponse:
    user_public = UserPublic.model_validate(user)
    return TokenResponse(access_token=create_access_token(subject=str(user_public.id)), user=user_public)


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


@router.post("/register-with-event-code", status_code=status.HTTP_201_CREATED)
def register_with_event_code(body: RegisterIn, session: SessionDep) -> TokenResponse:
    """Create a guest account and join the event of ``event_code``, in one step.

    Errors: 404 ``event_not_found``, 410 ``event_closed``, 409 ``username_taken`` /
    ``email_taken``, 422 ``invalid_username`` / ``invalid_email`` / ``weak_password``.
    """
    # The password is hashed before the first query: no pooled connection waits on argon2.
    new_user = service.prepare_user(
        username=body.username, email=body.email, password=body.password, display_name=body.display_name
    )
    user = service.register_with_event_code(session=session, user=new_user, event_code=body.event_code)
    return _token_for(user)


@router.post("/login")
def login(body: LoginIn, session: SessionDep) -> TokenResponse:
    """Exchange a username or email and a password for a bearer access token.

    Unknown account and wrong password give the same 401 ``invalid_credentials``.
    """
    user = service.get_user_by_login(session=session, login=body.login)
    release_connection(session)  # argon2 runs next: its connection goes back to the pool meanwhile
    user = service.authenticate(session=session, user=user, password=body.password)
    return _token_for(user)


@router.get("/me")
def me(user: CurrentUser, session: SessionDep) -> MeResponse:
    """The signed-in user and the events they are a guest of."""
    events = [EventPublic.model_validate(e) for e in user_events(session=session, user_id=user.id)]
    return MeResponse(**UserPublic.model_validate(user).model_dump(), events=events)
