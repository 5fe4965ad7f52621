"""Guest account endpoints: availability and login (registration with an event code and
``/api/me`` involve events: they are served by ``app.events.routes``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from app.accounts import service
from app.accounts.deps import CurrentUser
from app.accounts.privacy import POLICY, POLICY_VERSION
from app.accounts.schemas import (
    Availability,
    AvailabilityResponse,
    ChangePasswordIn,
    DeleteAccountIn,
    LoginIn,
    PrivacyPolicy,
    TokenResponse,
)
from app.core.database import SessionDep, commit_now
from app.core.errors import Unprocessable
from app.core.openapi import errors
from app.core.throttle import ClientAddress

router = APIRouter(prefix="/api", tags=["accounts"])


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
    service.AVAILABILITY_CHECKS.check(address)
    service.AVAILABILITY_CHECKS.hit(address)
    return service.check_availability(session=session, username=username, email=email)


@router.post("/login", responses=errors(401, 429))
def login(body: LoginIn, session: SessionDep, address: ClientAddress) -> TokenResponse:
    """Exchange a username or email and a password for a bearer access token.

    Unknown account and wrong password give the same 401 ``invalid_credentials``. Failed
    logins are throttled per account and per client address: past the limits, 429
    ``too_many_requests`` with ``Retry-After`` (see the README, "Security").
    """
    user = service.log_in(session=session, login=body.login, password=body.password, address=address)
    commit_now(session)
    return service.token_for(user)


@router.get("/privacy")
def privacy() -> PrivacyPolicy:
    """What is stored about a guest, where, for how long and who sees it: the policy a guest
    accepts at registration (``accept_face_processing``), with its version."""
    return PrivacyPolicy(version=POLICY_VERSION, text=POLICY)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(user: CurrentUser, session: SessionDep) -> None:
    """Sign out everywhere: every access token issued to you so far stops working."""
    service.revoke_tokens(session=session, user=user)


@router.delete("/me", status_code=status.HTTP_204_NO_CONTENT, responses=errors(409))
def delete_me(body: DeleteAccountIn, user: CurrentUser, session: SessionDep) -> None:
    """Erase your account and everything of it: selfies, face templates, matches, event
    memberships, files. Your tokens stop working at once. The password is asked again (401
    ``wrong_password``); an organizer's account holds events (409 ``organizer_has_events``)."""
    service.erase_user(session=session, user=user, password=body.password)


@router.post("/me/password", responses=errors(401))
def change_password(body: ChangePasswordIn, user: CurrentUser, session: SessionDep) -> TokenResponse:
    """Change your password (the current one is asked again). Every token issued before
    stops working; the answer carries a new one. 401 ``wrong_password``, 422 ``weak_password``."""
    user = service.change_password(
        session=session, user=user, current=body.current_password, new=body.new_password, context=()
    )
    return service.token_for(user)
