"""The organizer's pages: events, an event's dashboard with its QR code, live indexing
progress, guests and photos.

Photos are uploaded by the page's script straight to ``POST /api/events/{id}/photos``, one
file per request (progress per file, and a retry sends only what was not accepted).
"""

from __future__ import annotations

import contextlib
import io
from typing import Annotated

import segno
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from app.accounts.deps import SignedInOrganizer
from app.accounts.models import User
from app.core.database import SessionDep
from app.core.errors import AppError
from app.core.schemas import IdPath
from app.events import service as events_service
from app.events.models import Event
from app.events.schemas import EventCreate
from app.faces import service as faces_service
from app.photos import service as photos_service
from app.photos.models import PhotoStatus
from app.selfies import service as selfies_service
from app.web.forms import CSRF, Form, field, see_other
from app.web.i18n import language_for
from app.web.templating import error_message, error_text, render

router = APIRouter(prefix="/organizer", include_in_schema=False)
PROGRESS_LIMIT = 500
UPLOAD_ERRORS = ("unsupported_format", "file_too_large", "image_too_large", "too_many_files", "storage_full")


@router.get("", response_class=HTMLResponse)
def events_page(request: Request, organizer: SignedInOrganizer, session: SessionDep) -> Response:
    """The organizer's events, and a form to create one."""
    rows = events_service.list_events(session=session, organizer=organizer)
    return render(request, "organizer/events.html", {"rows": rows}, user=organizer)


@router.post("/events", response_class=HTMLResponse)
def create_event(request: Request, form: Form, organizer: SignedInOrganizer, session: SessionDep) -> Response:
    try:
        data = EventCreate(name=field(form, "name", 200))
    except ValidationError:
        rows = events_service.list_events(session=session, organizer=organizer)
        error = error_text(language_for(request), "validation_error")
        return render(
            request, "organizer/events.html", {"rows": rows, "error": error}, user=organizer, status_code=422
        )
    event = events_service.create_event(session=session, organizer=organizer, data=data)
    return see_other(f"/organizer/events/{event.id}")


def _managed(session: SessionDep, organizer: User, event_id: int) -> Event:
    return events_service.get_managed_event(session=session, organizer=organizer, event_id=event_id)


def join_url(request: Request, event: Event) -> str:
    return f"{str(request.base_url).rstrip('/')}/e/{event.code}"


def _progress(session: SessionDep, event: Event) -> dict[str, object]:
    photos = photos_service.list_photos(
        session=session, event_id=event.id, status=None, limit=PROGRESS_LIMIT, offset=0
    )
    guests = selfies_service.event_guests(session=session, event_id=event.id)
    reembed = photos_service.reembed_progress(session=session, event_id=event.id)
    return {
        "reembed": reembed if reembed is not None and reembed.status in ("pending", "running") else None,
        "event": event,
        "counts": photos_service.photo_counts(session=session, event_id=event.id),
        "faces": photos_service.faces_count(session=session, event_id=event.id),
        "matches": faces_service.match_count(session=session, event_id=event.id),
        "photos": photos,
        "guests": guests,
        "selfies_ready": sum(1 for g in guests if g.selfie_status == "ready"),
        "busy": (reembed is not None and reembed.status in ("pending", "running"))
        or any(p.status in (PhotoStatus.pending, PhotoStatus.processing) for p in photos),
    }


@router.get("/events/{event_id}", response_class=HTMLResponse)
def event_page(
    request: Request, event_id: IdPath, organizer: SignedInOrganizer, session: SessionDep
) -> Response:
    """An event's dashboard: code and QR code, settings, upload, progress, guests, photos."""
    event = _managed(session, organizer, event_id)
    qr = segno.make(join_url(request, event), error="m")
    context = _progress(session, event) | {
        "join_url": join_url(request, event),
        "qr_svg": qr.svg_inline(scale=6, dark="#111", omitsize=True),
        "done": request.query_params.get("done", ""),
        "upload_messages": {code: error_text(language_for(request), code) for code in UPLOAD_ERRORS},
    }
    return render(request, "organizer/event.html", context, user=organizer)


@router.get("/events/{event_id}/progress", response_class=HTMLResponse)
def event_progress(
    request: Request, event_id: IdPath, organizer: SignedInOrganizer, session: SessionDep
) -> Response:
    event = _managed(session, organizer, event_id)
    return render(request, "organizer/_progress.html", _progress(session, event), user=organizer)


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


@router.post("/events/{event_id}/{action}", response_class=HTMLResponse)
def event_action(
    event_id: IdPath,
    action: str,
    form: Form,
    organizer: SignedInOrganizer,
    session: SessionDep,
) -> Response:
    """Open, close, retention, delete: each a small form of the dashboard."""
    page = f"/organizer/events/{event_id}"
    try:
        if action in ("open", "close"):
            events_service.set_event_open(
                session=session, organizer=organizer, event_id=event_id, is_open=action == "open"
            )
        elif action == "retention":
            days = int(field(form, "retention_days", 5) or "0")
            if not 1 <= days <= 3650:
                raise ValueError(days)
            events_service.set_retention(session=session, organizer=organizer, event_id=event_id, days=days)
        elif action == "delete":
            event = _managed(session, organizer, event_id)
            if field(form, "confirm_code").strip().upper() != event.code:
                return see_other(f"{page}?done=delete_not_confirmed")
            photos_service.start_event_erasure(session=session, event=event)
            return see_other("/organizer")
        else:
            return Response(status_code=404)
    except ValueError:
        return see_other(f"{page}?done=retention_invalid")
    return see_other(f"{page}?done={action}")


@router.post("/events/{event_id}/guests/{user_id}/remove", dependencies=CSRF)
def remove_guest(
    request: Request,
    event_id: IdPath,
    user_id: IdPath,
    organizer: SignedInOrganizer,
    session: SessionDep,
) -> Response:
    try:
        events_service.remove_guest(
            session=session, event=_managed(session, organizer, event_id), user_id=user_id
        )
    except AppError as exc:
        return render(
            request,
            "error.html",
            {"message": error_message(request, exc)},
            user=organizer,
            status_code=exc.status_code,
        )
    return see_other(f"/organizer/events/{event_id}?done=guest_removed")


@router.post("/events/{event_id}/photos/{photo_id}/delete", response_class=HTMLResponse, dependencies=CSRF)
def delete_photo(
    request: Request,
    event_id: IdPath,
    photo_id: IdPath,
    organizer: SignedInOrganizer,
    session: SessionDep,
) -> Response:
    with contextlib.suppress(AppError):  # already gone
        photos_service.delete_photo(
            session=session, event=_managed(session, organizer, event_id), photo_id=photo_id
        )
    if request.headers.get("HX-Request"):
        return HTMLResponse("")
    return see_other(f"/organizer/events/{event_id}?done=photo_deleted")
