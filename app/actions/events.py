"""Event actions that span domains: the organizer's view of an event (its guests from
``events``, photo counts, erasure date and re-description progress from ``photos``, faces),
a guest's events with their erasure dates, a guest joining another event (``events`` records
it, ``selfies`` matches their selfie against it), and a guest taken out of an event
(``events``, then ``notices``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from app.accounts.models import User
from app.events import service as events_service
from app.events.models import Event
from app.events.schemas import EventInvitation, EventList, EventOrganizerView, EventPublic, GuestEvent
from app.notices import service as notices_service
from app.photos import service as photos_service
from app.selfies import service as selfies_service

_UNKNOWN = datetime.min


def organizer_view(
    *, session: Session, event: Event, guests: int | None = None, purge_at: datetime | None = _UNKNOWN
) -> EventOrganizerView:
    """The event as its organizer sees it in a list: settings, join link, guest count and
    erasure date (``photos.service.purge_dates``; each counted unless given)."""
    if guests is None:
        guests = events_service.count_guests(session=session, event_id=event.id)
    if purge_at is _UNKNOWN:
        purge_at = photos_service.purge_dates(session=session, events=[event])[event.id]
    view = EventOrganizerView.model_validate(event)
    return view.model_copy(update={"guests": guests, "purge_at": purge_at})


def event_list(*, session: Session, organizer: User) -> EventList:
    """The organizer's events (every event for an admin), newest first, with their guest
    counts and erasure dates."""
    rows = events_service.list_events(session=session, organizer=organizer)
    dates = photos_service.purge_dates(session=session, events=[event for event, _ in rows])
    return EventList(
        events=[
            organizer_view(session=session, event=event, guests=guests, purge_at=dates[event.id])
            for event, guests in rows
        ]
    )


def guest_events(*, session: Session, user_id: int) -> list[GuestEvent]:
    """The events ``user_id`` is a guest of, oldest membership first, with their erasure dates."""
    events = events_service.user_events(session=session, user_id=user_id)
    dates = photos_service.purge_dates(session=session, events=events)
    return [GuestEvent.model_validate(e).model_copy(update={"purge_at": dates[e.id]}) for e in events]


def event_detail(*, session: Session, event: Event) -> EventOrganizerView:
    """One event in full for its organizer: the list view with photo counts by status,
    faces found, and the progress of a re-description after the face model changed."""
    return organizer_view(session=session, event=event).model_copy(
        update={
            "photos": photos_service.photo_counts(session=session, event_id=event.id),
            "faces": photos_service.faces_count(session=session, event_id=event.id),
            "faces_reembed": photos_service.reembed_progress(session=session, event_id=event.id),
        }
    )


def invitation(*, session: Session, event: Event) -> EventInvitation:
    """``event`` as its page shows it to a visitor who may register or join: its organizer's
    name and its erasure date."""
    return EventInvitation.model_validate(
        {
            **EventPublic.model_validate(event).model_dump(),
            "organizer": events_service.organizer_name(session=session, event=event),
            "retention_days": event.retention_days,
            "purge_at": photos_service.purge_dates(session=session, events=[event])[event.id],
        }
    )


def join_event(*, session: Session, user: User, code: str, address: str) -> tuple[Event, bool]:
    """Make ``user`` a guest of the open event of ``code`` (``joined`` is False if already
    one); a new guest's current selfie is matched against the event in the background."""
    event, joined = events_service.join_event(session=session, user=user, code=code, address=address)
    if joined:
        selfies_service.rematch(session=session, user_id=user.id)
    return event, joined


def remove_guest(*, session: Session, event: Event, user_id: int, bar: bool = False) -> None:
    """Take a guest out of ``event`` (``events``: membership, matches, the bar) and forget
    what was kept to tell them of its photos (``notices``)."""
    events_service.remove_guest(session=session, event=event, user_id=user_id, bar=bar)
    notices_service.forget_guest(session=session, event_id=event.id, user_id=user_id)
