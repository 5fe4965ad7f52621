"""The guest's pages: event code, registration or log-in, account; the selfie and "my photos"
are ``guest_photos``, whose router this one includes.

Each page calls the same services as the API. Uploads and zips are the API's own endpoints,
which browsers reach with the session cookie (and the CSRF header for uploads).
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup
from pydantic import ValidationError

from app.accounts import devices, sessions
from app.accounts import privacy as policy
from app.accounts import service as accounts_service
from app.accounts.deps import LoginAttempt, PageUser, SignedIn
from app.accounts.models import User
from app.accounts.schemas import RegisterIn
from app.actions import erasure
from app.actions import events as event_actions
from app.core.database import SessionDep
from app.core.errors import AppError, Unprocessable
from app.core.i18n import LANG_COOKIE, LANGUAGES, language_for
from app.core.throttle import ClientAddress, CountedAddress
from app.events import service as events_service
from app.notices import service as notices_service
from app.selfies import service as selfies_service
from app.web import guest_photos
from app.web.errors import error_page
from app.web.forms import CSRF, Form, field, first_problem, home_for, safe_next, see_other
from app.web.templating import error_message, error_text, render

router = APIRouter(include_in_schema=False)
# The code of the error a form field's failed validation means for a person.
_FIELD_ERRORS = {
    "username": "invalid_username",
    "email": "invalid_email",
    "password": "weak_password",
    "event_code": "event_not_found",
}
#: The registration form's fields, in their order on the page: the first in error gets the focus.
_FORM_ORDER = ("username", "email", "password", "accept_face_processing")


@router.get("/", response_class=HTMLResponse)
def index(
    request: Request,
    user: PageUser,
    session: SessionDep,
    address: CountedAddress,
    event: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    """Enter the event's code; with ``?event=`` (the QR code's link), the event's name, its
    organizer and erasure date, and the registration form, or "Join" for one signed in (a
    guest of it already goes to its photos). A wrong code counts against the address, unless
    another site's page made the browser ask."""
    if event is None and user is not None:
        return see_other(home_for(user))
    if event and user is not None:
        joined = events_service.member_event(session=session, user_id=user.id, code=event)
        if joined is not None:
            return see_other(f"/photos?event={joined.id}")
    found = None
    if event:
        try:
            found = events_service.event_for_code(session=session, code=event, address=address)
        except AppError as exc:
            return error_page(
                request, exc, session=session, template="index.html", context={"code": event}, user=user
            )
    context = {"event": found and event_actions.invitation(session=session, event=found), "code": event or ""}
    return render(request, "index.html", context, user=user)


@router.post("/join", response_class=HTMLResponse)
def join(
    request: Request, form: Form, user: SignedIn, session: SessionDep, address: ClientAddress
) -> Response:
    """Join the event of ``event_code`` ("Join" on its page; as ``POST /api/join-event``), then
    its photos. A closed event, or a guest its organizer barred, is told why on the page."""
    code = field(form, "event_code", 64)
    try:
        event, _ = event_actions.join_event(session=session, user=user, code=code, address=address)
    except AppError as exc:

        def event_page() -> dict[str, object]:
            found = events_service.get_event_by_code(session=session, code=code) if code.strip() else None
            shown = found and event_actions.invitation(session=session, event=found)
            return {"event": shown, "code": code}

        return error_page(request, exc, session=session, template="index.html", context=event_page, user=user)
    return see_other(f"/photos?event={event.id}")


@router.post("/register", response_class=HTMLResponse)
def register(request: Request, form: Form, session: SessionDep, address: CountedAddress) -> Response:
    """Create the guest's account. The code is checked first, through the throttled check: a
    form shown again names the event only when its code is right and the event open, keeps
    what was typed (never the password) and shows every field's error at once."""
    values = {name: field(form, name) for name in ("event_code", "username", "email")}
    password, consent = field(form, "password", 128), field(form, "accept_face_processing") == "yes"
    event = None
    try:
        if values["event_code"].strip():
            found = events_service.event_for_code(session=session, code=values["event_code"], address=address)
            event = event_actions.invitation(session=session, event=found)
        data = RegisterIn(**values, password=password, accept_face_processing=consent)
        user = events_service.register_with_event_code(
            session=session, data=data, address=address, language=language_for(request)
        )
    except (ValidationError, AppError) as exc:
        error = (
            exc if isinstance(exc, AppError) else Unprocessable(code=_FIELD_ERRORS.get(first_problem(exc)))
        )

        def form_again() -> dict[str, object]:
            context = [event.name, values["event_code"]] if event else [values["event_code"]]
            problems = accounts_service.registration_problems(
                session=session,
                username=values["username"],
                email=values["email"],
                password=password,
                consent=consent,
                context=context,
            )
            fields = {name: error_text(language_for(request), code) for name, code in problems.items()}
            return {
                "event": event,
                "code": values["event_code"],
                "values": values | {"consent": consent},
                "errors": fields,
                "first_error": next((name for name in _FORM_ORDER if name in fields), ""),
                "error_in_fields": error.code in problems.values(),
            }

        return error_page(request, error, session=session, template="index.html", context=form_again)
    response = see_other("/selfie")
    sessions.start_session(response, accounts_service.token_for(user).access_token)
    devices.remember_device(request, response, user.id)
    return response


@router.get("/availability", response_class=HTMLResponse)
def availability(
    request: Request,
    session: SessionDep,
    address: ClientAddress,
    username: Annotated[str | None, Query(max_length=64)] = None,
    email: Annotated[str | None, Query(max_length=320)] = None,
) -> Response:
    """Live availability of a username or email while the guest types (an HTML fragment)."""
    if not (username or email):
        return HTMLResponse("")
    try:
        accounts_service.AVAILABILITY_CHECKS.check(address)
        accounts_service.AVAILABILITY_CHECKS.hit(address)
    except AppError as exc:
        return render(request, "_availability.html", {"name": "", "message": error_message(request, exc)})
    name = "username" if username else "email"
    answer = accounts_service.check_availability(session=session, username=username, email=email)[name]
    code = {"taken": f"{name}_taken", "invalid": f"invalid_{name}"}.get(answer.reason or "", "")
    return render(
        request,
        "_availability.html",
        {"name": name, "available": answer.available, "message": error_text(language_for(request), code)},
    )


#: ``?event=`` of the log-in page: the code of the event page it was opened from.
EventCode = Annotated[str | None, Query(max_length=64)]


@router.get("/login", response_class=HTMLResponse)
def login_page(
    request: Request, user: PageUser, next: str | None = None, event: EventCode = None
) -> Response:
    """Log in; from an event's page (``?event=<code>``) the log-in joins that event."""
    if user is not None:
        return see_other(_event_page(event) if event else safe_next(next, home_for(user)))
    return render(request, "login.html", {"next": safe_next(next, ""), "event_code": event or ""})


def _event_page(code: str) -> str:
    return f"/?event={quote(code.strip(), safe='')}"


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request, form: Form, session: SessionDep, attempt: LoginAttempt, address: ClientAddress
) -> Response:
    """Log in (throttled as ``POST /api/login``); a success sets the device cookie too. With
    the ``event_code`` of the event page it came from, the guest joins that event and lands on
    its photos (when the event refuses them, on its page, which says why)."""
    login_name, target = field(form, "login"), safe_next(field(form, "next"), "")
    code = field(form, "event_code", 64)
    try:
        user = accounts_service.log_in(
            session=session, login=login_name, password=field(form, "password", 128), attempt=attempt
        )
    except AppError as exc:
        context = {"next": target, "login": login_name, "event_code": code}
        return error_page(request, exc, session=session, template="login.html", context=context)
    if code.strip():
        try:
            with session.begin_nested():
                event, _ = event_actions.join_event(session=session, user=user, code=code, address=address)
            target = f"/photos?event={event.id}"
        except AppError:
            target = _event_page(code)
    response = see_other(target or home_for(user))
    sessions.start_session(response, accounts_service.token_for(user).access_token)
    devices.remember_device(request, response, user.id)
    return response


@router.post("/logout", dependencies=CSRF)
def logout(user: PageUser, session: SessionDep) -> Response:
    """Log out: this browser's cookie goes, and so does every token issued before (as
    ``POST /api/logout``), so a copied cookie stops working too."""
    if user is not None:
        accounts_service.revoke_tokens(session=session, user=user)
    response = see_other("/")
    sessions.end_session(response)
    return response


@router.get("/lang/{language}")
def switch_language(language: str, next: str | None = None) -> Response:
    """The language switch of every page: remembered for a year."""
    response = see_other(safe_next(next))
    if language in LANGUAGES:
        response.set_cookie(LANG_COOKIE, language, max_age=60 * 60 * 24 * 365, samesite="lax")
    return response


@router.get("/privacy", response_class=HTMLResponse)
def privacy(request: Request, user: PageUser) -> Response:
    """The privacy policy, in the visitor's language, as this server is set up."""
    text = Markup(policy.policy_html(language=language_for(request)))  # noqa: S704 - our own template, autoescaped
    return render(request, "privacy.html", {"policy": text, "version": policy.POLICY_VERSION}, user=user)


def account_context(session: SessionDep, user: User) -> dict[str, object]:
    """What the account page shows: the selfie's state and the notification switches."""
    return {
        "state": selfies_service.current_state(session=session, user_id=user.id),
        "notifications": notices_service.switches(session=session, user=user),
    }


@router.get("/account", response_class=HTMLResponse)
def account(request: Request, user: SignedIn, session: SessionDep) -> Response:
    """Replace or delete the selfie, the address and the notifications (``#notifications``),
    export the data, delete the account."""
    context = account_context(session, user) | {"done": request.query_params.get("done", "")}
    return render(request, "account.html", context, user=user)


@router.get("/account/delete-selfie", response_class=HTMLResponse)
def confirm_delete_selfie(request: Request, user: SignedIn) -> Response:
    """Ask before deleting the selfie: what goes, and the button that does it (no script)."""
    return render(request, "delete_selfie.html", user=user)


@router.post("/account/delete-selfie", dependencies=CSRF)
def delete_selfie(user: SignedIn, session: SessionDep) -> Response:
    """Delete the selfie and its matches (confirmed on ``GET /account/delete-selfie``)."""
    selfies_service.delete_selfies(session=session, user_id=user.id)
    return see_other("/account?done=selfie_deleted")


#: The field of the change-password form an error is about.
_PASSWORD_FIELDS = {"wrong_password": "current_password", "weak_password": "new_password"}


@router.post("/account/password", response_class=HTMLResponse)
def change_password(
    request: Request, form: Form, user: SignedIn, session: SessionDep, attempt: LoginAttempt
) -> Response:
    """Change the password (as ``POST /api/me/password``): the current one again (throttled as
    a login), the new one twice, as strong as at registration. Every other session ends; this
    browser gets a new one."""
    new = field(form, "new_password", 128)
    if new != field(form, "confirm_password", 128):
        context = account_context(session, user) | {"password_errors": {"confirm_password": "differ"}}
        return render(request, "account.html", context, user=user, status_code=422)
    try:
        user = accounts_service.change_password(
            session=session,
            user=user,
            current=field(form, "current_password", 128),
            new=new,
            context=(),
            attempt=attempt,
        )
    except AppError as exc:
        errors = {_PASSWORD_FIELDS[exc.code]: exc.code} if exc.code in _PASSWORD_FIELDS else {}
        return error_page(
            request,
            exc,
            session=session,
            template="account.html",
            context=lambda: account_context(session, user) | {"password_errors": errors},
            user=user,
        )
    response = see_other("/account?done=password_changed#password")
    sessions.start_session(response, accounts_service.token_for(user).access_token)
    return response


@router.post("/account/delete", response_class=HTMLResponse)
def delete_account(
    request: Request, form: Form, user: SignedIn, session: SessionDep, attempt: LoginAttempt
) -> Response:
    """Delete the account once its password is given again (throttled as a login)."""
    try:
        erasure.erase_user(session=session, user=user, password=field(form, "password", 128), attempt=attempt)
    except AppError as exc:
        return error_page(
            request,
            exc,
            session=session,
            template="account.html",
            context=lambda: account_context(session, user),
            user=user,
        )
    response = render(request, "deleted.html")
    sessions.end_session(response)
    return response


router.include_router(guest_photos.router)
