"""Event endpoints: check a code, join an event, and the organizer's event management."""

from __future__ import annotations

from fastapi import APIRouter, status
from fastapi.responses import RedirectResponse

from app.accounts import service as accounts_service
from app.accounts.deps import CurrentOrganizer, CurrentUser
from app.accounts.schemas import RegisterIn, TokenResponse, UserPublic
from app.core.database import SessionDep, commit_now
from app.core.openapi import errors
from app.core.schemas import IdPath
from app.core.throttle import ClientAddress
from app.events import service
from app.events.schemas import (
    CheckEventCodeIn,
    CheckEventCodeResponse,
    EventCreate,
    EventList,
    EventOrganizerView,
    EventPublic,
    EventSettings,
    JoinEventIn,
    JoinEventResponse,
    MeResponse,
)

router = APIRouter(prefix="/api", tags=["events"])
# Account endpoints that involve events (documented with the accounts ones).
accounts_router = APIRouter(prefix="/api", tags=["accounts"])
# Links printed on posters and QR codes: short, outside /api.
join_router = APIRouter(tags=["events"])


@accounts_router.post(
    "/register-with-event-code", status_code=status.HTTP_201_CREATED, responses=errors(404, 409, 410, 429)
)
def register_with_event_code(body: RegisterIn, session: SessionDep, address: ClientAddress) -> TokenResponse:
    """Create a guest account and join the event of ``event_code``, in one step.

    ``accept_face_processing`` must be true (the policy of ``GET /api/privacy``); the consent is
    recorded with its time and the policy's version.

    Errors: 404 ``event_not_found``, 410 ``event_closed``, 409 ``username_taken`` /
    ``email_taken``, 422 ``consent_required`` / ``invalid_username`` / ``invalid_email`` /
    ``weak_password``.
    """
    user = service.register_with_event_code(session=session, data=body, address=address)
    commit_now(session)
    return accounts_service.token_for(user)


@accounts_router.get("/me")
def me(user: CurrentUser, session: SessionDep) -> MeResponse:
    """The signed-in user and the events they are a guest of."""
    events = [EventPublic.model_validate(e) for e in service.user_events(session=session, user_id=user.id)]
    return MeResponse(**UserPublic.model_validate(user).model_dump(), events=events)


@router.post("/check-event-code", responses=errors(404, 410, 429))
def check_event_code(
    body: CheckEventCodeIn, session: SessionDep, address: ClientAddress
) -> CheckEventCodeResponse:
    """The public info of the event with this code (case and spaces do not matter).

    404 ``event_not_found`` for an unknown code, 410 ``event_closed`` for a closed event.
    Wrong codes are throttled per client address: past the limit, 429 ``too_many_requests``
    with ``Retry-After``.
    """
    event = service.event_for_code(session=session, code=body.code, address=address)
    return CheckEventCodeResponse(event=EventPublic.model_validate(event))


@router.post("/join-event", responses=errors(404, 410, 429))
def join_event(
    body: JoinEventIn, user: CurrentUser, session: SessionDep, address: ClientAddress
) -> JoinEventResponse:
    """Join another event with its code; ``joined`` is false if already a guest of it.

    Your current selfie is matched against the new event's photos in the background."""
    event, joined = service.join_event(session=session, user=user, code=body.code, address=address)
    if joined:
        service.guest_joined(session=session, user_id=user.id)
    return JoinEventResponse(joined=joined, event=EventPublic.model_validate(event))


@join_router.get(
    "/e/{token}",
    status_code=status.HTTP_303_SEE_OTHER,
    response_class=RedirectResponse,
    responses=errors(404, 429),
)
def join_link(token: str, session: SessionDep, address: ClientAddress) -> RedirectResponse:
    """The join link of an event's QR code, ``/e/<code>`` or ``/e/<join token>``: a redirect
    to the web app with the event's code filled in (``/?event=<code>``). 404
    ``event_not_found`` for an unknown link (throttled like wrong codes)."""
    event = service.event_for_join_token(session=session, token=token, address=address)
    return RedirectResponse(f"/?event={event.code}", status_code=status.HTTP_303_SEE_OTHER)


def _organizer_view(event: object, guests: int) -> EventOrganizerView:
    return EventOrganizerView.model_validate(event).model_copy(update={"guests": guests})


@router.post("/events", status_code=status.HTTP_201_CREATED, responses=errors(403))
def create_event(body: EventCreate, organizer: CurrentOrganizer, session: SessionDep) -> EventOrganizerView:
    """Create an event; its guest code (e.g. ``SUMMER-7K2Q``) is generated."""
    event = service.create_event(session=session, organizer=organizer, data=body)
    return _organizer_view(event, 0)


@router.get("/events", responses=errors(403))
def list_events(organizer: CurrentOrganizer, session: SessionDep) -> EventList:
    """The organizer's events, newest first (every event for an admin)."""
    rows = service.list_events(session=session, organizer=organizer)
    return EventList(events=[_organizer_view(e, n) for e, n in rows])


@router.get("/events/{event_id}", responses=errors(403, 404))
def get_event(event_id: IdPath, organizer: CurrentOrganizer, session: SessionDep) -> EventOrganizerView:
    """One of the organizer's events, with its photo indexing progress and face count."""
    event = service.get_managed_event(session=session, organizer=organizer, event_id=event_id)
    view = _organizer_view(event, service.count_guests(session=session, event_id=event.id))
    return view.model_copy(update=service.event_detail_fields(session=session, event_id=event.id))


@router.delete(
    "/events/{event_id}/guests/{user_id}", status_code=status.HTTP_204_NO_CONTENT, responses=errors(403, 404)
)
def remove_guest(event_id: IdPath, user_id: IdPath, organizer: CurrentOrganizer, session: SessionDep) -> None:
    """Take a guest out of your event: their membership and their matches in it are erased
    (they can join again only with the code while the event is open)."""
    event = service.get_managed_event(session=session, organizer=organizer, event_id=event_id)
    service.remove_guest(session=session, event=event, user_id=user_id)


@router.patch("/events/{event_id}", responses=errors(403, 404))
def update_event(
    event_id: IdPath, body: EventSettings, organizer: CurrentOrganizer, session: SessionDep
) -> EventOrganizerView:
    """Change the event's settings: ``retention_days``, how long after its end its photos,
    faces and matches are kept before the daily purge erases them."""
    event = service.set_retention(
        session=session, organizer=organizer, event_id=event_id, days=body.retention_days
    )
    return _organizer_view(event, service.count_guests(session=session, event_id=event.id))


@router.post("/events/{event_id}/close", responses=errors(403, 404))
def close_event(event_id: IdPath, organizer: CurrentOrganizer, session: SessionDep) -> EventOrganizerView:
    """Close the event to new guests (existing guests keep their access)."""
    event = service.set_event_open(session=session, organizer=organizer, event_id=event_id, is_open=False)
    return _organizer_view(event, service.count_guests(session=session, event_id=event.id))


@router.post("/events/{event_id}/open", responses=errors(403, 404))
def open_event(event_id: IdPath, organizer: CurrentOrganizer, session: SessionDep) -> EventOrganizerView:
    """Open the event for registration again."""
    event = service.set_event_open(session=session, organizer=organizer, event_id=event_id, is_open=True)
    return _organizer_view(event, service.count_guests(session=session, event_id=event.id))
