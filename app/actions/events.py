"""Event actions that span domains: the organizer's view of an event (its guests from
``events``, photo counts, erasure date and re-description progress from ``photos``, faces),
a guest's events with their erasure dates, a guest joining another event (``events`` records
it, ``selfies`` matches their selfie against it), and a guest taken out of an event
(``events``, then ``notices``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from app.accounts.models import User
from app.events import service as events_service
from app.events.models import Event
from app.events.schemas import (
    EventInvitation,
    EventList,
    EventOrganizerView,
    EventPublic,
    FaceReembedProgress,
    GuestEvent,
    PhotoCounts,
)
from app.faces import service as faces_service
from app.jobs.models import JobStatus
from app.notices import service as notices_service
from app.photos import service as photos_service
from app.selfies import guests as selfie_guests
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


@dataclass(frozen=True)
class OrganizerEvent:
    """One line of the organizer's list of events."""

    event: Event
    guests: int
    photos: int


def organizer_events(*, session: Session, organizer: User) -> list[OrganizerEvent]:
    """The organizer's events (every event for an admin), newest first, with their guest and
    photo counts: two queries whatever the number of events."""
    rows = events_service.list_events(session=session, organizer=organizer)
    photos = photos_service.photos_per_event(session=session, event_ids=[event.id for event, _ in rows])
    return [OrganizerEvent(event=event, guests=guests, photos=photos[event.id]) for event, guests in rows]


@dataclass(frozen=True)
class Progress:
    """What the organizer's dashboard tells of an event's indexing, counts only."""

    photos: PhotoCounts
    faces: int
    matches: int
    guests: int
    selfies_ready: int
    reembed: FaceReembedProgress | None  # only while faces are being described again

    @property
    def busy(self) -> bool:
        """Photos wait for indexing, or faces are being described again."""
        return self.photos.pending + self.photos.processing > 0 or self.reembed is not None


def event_progress(*, session: Session, event: Event) -> Progress:
    """The event's photo counts by status, faces, matches, guests and their ready selfies,
    and a re-description of its faces under way."""
    reembed = photos_service.reembed_progress(session=session, event_id=event.id)
    guests, selfies_ready = selfie_guests.guest_counts(session=session, event_id=event.id)
    return Progress(
        photos=photos_service.photo_counts(session=session, event_id=event.id),
        faces=photos_service.faces_count(session=session, event_id=event.id),
        matches=faces_service.match_count(session=session, event_id=event.id),
        guests=guests,
        selfies_ready=selfies_ready,
        reembed=reembed if reembed is not None and reembed.status in JobStatus.todo() else None,
    )
