"""The organizer's pages: events with their guest and photo counts, an event's dashboard
with its QR code and the card to print, guests (removed, and barred from rejoining if the
organizer says so), and what "your photos are here" sent (with "notify the guests now"). The
dashboard's photo grid, its live progress and photo deletion are ``organizer_photos``.

Photos are uploaded by the page's script (``static/organizer.js``): to the API, one file per
request, or straight to the bucket once signed.
"""

from __future__ import annotations

import io
from typing import Annotated

import segno
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field, ValidationError

from app.accounts.deps import SignedInOrganizer
from app.accounts.models import User
from app.actions import erasure
from app.actions import events as event_actions
from app.core.database import SessionDep
from app.core.errors import AppError, Unprocessable
from app.core.i18n import language_for
from app.core.schemas import IdPath
from app.events import service as events_service
from app.events.models import Event
from app.events.schemas import EventCreate, EventSettings
from app.notices import service as notices_service
from app.photos import uploads as photo_uploads
from app.selfies import guests as selfie_guests
from app.web import organizer_photos
from app.web.errors import error_page, unless_gone
from app.web.forms import CSRF, Form, parsed, see_other
from app.web.templating import error_text, render

router = APIRouter(prefix="/organizer", include_in_schema=False)
UPLOAD_ERRORS = (
    "unsupported_format",
    "file_too_large",
    "image_too_large",
    "too_many_files",
    "storage_full",
    "too_many_uploads",
    "upload_missing",
    "upload_size_mismatch",
    "upload_incomplete",
)


@router.get("", response_class=HTMLResponse)
def events_page(request: Request, organizer: SignedInOrganizer, session: SessionDep) -> Response:
    """The organizer's events, and a form to create one."""
    rows = event_actions.organizer_events(session=session, organizer=organizer)
    return render(request, "organizer/events.html", {"rows": rows}, user=organizer)


@router.post("/events", response_class=HTMLResponse)
def create_event(request: Request, form: Form, organizer: SignedInOrganizer, session: SessionDep) -> Response:
    try:
        data = parsed(EventCreate, form)
    except ValidationError:

        def events_page() -> dict[str, object]:
            return {"rows": event_actions.organizer_events(session=session, organizer=organizer)}

        error = Unprocessable(code="validation_error")
        return error_page(
            request,
            error,
            session=session,
            template="organizer/events.html",
            context=events_page,
            user=organizer,
        )
    event = events_service.create_event(session=session, organizer=organizer, data=data)
    return see_other(f"/organizer/events/{event.id}")


def _managed(session: SessionDep, organizer: User, event_id: int) -> Event:
    return events_service.get_managed_event(session=session, organizer=organizer, event_id=event_id)


def join_url(request: Request, event: Event) -> str:
    return f"{str(request.base_url).rstrip('/')}/e/{event.code}"


@router.get("/events/{event_id}", response_class=HTMLResponse)
def event_page(
    request: Request,
    event_id: IdPath,
    organizer: SignedInOrganizer,
    session: SessionDep,
    page: organizer_photos.PageQuery = 1,
    deleted: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    """An event's dashboard: code and QR code, settings, upload, progress, a page of its photos,
    guests, the guests' notifications."""
    event = _managed(session, organizer, event_id)
    qr = segno.make(join_url(request, event), error="m")
    view = event_actions.organizer_view(session=session, event=event)
    context = organizer_photos.photos_context(session, event, page) | {
        "event": event,
        "progress": event_actions.event_progress(session=session, event=event),
        "purge_at": view.purge_at,
        "guests": selfie_guests.event_guests(session=session, event_id=event.id),
        "bans": events_service.list_bans(session=session, event=event),
        "notices": notices_service.organizer_summary(session=session, event_id=event.id),
        "join_url": join_url(request, event),
        "qr_svg": qr.svg_inline(scale=6, dark="#111", omitsize=True),
        "done": request.query_params.get("done", ""),
        "deleted": deleted,
        "upload_messages": {code: error_text(language_for(request), code) for code in UPLOAD_ERRORS},
        "direct_uploads": photo_uploads.direct_uploads_available(),
    }
    return render(request, "organizer/event.html", context, user=organizer)


@router.get("/events/{event_id}/card", response_class=HTMLResponse)
def event_card(
    request: Request, event_id: IdPath, organizer: SignedInOrganizer, session: SessionDep
) -> Response:
    """The card to print and put on the tables: the event's name, its code in large type, its
    QR code and how to join without a camera. One A4 or Letter page."""
    event = _managed(session, organizer, event_id)
    context = {"event": event, "site_url": str(request.base_url).rstrip("/")}
    return render(request, "organizer/card.html", context, user=organizer)


@router.get("/events/{event_id}/qr.{kind}")
def event_qr(
    request: Request,
    event_id: IdPath,
    kind: str,
    organizer: SignedInOrganizer,
    session: SessionDep,
    scale: Annotated[int, Query(ge=1, le=40)] = 20,
) -> Response:
    """The join QR code to print, as SVG or PNG."""
    if kind not in ("svg", "png"):
        return Response(status_code=404)
    event = _managed(session, organizer, event_id)
    out = io.BytesIO()
    segno.make(join_url(request, event), error="m").save(out, kind=kind, scale=scale, border=4)
    media = "image/svg+xml" if kind == "svg" else "image/png"
    headers = {"Content-Disposition": f'attachment; filename="{event.code}.{kind}"'}
    return Response(out.getvalue(), media_type=media, headers=headers)


class ConfirmDeletion(BaseModel):
    """The dashboard's "delete the event" form: the event's code, typed again."""

    confirm_code: str = Field(default="", max_length=64)

    def confirms(self, event: Event) -> bool:
        return self.confirm_code.strip().upper() == event.code


def _dashboard(event_id: int, done: str) -> Response:
    return see_other(f"/organizer/events/{event_id}?done={done}")


@router.post("/events/{event_id}/open", dependencies=CSRF)
def open_event(event_id: IdPath, organizer: SignedInOrganizer, session: SessionDep) -> Response:
    """Open the event to new guests again."""
    events_service.set_event_open(session=session, organizer=organizer, event_id=event_id, is_open=True)
    return _dashboard(event_id, "open")


@router.post("/events/{event_id}/close", dependencies=CSRF)
def close_event(event_id: IdPath, organizer: SignedInOrganizer, session: SessionDep) -> Response:
    """Close the event to new guests (its guests keep their photos)."""
    events_service.set_event_open(session=session, organizer=organizer, event_id=event_id, is_open=False)
    return _dashboard(event_id, "close")


@router.post("/events/{event_id}/notify", dependencies=CSRF)
def notify_now(event_id: IdPath, organizer: SignedInOrganizer, session: SessionDep) -> Response:
    """Notify the guests now: those with new photos get their message without waiting for the
    quiet period (never more often than the minimum interval)."""
    event = _managed(session, organizer, event_id)
    waiting = notices_service.notify_now(session=session, event_id=event.id)
    return _dashboard(event_id, "notified" if waiting else "nobody_waiting")


@router.post("/events/{event_id}/retention")
def set_retention(
    event_id: IdPath, form: Form, organizer: SignedInOrganizer, session: SessionDep
) -> Response:
    """How many days after the event its photos are kept (1 to 3650)."""
    try:
        settings = parsed(EventSettings, form)
    except ValidationError:
        return _dashboard(event_id, "retention_invalid")
    events_service.set_retention(
        session=session, organizer=organizer, event_id=event_id, days=settings.retention_days
    )
    return _dashboard(event_id, "retention")


@router.post("/events/{event_id}/delete")
def delete_event(event_id: IdPath, form: Form, organizer: SignedInOrganizer, session: SessionDep) -> Response:
    """Delete the event once its code is typed again (its photos are erased by a job)."""
    event = _managed(session, organizer, event_id)
    try:
        confirmed = parsed(ConfirmDeletion, form).confirms(event)
    except ValidationError:
        confirmed = False
    if not confirmed:
        return _dashboard(event_id, "delete_not_confirmed")
    erasure.delete_event(session=session, event=event)
    return see_other("/organizer")


@router.post("/events/{event_id}/guests/{user_id}/remove", dependencies=CSRF)
def remove_guest(
    request: Request,
    event_id: IdPath,
    user_id: IdPath,
    form: Form,
    organizer: SignedInOrganizer,
    session: SessionDep,
) -> Response:
    """Remove a guest; with ``bar=1`` (the "Remove and bar" button) they cannot rejoin."""
    bar = form.get("bar") == "1"
    try:
        event_actions.remove_guest(
            session=session, event=_managed(session, organizer, event_id), user_id=user_id, bar=bar
        )
    except AppError as exc:
        return error_page(request, exc, session=session, user=organizer)
    return _dashboard(event_id, "guest_barred" if bar else "guest_removed")


@router.post("/events/{event_id}/bans/{user_id}/lift", dependencies=CSRF)
def lift_ban(
    event_id: IdPath, user_id: IdPath, organizer: SignedInOrganizer, session: SessionDep
) -> Response:
    """Let a barred guest join the event again."""
    with unless_gone(session):  # a second click: already lifted
        events_service.lift_ban(
            session=session, event=_managed(session, organizer, event_id), user_id=user_id
        )
    return _dashboard(event_id, "ban_lifted")


router.include_router(organizer_photos.router)
