"""Events: a guest checks a code and joins an event (or follows its QR code's link); the
organizer creates, lists, inspects, sets up, closes, reopens and deletes events, sees or
removes their guests, and bars a removed guest from rejoining (or lifts it)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status
from fastapi.responses import RedirectResponse

from app.accounts.deps import CurrentOrganizer, CurrentUser
from app.actions import erasure
from app.actions import events as event_actions
from app.core.database import SessionDep
from app.core.openapi import Tag, errors
from app.core.schemas import IdPath
from app.core.throttle import ClientAddress, CountedAddress
from app.events import service as events_service
from app.events.schemas import (
    CheckEventCodeIn,
    CheckEventCodeResponse,
    EventBanList,
    EventCreate,
    EventList,
    EventOrganizerView,
    EventPublic,
    EventSettings,
    JoinEventIn,
    JoinEventResponse,
)
from app.selfies import guests as selfie_guests
from app.selfies.schemas import EventGuests

router = APIRouter()


@router.post("/api/check-event-code", responses=errors(404, 410, 429), tags=[Tag.events])
def check_event_code(
    body: CheckEventCodeIn, session: SessionDep, address: CountedAddress
) -> CheckEventCodeResponse:
    """The public info of the event with this code (case and spaces do not matter).

    404 ``event_not_found`` for an unknown code, 410 ``event_closed`` for a closed event.
    Wrong codes are throttled per client address: past the limit, a wrong code is a 429
    ``too_many_requests`` with ``Retry-After``; a right code always passes.
    """
    event = events_service.event_for_code(session=session, code=body.code, address=address)
    return CheckEventCodeResponse(event=EventPublic.model_validate(event))


@router.post("/api/join-event", responses=errors(403, 404, 410, 429), tags=[Tag.events])
def join_event(
    body: JoinEventIn, user: CurrentUser, session: SessionDep, address: ClientAddress
) -> JoinEventResponse:
    """Join another event with its code; ``joined`` is false if already a guest of it.

    Your current selfie is matched against the new event's photos in the background. 403
    ``guest_barred`` if its organizer removed and barred you."""
    event, joined = event_actions.join_event(session=session, user=user, code=body.code, address=address)
    return JoinEventResponse(joined=joined, event=EventPublic.model_validate(event))


@router.post("/api/events", status_code=status.HTTP_201_CREATED, responses=errors(403), tags=[Tag.events])
def create_event(body: EventCreate, organizer: CurrentOrganizer, session: SessionDep) -> EventOrganizerView:
    """Create an event; its guest code (e.g. ``SUMMER-7K2Q``) is generated."""
    event = events_service.create_event(session=session, organizer=organizer, data=body)
    return event_actions.organizer_view(session=session, event=event, guests=0)


@router.get("/api/events", responses=errors(403), tags=[Tag.events])
def list_events(organizer: CurrentOrganizer, session: SessionDep) -> EventList:
    """The organizer's events, newest first (every event for an admin), each with its erasure
    date ``purge_at``."""
    return event_actions.event_list(session=session, organizer=organizer)


@router.get("/api/events/{event_id}", responses=errors(403, 404), tags=[Tag.events])
def get_event(event_id: IdPath, organizer: CurrentOrganizer, session: SessionDep) -> EventOrganizerView:
    """One of the organizer's events, with its photo indexing progress, face count and erasure
    date: ``purge_at``, its end (``ends_at``) or, when it has none, its last upload, plus
    ``retention_days`` (null only while an event without an end has no photo)."""
    event = events_service.get_managed_event(session=session, organizer=organizer, event_id=event_id)
    return event_actions.event_detail(session=session, event=event)


@router.delete(
    "/api/events/{event_id}/guests/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(403, 404),
    tags=[Tag.events],
)
def remove_guest(
    event_id: IdPath,
    user_id: IdPath,
    organizer: CurrentOrganizer,
    session: SessionDep,
    bar: Annotated[bool, Query(description="Also bar the guest from joining the event again.")] = False,
) -> None:
    """Take a guest out of your event: their membership and their matches in it are erased.

    Without ``bar`` they can join again with the code while the event is open. With
    ``?bar=true`` they cannot (403 ``guest_barred`` when they try) until you lift it:
    ``GET /api/events/{id}/bans`` lists the barred guests, ``DELETE
    /api/events/{id}/bans/{user_id}`` lets one back in. 404 ``guest_not_found`` if the user is
    not a guest of the event."""
    event = events_service.get_managed_event(session=session, organizer=organizer, event_id=event_id)
    event_actions.remove_guest(session=session, event=event, user_id=user_id, bar=bar)


@router.get("/api/events/{event_id}/bans", responses=errors(403, 404), tags=[Tag.events])
def list_bans(event_id: IdPath, organizer: CurrentOrganizer, session: SessionDep) -> EventBanList:
    """The guests you removed with ``bar=true``, who cannot join the event again."""
    event = events_service.get_managed_event(session=session, organizer=organizer, event_id=event_id)
    return EventBanList.of(events_service.list_bans(session=session, event=event))


@router.delete(
    "/api/events/{event_id}/bans/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(403, 404),
    tags=[Tag.events],
)
def lift_ban(event_id: IdPath, user_id: IdPath, organizer: CurrentOrganizer, session: SessionDep) -> None:
    """Let a barred guest join the event again (with its code, while it is open). 404
    ``ban_not_found`` if they are not barred."""
    event = events_service.get_managed_event(session=session, organizer=organizer, event_id=event_id)
    events_service.lift_ban(session=session, event=event, user_id=user_id)


@router.patch("/api/events/{event_id}", responses=errors(403, 404), tags=[Tag.events])
def update_event(
    event_id: IdPath, body: EventSettings, organizer: CurrentOrganizer, session: SessionDep
) -> EventOrganizerView:
    """Change the event's settings: ``retention_days``, how long after its end its photos,
    faces and matches are kept before the daily purge erases them."""
    event = events_service.set_retention(
        session=session, organizer=organizer, event_id=event_id, days=body.retention_days
    )
    return event_actions.organizer_view(session=session, event=event)


@router.post("/api/events/{event_id}/close", responses=errors(403, 404), tags=[Tag.events])
def close_event(event_id: IdPath, organizer: CurrentOrganizer, session: SessionDep) -> EventOrganizerView:
    """Close the event to new guests (existing guests keep their access)."""
    event = events_service.set_event_open(
        session=session, organizer=organizer, event_id=event_id, is_open=False
    )
    return event_actions.organizer_view(session=session, event=event)


@router.post("/api/events/{event_id}/open", responses=errors(403, 404), tags=[Tag.events])
def open_event(event_id: IdPath, organizer: CurrentOrganizer, session: SessionDep) -> EventOrganizerView:
    """Open the event for registration again."""
    event = events_service.set_event_open(
        session=session, organizer=organizer, event_id=event_id, is_open=True
    )
    return event_actions.organizer_view(session=session, event=event)


@router.get(
    "/e/{token}",
    status_code=status.HTTP_303_SEE_OTHER,
    response_class=RedirectResponse,
    responses=errors(404, 429),
    tags=[Tag.events],
)
def join_link(token: str, session: SessionDep, address: CountedAddress) -> RedirectResponse:
    """The join link of an event's QR code, ``/e/<code>`` or ``/e/<join token>``: a redirect
    to the web app with the event's code filled in (``/?event=<code>``). 404
    ``event_not_found`` for an unknown link (throttled like wrong codes; a valid link always
    passes, and what another site's page makes a browser request, e.g. an ``<img>``, is not
    counted)."""
    event = events_service.event_for_join_token(session=session, token=token, address=address)
    return RedirectResponse(f"/?event={event.code}", status_code=status.HTTP_303_SEE_OTHER)


@router.delete(
    "/api/events/{event_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(403, 404),
    tags=[Tag.photos],
)
def delete_event(event_id: IdPath, organizer: CurrentOrganizer, session: SessionDep) -> None:
    """Delete your event and everything under it: photos, faces, matches, memberships.
    It disappears for its guests at once; its photos are erased by a durable job (a server
    that stops half-way finishes it when it starts again)."""
    event = events_service.get_managed_event(session=session, organizer=organizer, event_id=event_id)
    erasure.delete_event(session=session, event=event)


@router.get("/api/events/{event_id}/guests", responses=errors(403, 404), tags=[Tag.selfies])
def event_guests(event_id: IdPath, organizer: CurrentOrganizer, session: SessionDep) -> EventGuests:
    """Your event's guests, with their selfie's state and how often each replaced it: someone
    holding the code could upload another person's face, and a guest who keeps changing
    selfies is worth a look (``DELETE /api/events/{id}/guests/{user_id}`` removes a guest)."""
    event = events_service.get_managed_event(session=session, organizer=organizer, event_id=event_id)
    return EventGuests(guests=selfie_guests.event_guests(session=session, event_id=event.id))
