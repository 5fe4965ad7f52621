"""The photos of an organizer's event on its dashboard: a grid of thumbnails, 60 to a page
(``?page=N``), the live progress that polls for what changed since the page was drawn, and
the deletion of the photos ticked in the grid once a page has confirmed it.

The poll sends counts, plus only the photos that changed since its cursor: the page, the
largest photo id the page showed (``after``: newer photos landing on it), the photos it showed
waiting (``open``: those now indexed or failed) and the total it showed (``total``: the count
and the page links change with it). The cursor lives in hidden inputs beside the grid, sent
with each poll and replaced by its answer (htmx out-of-band swaps).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from app.accounts.deps import SignedInOrganizer
from app.accounts.models import User
from app.actions import events as event_actions
from app.core.database import SessionDep
from app.core.schemas import IdPath
from app.events import service as events_service
from app.events.models import Event
from app.photos import service as photos_service
from app.web.forms import Form, see_other
from app.web.templating import render

router = APIRouter(include_in_schema=False)
PER_PAGE = 60
#: At most this many photos are deleted in one confirmation (a page holds fewer).
MAX_SELECTED = 200

PageQuery = Annotated[int, Query(ge=1, le=1_000_000)]


def managed(session: SessionDep, organizer: User, event_id: int) -> Event:
    return events_service.get_managed_event(session=session, organizer=organizer, event_id=event_id)


def photos_context(session: SessionDep, event: Event, page: int) -> dict[str, object]:
    """What the dashboard's photo grid and its cursor need."""
    return {
        "photos": photos_service.photo_page(session=session, event_id=event.id, page=page, per_page=PER_PAGE)
    }


def _ids(values: list[str]) -> list[int]:
    """The photo ids of a form or a query (a field may hold several, comma-separated); junk is
    ignored."""
    found = (part.strip() for value in values for part in value.split(","))
    return [int(part) for part in found if part.isdigit() and len(part) < 19][:MAX_SELECTED]


def dashboard(event_id: int, page: int, **query: object) -> Response:
    extra = "".join(f"&{name}={value}" for name, value in query.items())
    return see_other(f"/organizer/events/{event_id}?page={page}{extra}#photos")


@router.get("/events/{event_id}/photos", response_class=HTMLResponse)
def photo_grid(
    request: Request, event_id: IdPath, organizer: SignedInOrganizer, session: SessionDep, page: PageQuery = 1
) -> Response:
    """One page of the event's photos, the grid alone (htmx follows the page links with it);
    the whole dashboard at that page otherwise."""
    if not request.headers.get("HX-Request"):
        return dashboard(event_id, page)
    event = managed(session, organizer, event_id)
    return render(
        request,
        "organizer/_photos.html",
        {"event": event} | photos_context(session, event, page),
        user=organizer,
    )


@router.get("/events/{event_id}/progress", response_class=HTMLResponse)
def event_progress(
    request: Request,
    event_id: IdPath,
    organizer: SignedInOrganizer,
    session: SessionDep,
    page: PageQuery = 1,
    after: Annotated[int, Query(ge=0)] = 0,
    waiting: Annotated[str, Query(alias="open", max_length=2000)] = "",
    total: Annotated[int, Query(ge=-1)] = -1,
) -> Response:
    """The counts of the event's indexing, and only the photos of the grid's page that
    changed since the poll's cursor (with the count and page links if the total changed)."""
    event = managed(session, organizer, event_id)
    photos, changed = photos_service.photo_page_changes(
        session=session,
        event_id=event.id,
        page=page,
        per_page=PER_PAGE,
        after=after,
        unsettled=_ids([waiting]),
    )
    context = {
        "event": event,
        "progress": event_actions.event_progress(session=session, event=event),
        "photos": photos,
        "changed": changed,
        "after": after,
        "total_changed": photos.total != total,
    }
    return render(request, "organizer/_progress.html", context, user=organizer)


@router.get("/events/{event_id}/photos/delete", response_class=HTMLResponse)
def confirm_deletion(
    request: Request,
    event_id: IdPath,
    organizer: SignedInOrganizer,
    session: SessionDep,
    photo: Annotated[list[str], Query(max_length=MAX_SELECTED)] = [],  # noqa: B006 - FastAPI copies it
    page: PageQuery = 1,
) -> Response:
    """The photos ticked in the grid, and the button that deletes them: nothing is deleted
    before this page's form is sent."""
    event = managed(session, organizer, event_id)
    chosen = photos_service.photos_of_event(session=session, event_id=event.id, photo_ids=_ids(photo))
    if not chosen:
        return dashboard(event_id, page, done="none_selected")
    context = {"event": event, "chosen": chosen, "page": page}
    return render(request, "organizer/delete_photos.html", context, user=organizer)


@router.post("/events/{event_id}/photos/delete")
def delete_photos(
    event_id: IdPath, form: Form, organizer: SignedInOrganizer, session: SessionDep, page: PageQuery = 1
) -> Response:
    """Delete the photos the confirmation page lists (``photo`` fields): their files, faces and
    matches; guests stop seeing them at once. Back to the grid, saying how many went."""
    ids = _ids([value for value in form.getlist("photo") if isinstance(value, str)])
    deleted = photos_service.delete_photos(
        session=session, event=managed(session, organizer, event_id), photo_ids=ids
    )
    return dashboard(event_id, page, done="photos_deleted", deleted=deleted)
