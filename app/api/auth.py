"""Account endpoints: availability of a username or email, registration with an event code,
login (with the password, or with a link or code mailed to the address), logout, verifying
the address, resetting a forgotten password, and the privacy policy a guest accepts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from app.accounts import devices, links
from app.accounts import privacy as policy
from app.accounts import service as accounts_service
from app.accounts.deps import CurrentUser, LoginAttempt
from app.accounts.schemas import (
    Accepted,
    Availability,
    AvailabilityResponse,
    EmailIn,
    EmailSignInIn,
    EmailVerified,
    LinkSignInIn,
    LoginIn,
    PrivacyPolicy,
    RegisterIn,
    ResetPasswordIn,
    TokenIn,
    TokenResponse,
)
from app.core.database import SessionDep, commit_now
from app.core.errors import Unprocessable
from app.core.i18n import language_for
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
def privacy(request: Request) -> PrivacyPolicy:
    """What is stored about a guest, where, for how long and who sees it, as this server is set
    up: the policy a guest accepts at registration (``accept_face_processing``), with its
    version, in the request's language (``Accept-Language``; French by default), and the
    controller and contact the operator names (null when not set)."""
    language = language_for(request)
    facts = policy.facts()
    return PrivacyPolicy(
        version=policy.POLICY_VERSION,
        language=language,
        text=policy.policy_text(language=language),
        controller=facts.controller or None,
        contact=facts.contact or None,
    )


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
    ``weak_password``. Sets the ``device`` cookie, as a login does. A link that verifies the
    address is mailed (``POST /api/email/verify``), in the language of ``Accept-Language``
    (French by default): the language of the account's mails from now on.
    """
    user = events_service.register_with_event_code(
        session=session, data=body, address=address, language=language_for(request)
    )
    commit_now(session)
    devices.remember_device(request, response, user.id)
    return accounts_service.token_for(user)


_MAILED = (
    "If an account has this address, a message is on its way to it. It can take a minute; "
    "check the spam folder too."
)


@router.post("/email/verify", responses=errors(400))
def verify_email(body: TokenIn, session: SessionDep) -> EmailVerified:
    """Verify the account's address with the token of the link mailed to it (after
    registration or an address change). Only verified addresses get "your photos are here".

    400 ``invalid_token`` when the link was used, expired (7 days) or replaced, or the
    account's address changed since.
    """
    user = links.verify_email(session=session, token=body.token)
    return EmailVerified(email=user.email)


@router.post("/password/forgot", status_code=status.HTTP_202_ACCEPTED, responses=errors(429))
def forgot_password(body: EmailIn, session: SessionDep, address: ClientAddress) -> Accepted:
    """Mail a link to reset the password of the account of ``email``: single-use, valid one
    hour. Always 202 with the same body, whether the account exists or not.

    Throttled per client address (429 past it, whatever the address asked about) and per
    account (past it, nothing more is mailed, and the answer is the same).
    """
    links.request_password_reset(session=session, email=body.email, address=address)
    return Accepted(detail=_MAILED)


@router.post("/password/reset", responses=errors(400, 422))
def reset_password(body: ResetPasswordIn, session: SessionDep) -> TokenResponse:
    """Set a new password with the token of a reset link, and sign in: a fresh access token.
    The old password, every access token issued before, and every other reset or sign-in link
    of the account stop working; the address counts as verified.

    400 ``invalid_token`` (used, expired or replaced link), 422 ``weak_password``.
    """
    user = links.reset_password(session=session, token=body.token, password=body.password)
    commit_now(session)
    return accounts_service.token_for(user)


@router.post("/login/email", status_code=status.HTTP_202_ACCEPTED, responses=errors(429))
def login_by_email(body: EmailIn, session: SessionDep, address: ClientAddress) -> Accepted:
    """Mail a sign-in link and an 8-digit code to the account of ``email``, instead of a
    password: single-use, valid 15 minutes. Always 202 with the same body, whether the
    account exists or not; throttled as ``POST /api/password/forgot``.
    """
    links.request_sign_in(session=session, email=body.email, address=address)
    return Accepted(detail=_MAILED)


@router.post("/login/email/confirm", responses=errors(400))
def confirm_login_by_email(
    body: EmailSignInIn, request: Request, response: Response, session: SessionDep
) -> TokenResponse:
    """Sign in with the ``token`` of a mailed sign-in link, or with the ``email`` and the
    ``code`` of that mail: an access token, as ``POST /api/login``, and the ``device``
    cookie. The address counts as verified; the account's other mailed links die.

    400 ``invalid_token`` when the link or code was used, expired or replaced, or after five
    wrong codes.
    """
    if isinstance(body, LinkSignInIn):
        user = links.sign_in(session=session, token=body.token)
    else:
        user = links.sign_in(session=session, email=body.email, code=body.code)
    commit_now(session)
    devices.remember_device(request, response, user.id)
    return accounts_service.token_for(user)
