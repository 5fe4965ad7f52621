"""Account endpoints: availability of a username or email, registration with an event code,
login, logout, and the privacy policy a guest accepts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from app.accounts import devices
from app.accounts import service as accounts_service
from app.accounts.deps import CurrentUser, LoginAttempt
from app.accounts.privacy import POLICY, POLICY_VERSION
from app.accounts.schemas import (
    Availability,
    AvailabilityResponse,
    LoginIn,
    PrivacyPolicy,
    RegisterIn,
    TokenResponse,
)
from app.core.database import SessionDep, commit_now
from app.core.errors import Unprocessable
from app.core.openapi import Tag, errors
from app.core.throttle import ClientAddress
from app.events import service as events_service

router = APIRouter(prefix="/api", tags=[Tag.accounts])


@router.get("/check-user-availability", response_model=AvailabilityResponse, responses=errors(429))
def check_user_availability(
    session: SessionDep,
    address: ClientAddress,
    username: Annotated[str | None, Query(max_length=64)] = None,
    email: Annotated[str | None, Query(max_length=320)] = None,
) -> dict[str, Availability]:
    """Whether a username and/or an email can still be registered.

    Only the fields asked for are answered. ``reason`` is ``taken`` or ``invalid``
    (with a ``message`` saying what is wrong), or null when the value is available.
    Throttled per client address (it tells which accounts exist): 429 past the limit.
    """
    if username is None and email is None:
        raise Unprocessable("Give a username and/or an email to check.", code="missing_parameter")
    accounts_service.AVAILABILITY_CHECKS.check(address)
    accounts_service.AVAILABILITY_CHECKS.hit(address)
    return accounts_service.check_availability(session=session, username=username, email=email)


@router.post("/login", responses=errors(401, 429))
def login(
    body: LoginIn, request: Request, response: Response, session: SessionDep, attempt: LoginAttempt
) -> TokenResponse:
    """Exchange a username or email and a password for a bearer access token.

    Unknown account and wrong password give the same 401 ``invalid_credentials``. Failed
    logins are throttled per account, per account and client address, and per address: past
    the limits, 429 ``too_many_requests`` with ``Retry-After`` (see the README, "Security").
    A success sets the ``device`` cookie: a client that keeps it and sends it back still gets
    in with the right password while others' wrong guesses hold the account's limit.
    """
    user = accounts_service.log_in(session=session, login=body.login, password=body.password, attempt=attempt)
    commit_now(session)
    devices.remember_device(request, response, user.id)
    return accounts_service.token_for(user)


@router.get("/privacy")
def privacy() -> PrivacyPolicy:
    """What is stored about a guest, where, for how long and who sees it: the policy a guest
    accepts at registration (``accept_face_processing``), with its version."""
    return PrivacyPolicy(version=POLICY_VERSION, text=POLICY)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(user: CurrentUser, session: SessionDep) -> None:
    """Sign out everywhere: every access token issued to you so far stops working."""
    accounts_service.revoke_tokens(session=session, user=user)


@router.post(
    "/register-with-event-code", status_code=status.HTTP_201_CREATED, responses=errors(404, 409, 410, 429)
)
def register_with_event_code(
    body: RegisterIn, request: Request, response: Response, session: SessionDep, address: ClientAddress
) -> TokenResponse:
    """Create a guest account and join the event of ``event_code``, in one step.

    ``accept_face_processing`` must be true (the policy of ``GET /api/privacy``); the consent is
    recorded with its time and the policy's version.

    Errors: 404 ``event_not_found``, 410 ``event_closed``, 409 ``username_taken`` /
    ``email_taken``, 422 ``consent_required`` / ``invalid_username`` / ``invalid_email`` /
    ``weak_password``. Sets the ``device`` cookie, as a login does.
    """
    user = events_service.register_with_event_code(session=session, data=body, address=address)
    commit_now(session)
    devices.remember_device(request, response, user.id)
    return accounts_service.token_for(user)
