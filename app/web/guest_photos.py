"""The guest's selfie and photos pages: the selfie and its live verdict, "my photos" (with
what is new since the last visit, per event), one photo full size (previous / next, share,
download, "not me" and its undo).

Each page calls the same services as the API (``/api/my-photos/{id}/not-me``, its ``DELETE``
to undo). ``app.web.guest`` includes this router.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from app.accounts.deps import SignedIn
from app.actions import events as event_actions
from app.core.database import SessionDep
from app.core.schemas import IdPath
from app.photos import service as photos_service
from app.selfies import service as selfies_service
from app.web.errors import unless_gone
from app.web.forms import CSRF, Form, field, safe_next, see_other
from app.web.templating import render

router = APIRouter(include_in_schema=False)

#: ``?event=``: one event's photos only (the link of a "your photos are here" mail).
EventFilter = Annotated[int | None, Query(ge=1, le=2**62)]
#: ``?removed=``: the photo just taken out with "not me", offered back ("Undo").
Removed = Annotated[int | None, Query(ge=1, le=2**62)]


@router.get("/selfie", response_class=HTMLResponse)
def selfie_page(request: Request, user: SignedIn, session: SessionDep) -> Response:
    """Take or replace the selfie (the camera or a photo of the phone); its verdict appears
    live below."""
    state = selfies_service.current_state(session=session, user_id=user.id)
    return render(request, "selfie.html", {"state": state}, user=user)


@router.get("/selfie/status", response_class=HTMLResponse)
def selfie_status(request: Request, user: SignedIn, session: SessionDep) -> Response:
    """The selfie's verdict (an htmx fragment, fetched again at each change)."""
    state = selfies_service.current_state(session=session, user_id=user.id)
    return render(request, "_selfie_status.html", {"state": state}, user=user)


def _grid_context(
    session: SessionDep, user_id: int, event_id: int | None, *, visit: bool
) -> dict[str, object]:
    photos, new = selfies_service.photo_grid(session=session, user_id=user_id, event_id=event_id, visit=visit)
    return {
        "photos": photos,
        "new": new,
        "event_id": event_id,
        "state": selfies_service.current_state(session=session, user_id=user_id),
    }


@router.get("/photos", response_class=HTMLResponse)
def photos_page(
    request: Request,
    user: SignedIn,
    session: SessionDep,
    event: EventFilter = None,
    removed: Removed = None,
    restored: bool = False,
) -> Response:
    """The photos the guest appears in (of one event with ``?event=``), and when each event's
    photos are erased; new ones fill in without a reload. A visit: what it shows is seen, so
    "new since your last visit" counts only what came after it (per event)."""
    context = _grid_context(session, user.id, event, visit=True)
    events = event_actions.guest_events(session=session, user_id=user.id)
    context |= {
        "events": [e for e in events if event is None or e.id == event],
        "removed": removed,
        "restored": restored,
    }
    if event is not None:
        context["event_name"] = next((e.name for e in events if e.id == event), None)
    return render(request, "photos.html", context, user=user)


@router.get("/photos/grid", response_class=HTMLResponse)
def photos_grid(request: Request, user: SignedIn, session: SessionDep, event: EventFilter = None) -> Response:
    """The grid alone (an htmx fragment, fetched again at each change): not a visit."""
    return render(request, "_grid.html", _grid_context(session, user.id, event, visit=False), user=user)


@router.get("/photos/{photo_id}", response_class=HTMLResponse)
def photo_page(
    request: Request,
    photo_id: IdPath,
    user: SignedIn,
    session: SessionDep,
    event: EventFilter = None,
    removed: Removed = None,
) -> Response:
    """One photo, full size (404 unless the guest is in it), with the previous and next ones
    of the grid (of one event with ``?event=``), share, download and "not me"."""
    photos_service.photo_for_viewer(session=session, user=user, photo_id=photo_id)
    before, after = selfies_service.neighbours(
        session=session, user_id=user.id, photo_id=photo_id, event_id=event
    )
    context = {"photo_id": photo_id, "previous": before, "next": after, "event_id": event, "removed": removed}
    return render(request, "photo.html", context, user=user)


@router.post("/photos/{photo_id}/not-me", response_class=HTMLResponse)
def not_me(photo_id: IdPath, form: Form, user: SignedIn, session: SessionDep) -> Response:
    """Not me (as ``POST /api/my-photos/{id}/not-me``): the photo leaves the guest's list; the
    page shown next (``then``: the next photo, or the grid) offers "Undo"."""
    with unless_gone(session):  # already gone: the result the guest wanted
        selfies_service.not_me(session=session, user_id=user.id, photo_id=photo_id)
    then = safe_next(field(form, "then", 200), "/photos")
    return see_other(f"{then}{'&' if '?' in then else '?'}removed={photo_id}")


@router.post("/photos/{photo_id}/not-me/undo", dependencies=CSRF)
def undo_not_me(photo_id: IdPath, user: SignedIn, session: SessionDep) -> Response:
    """Undo a "not me" (as ``DELETE /api/my-photos/{id}/not-me``): the guest's matches are
    computed again in the background, and the photo comes back to the grid live."""
    selfies_service.not_me(session=session, user_id=user.id, photo_id=photo_id, undo=True)
    return see_other("/photos?restored=1")
