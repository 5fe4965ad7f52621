"""The pages of mail: signing in with a mailed link or code, the forgotten password, verifying
the address, the one-click unsubscribe of a notification, and the account's address and
"your photos are here" switches.

A link page answers GET with a page and one button and acts only on POST: mail scanners open
links, and must not spend them. A link that no longer works gets its own page (400) saying to
ask for a new one. The unsubscribe POST is RFC 8058's one-click: a mail provider sends it
without cookies, so it takes no CSRF token; its signed token is the proof.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from app.accounts import devices, links, sessions
from app.accounts import service as accounts_service
from app.accounts.deps import LoginAttempt, PageUser, SignedIn
from app.accounts.models import User
from app.core.database import SessionDep, commit_now
from app.core.errors import AppError
from app.core.throttle import ClientAddress
from app.notices import service as notices_service
from app.notices.schemas import NotificationsPatch
from app.web.errors import error_page
from app.web.forms import CSRF, Form, field, home_for, safe_next, see_other
from app.web.guest import account_context
from app.web.templating import render

router = APIRouter(include_in_schema=False)
Token = Annotated[str, Path(min_length=1, max_length=128)]
# Where a sign-in by link goes once done, when it was asked for from a page that wanted one.
NEXT_COOKIE = "signin_next"
_NEXT_MAX_AGE = 15 * 60  # a sign-in link's lifetime
_ID = re.compile(r"[1-9][0-9]{0,17}", re.ASCII)


def _signed_in(request: Request, user: User, target: str) -> Response:
    """This browser signed in as ``user`` (as the log-in form does), then on to ``target``."""
    response = see_other(target)
    sessions.start_session(response, accounts_service.token_for(user).access_token)
    devices.remember_device(request, response, user.id)
    return response


def _dead(request: Request, session: Session, purpose: links.Purpose, user: User | None = None) -> Response:
    """The page of a link that no longer works, with the way to a new one."""
    session.rollback()
    return render(request, "link_dead.html", {"purpose": purpose.value}, user=user, status_code=400)


@router.post("/login/email", response_class=HTMLResponse)
def request_sign_in(request: Request, form: Form, session: SessionDep, address: ClientAddress) -> Response:
    """Mail a sign-in link and code (the same answer whether the account exists or not), then
    the page to type the code on."""
    email, target = field(form, "email"), safe_next(field(form, "next"), "")
    try:
        links.request_sign_in(session=session, email=email, address=address)
    except AppError as exc:
        context = {"next": target, "signin_email": email}
        return error_page(request, exc, session=session, template="login.html", context=context)
    response = render(request, "login_code.html", {"email": email, "next": target, "sent": True})
    if target:
        response.set_cookie(NEXT_COOKIE, target, max_age=_NEXT_MAX_AGE, httponly=True, samesite="lax")
    return response


@router.get("/login/code", response_class=HTMLResponse)
def code_page(request: Request, next: str | None = None) -> Response:
    """Type the code of a sign-in mail."""
    return render(request, "login_code.html", {"email": "", "next": safe_next(next, "")})


@router.post("/login/code", response_class=HTMLResponse)
def sign_in_with_code(request: Request, form: Form, session: SessionDep) -> Response:
    """Sign in with the address and the code mailed to it (five wrong codes kill it)."""
    email, target = field(form, "email"), safe_next(field(form, "next"), "")
    try:
        user = links.sign_in(session=session, email=email, code=field(form, "code", 32))
    except links.InvalidToken:
        session.rollback()
        context = {"email": email, "next": target, "bad_code": True}
        return render(request, "login_code.html", context, status_code=400)
    commit_now(session)
    response = _signed_in(request, user, target or home_for(user))
    response.delete_cookie(NEXT_COOKIE, httponly=True, samesite="lax")
    return response


@router.get("/login/email/{token}", response_class=HTMLResponse)
def sign_in_link_page(request: Request, token: Token, user: PageUser) -> Response:
    """The sign-in link of a mail: one button, which spends it."""
    return render(request, "signin_link.html", {"token": token}, user=user)


@router.post("/login/email/{token}", response_class=HTMLResponse, dependencies=CSRF)
def sign_in_with_link(request: Request, token: Token, session: SessionDep) -> Response:
    """Sign in with a mailed link; on to the page that asked for it in this browser, if any."""
    try:
        user = links.sign_in(session=session, token=token)
    except links.InvalidToken:
        return _dead(request, session, links.Purpose.signin)
    commit_now(session)
    response = _signed_in(request, user, safe_next(request.cookies.get(NEXT_COOKIE), home_for(user)))
    response.delete_cookie(NEXT_COOKIE, httponly=True, samesite="lax")
    return response


@router.get("/forgot-password", response_class=HTMLResponse)
def forgot_page(request: Request, user: PageUser) -> Response:
    """Ask for a link to choose a new password."""
    return render(request, "forgot.html", {"email": ""}, user=user)


@router.post("/forgot-password", response_class=HTMLResponse)
def forgot_password(request: Request, form: Form, session: SessionDep, address: ClientAddress) -> Response:
    """Mail a reset link to the account of the address, if there is one: the page says the
    same either way."""
    email = field(form, "email")
    try:
        links.request_password_reset(session=session, email=email, address=address)
    except AppError as exc:
        return error_page(request, exc, session=session, template="forgot.html", context={"email": email})
    return render(request, "mail_sent.html")


@router.get("/reset-password/{token}", response_class=HTMLResponse)
def reset_page(request: Request, token: Token) -> Response:
    """The reset link of a mail: the form for the new password (the link is spent on POST)."""
    return render(request, "reset.html", {"token": token})


@router.post("/reset-password/{token}", response_class=HTMLResponse)
def reset_password(request: Request, token: Token, form: Form, session: SessionDep) -> Response:
    """Set the new password, and sign in with it (every other session of the account ends)."""
    try:
        user = links.reset_password(session=session, token=token, password=field(form, "password", 128))
    except links.InvalidToken:
        return _dead(request, session, links.Purpose.reset)
    except AppError as exc:
        return error_page(request, exc, session=session, template="reset.html", context={"token": token})
    commit_now(session)
    return _signed_in(request, user, home_for(user))


@router.get("/verify-email/{token}", response_class=HTMLResponse)
def verify_page(request: Request, token: Token, user: PageUser) -> Response:
    """The verification link of a mail: one button, which spends it."""
    return render(request, "verify.html", {"token": token}, user=user)


@router.post("/verify-email/{token}", response_class=HTMLResponse, dependencies=CSRF)
def verify_email(request: Request, token: Token, session: SessionDep, user: PageUser) -> Response:
    """Confirm the address the link was mailed to."""
    try:
        verified = links.verify_email(session=session, token=token)
    except links.InvalidToken:
        return _dead(request, session, links.Purpose.verify, user)
    context = {"email": verified.email, "home": home_for(verified)}
    return render(request, "verified.html", context, user=user)


@router.get("/unsubscribe/{token}", response_class=HTMLResponse)
def unsubscribe_page(request: Request, token: Token, session: SessionDep) -> Response:
    """A notification's unsubscribe link: one button (404 for a link that is not ours)."""
    event = notices_service.unsubscribe_event(session=session, token=token)
    event_name = event.name if event is not None else None
    status = 200 if event is not None else 404
    context = {"token": token, "event_name": event_name, "step": "ask" if status == 200 else "invalid"}
    return render(request, "unsubscribe.html", context, status_code=status)


@router.post("/unsubscribe/{token}", response_class=HTMLResponse)
def unsubscribe(request: Request, token: Token, session: SessionDep) -> Response:
    """One-click unsubscribe (RFC 8058), the ``List-Unsubscribe`` URL: no session, no CSRF
    token (a mail provider posts ``List-Unsubscribe=One-Click``); the event's switch goes off."""
    event = notices_service.unsubscribe(session=session, token=token)
    if event is None:
        return render(request, "unsubscribe.html", {"step": "invalid"}, status_code=404)
    return render(request, "unsubscribe.html", {"step": "done", "event_name": event.name})


@router.post("/account/verification", response_class=HTMLResponse, dependencies=CSRF)
def resend_verification(request: Request, user: SignedIn, session: SessionDep) -> Response:
    """Mail a new link that verifies the account's address."""
    try:
        links.resend_verification(session=session, user=user)
    except AppError as exc:
        return _account_error(request, exc, session, user)
    return see_other("/account?done=verification_sent#notifications")


@router.post("/account/notifications", response_class=HTMLResponse)
def set_notifications(request: Request, form: Form, user: SignedIn, session: SessionDep) -> Response:
    """Save the "your photos are here" switches: the account's, and each event's shown on the
    form (an unticked box is not sent, so the form lists the events it shows)."""
    shown = {int(v) for v in form.getlist("shown") if isinstance(v, str) and _ID.fullmatch(v)}
    ticked = {v for v in form.getlist("notify") if isinstance(v, str)}
    patch = NotificationsPatch(
        enabled=form.get("enabled") == "on", events={event_id: str(event_id) in ticked for event_id in shown}
    )
    try:
        notices_service.set_switches(session=session, user=user, patch=patch)
    except AppError as exc:
        return _account_error(request, exc, session, user)
    return see_other("/account?done=notifications_saved#notifications")


@router.post("/account/email", response_class=HTMLResponse)
def change_email(
    request: Request, form: Form, user: SignedIn, session: SessionDep, attempt: LoginAttempt
) -> Response:
    """Move the account to a new address, once the password is given again; the address is
    unverified until the link mailed to it is opened."""
    email = field(form, "email")
    try:
        links.change_email(
            session=session, user=user, email=email, password=field(form, "password", 128), attempt=attempt
        )
    except AppError as exc:
        return _account_error(request, exc, session, user, new_email=email)
    return see_other("/account?done=email_changed#notifications")


def _account_error(
    request: Request, exc: AppError, session: Session, user: User, new_email: str = ""
) -> Response:
    def page() -> dict[str, object]:
        return account_context(session, user) | {"new_email": new_email}

    return error_page(request, exc, session=session, template="account.html", context=page, user=user)
