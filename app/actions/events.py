"""Event actions that span domains: the organizer's view of an event (its guests from
``events``, photo counts and re-description progress from ``photos``, faces) and a guest
joining another event (``events`` records it, ``selfies`` matches their selfie against it), and
a guest taken out of an event (``events``, then ``notices``)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.accounts.models import User
from app.events import service as events_service
from app.events.models import Event
from app.events.schemas import EventOrganizerView
from app.notices import service as notices_service
from app.photos import service as photos_service
from app.selfies import service as selfies_service


def organizer_view(*, session: Session, event: Event, guests: int | None = None) -> EventOrganizerView:
    """The event as its organizer sees it in a list: settings, join link, guest count
    (counted unless given)."""
    if guests is None:
        guests = events_service.count_guests(session=session, event_id=event.id)
    return EventOrganizerView.model_validate(event).model_copy(update={"guests": guests})


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
