"""The guest's pages: event code, registration or log-in, selfie, "my photos", account.

Each page calls the same services as the API. Uploads and zips are the API's own endpoints,
which browsers reach with the session cookie (and the CSRF header for uploads).
"""

from __future__ import annotations

from datetime import UTC, datetime
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
from app.core.schemas import IdPath
from app.core.throttle import ClientAddress, CountedAddress
from app.events import service as events_service
from app.notices import service as notices_service
from app.photos import service as photos_service
from app.selfies import service as selfies_service
from app.web.errors import error_page, unless_gone
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
SEEN_COOKIE = "seen"


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
    form shown again names the event only when its code is right and the event open."""
    values = {name: field(form, name) for name in ("event_code", "username", "email")}
    event = None
    try:
        if values["event_code"].strip():
            found = events_service.event_for_code(session=session, code=values["event_code"], address=address)
            event = event_actions.invitation(session=session, event=found)
        data = RegisterIn(
            **values,
            password=field(form, "password", 128),
            accept_face_processing=field(form, "accept_face_processing") == "yes",
        )
        user = events_service.register_with_event_code(
            session=session, data=data, address=address, language=language_for(request)
        )
    except (ValidationError, AppError) as exc:
        error = (
            exc if isinstance(exc, AppError) else Unprocessable(code=_FIELD_ERRORS.get(first_problem(exc)))
        )
        context = {"event": event, "code": values["event_code"], "values": values}
        return error_page(request, error, session=session, template="index.html", context=context)
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


@router.get("/selfie", response_class=HTMLResponse)
def selfie_page(request: Request, user: SignedIn, session: SessionDep) -> Response:
    """Take or replace the selfie; its verdict appears live below."""
    return render(
        request,
        "selfie.html",
        {"state": selfies_service.current_state(session=session, user_id=user.id)},
        user=user,
    )


@router.get("/selfie/status", response_class=HTMLResponse)
def selfie_status(request: Request, user: SignedIn, session: SessionDep) -> Response:
    return render(
        request,
        "_selfie_status.html",
        {"state": selfies_service.current_state(session=session, user_id=user.id)},
        user=user,
    )


def _grid_context(
    session: SessionDep, user_id: int, since: datetime | None, event_id: int | None
) -> dict[str, object]:
    photos = selfies_service.my_photos(session=session, user_id=user_id, event_id=event_id)
    new = {p.id for p in photos if since is not None and p.matched_at.replace(tzinfo=UTC) > since}
    return {
        "photos": photos,
        "new": new,
        "since": since.isoformat() if since else "",
        "event_id": event_id,
        "state": selfies_service.current_state(session=session, user_id=user_id),
    }


def _parse_since(value: str | None) -> datetime | None:
    """The time of a ``seen`` cookie or ``since`` query, or None when it is not one (a time
    whose conversion to UTC falls outside the years 1 to 9999 included)."""
    try:
        return datetime.fromisoformat(value).astimezone(UTC) if value else None
    except (ValueError, OverflowError):
        return None


#: ``?event=``: one event's photos only (the link of a "your photos are here" mail).
EventFilter = Annotated[int | None, Query(ge=1, le=2**62)]


@router.get("/photos", response_class=HTMLResponse)
def photos_page(request: Request, user: SignedIn, session: SessionDep, event: EventFilter = None) -> Response:
    """The photos the guest appears in (of one event with ``?event=``), and when each event's
    photos are erased; new ones fill in without a reload."""
    context = _grid_context(session, user.id, _parse_since(request.cookies.get(SEEN_COOKIE)), event)
    events = event_actions.guest_events(session=session, user_id=user.id)
    context["events"] = [e for e in events if event is None or e.id == event]
    if event is not None:
        context["event_name"] = next((e.name for e in events if e.id == event), None)
    response = render(request, "photos.html", context, user=user)
    now = datetime.now(UTC).isoformat()
    response.set_cookie(SEEN_COOKIE, now, max_age=60 * 60 * 24 * 365, httponly=True, samesite="lax")
    return response


@router.get("/photos/grid", response_class=HTMLResponse)
def photos_grid(
    request: Request,
    user: SignedIn,
    session: SessionDep,
    since: Annotated[str | None, Query(max_length=64)] = None,
    event: EventFilter = None,
) -> Response:
    context = _grid_context(session, user.id, _parse_since(since), event)
    return render(request, "_grid.html", context, user=user)


@router.get("/photos/{photo_id}", response_class=HTMLResponse)
def photo_page(request: Request, photo_id: IdPath, user: SignedIn, session: SessionDep) -> Response:
    """One photo, full size, with its download and "not me" (404 unless the guest is in it)."""
    photos_service.photo_for_viewer(session=session, user=user, photo_id=photo_id)
    return render(request, "photo.html", {"photo_id": photo_id}, user=user)


@router.post("/photos/{photo_id}/not-me", response_class=HTMLResponse, dependencies=CSRF)
def not_me(request: Request, photo_id: IdPath, user: SignedIn, session: SessionDep) -> Response:
    """Not me: the photo leaves the guest's list (htmx removes its tile)."""
    with unless_gone(session):  # already gone: the result the guest wanted
        selfies_service.not_me(session=session, user_id=user.id, photo_id=photo_id)
    if request.headers.get("HX-Request"):
        return HTMLResponse("")
    return see_other("/photos")


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


@router.post("/account/delete-selfie", dependencies=CSRF)
def delete_selfie(user: SignedIn, session: SessionDep) -> Response:
    selfies_service.delete_selfies(session=session, user_id=user.id)
    return see_other("/account?done=selfie_deleted")


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
