"""Event codes, event management, guest memberships and the guests an organizer barred. All
event queries live here."""

from __future__ import annotations

import re
import secrets
import unicodedata
from datetime import UTC

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from app.accounts import links
from app.accounts import service as accounts_service
from app.accounts.models import Role, User
from app.accounts.schemas import RegisterIn
from app.core.config import get_settings
from app.core.database import release_connection, utcnow
from app.core.errors import Forbidden, Gone, NotFound
from app.core.i18n import DEFAULT_LANGUAGE, supported
from app.core.throttle import Throttle
from app.events.models import Event, EventBan, EventMembership
from app.events.schemas import EventCreate
from app.faces import service as faces_service

# No 0/O, 1/I/L: a code read aloud or from a poster is typed back correctly.
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
# 31^8 = 8.5e11 codes per prefix: a scan of the code space is hopeless (README, "Security").
CODE_SUFFIX_LENGTH = 8
CODE_PREFIX_MAX = 8
# Wrong (or closed) codes per client address. Only failures are limited: a right code always
# passes, so a venue's guests get in whatever others behind its address mistyped.
CODE_FAILURES = Throttle("code-failures", "throttle_code_failures_per_address")
_TOO_MANY_CODES = "Too many wrong event codes from your network. Wait a few minutes and try again."


class EventNotFound(NotFound):
    code = "event_not_found"
    message = "No event has this code. Check the code on your invitation."


class EventClosed(Gone):
    code = "event_closed"
    message = "This event is closed to new guests."


class GuestBarred(Forbidden):
    code = "guest_barred"
    message = "The organizer removed you from this event: you cannot join it again."


def normalize_code(code: str) -> str:
    return "".join(code.split()).upper()


def generate_code(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    words = re.findall(r"[A-Z]+", ascii_name.upper())
    # "Summer Party 2026" -> SUMMER; short first words are joined: "Le Bal" -> LEBAL.
    prefix = (words[0] if words and len(words[0]) >= 3 else "".join(words))[:CODE_PREFIX_MAX]
    prefix = prefix or "EVENT"
    suffix = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_SUFFIX_LENGTH))
    return f"{prefix}-{suffix}"


def get_event_by_code(*, session: Session, code: str) -> Event | None:
    return session.scalar(
        select(Event).where(Event.code == normalize_code(code), Event.deleting_at.is_(None))
    )


def require_open_event(*, session: Session, code: str) -> Event:
    """The event a guest may join with this code, or the reason they may not."""
    event = get_event_by_code(session=session, code=code)
    if event is None:
        raise EventNotFound()
    if not event.is_open:
        raise EventClosed()
    return event


def _wrong_code(address: str | None, error: NotFound | Gone) -> NotFound | Gone:
    """Count a wrong or closed code against ``address`` (None: a request another site made
    the browser send, not counted); the error to answer, 429 past the limit."""
    if address is None:
        return error
    refusal = CODE_FAILURES.refusal(address, message=_TOO_MANY_CODES)
    if refusal is not None:
        raise refusal
    CODE_FAILURES.hit(address)
    return error


def event_for_code(*, session: Session, code: str, address: str | None) -> Event:
    """``require_open_event``, throttled: each wrong or closed code counts against the client's
    address (``address``; None: not counted), and past the limit a wrong code is a 429 for a
    while. A right code always passes."""
    try:
        return require_open_event(session=session, code=code)
    except (EventNotFound, EventClosed) as exc:
        raise _wrong_code(address, exc) from None


def event_for_join_token(*, session: Session, token: str, address: str | None) -> Event:
    """The event of a join link, ``/e/<join token>`` or ``/e/<code>`` (its QR code); throttled
    like codes (a valid link always passes)."""
    found = select(Event).where(
        or_(Event.join_token == token, Event.code == normalize_code(token)), Event.deleting_at.is_(None)
    )
    event = session.scalar(found) if len(token) <= 32 else None
    if event is None:
        error = NotFound(
            "This join link is not valid. Check the code on your invitation.", code="event_not_found"
        )
        raise _wrong_code(address, error)
    return event


def create_event(*, session: Session, organizer: User, data: EventCreate) -> Event:
    for _ in range(10):
        code = generate_code(data.name)
        if get_event_by_code(session=session, code=code) is None:
            break
    event = Event(
        code=code,
        join_token=secrets.token_urlsafe(16),
        name=data.name.strip(),
        retention_days=data.retention_days or get_settings().event_retention_days,
        starts_at=data.starts_at.astimezone(UTC) if data.starts_at else None,
        ends_at=data.ends_at.astimezone(UTC) if data.ends_at else None,
        organizer_id=organizer.id,
    )
    session.add(event)
    session.flush()
    return event


def list_events(*, session: Session, organizer: User) -> list[tuple[Event, int]]:
    """The organizer's events (every event for an admin) with their guest counts."""
    guests = (
        select(EventMembership.event_id, func.count().label("n"))
        .group_by(EventMembership.event_id)
        .subquery()
    )
    stmt = (
        select(Event, func.coalesce(guests.c.n, 0))
        .outerjoin(guests, guests.c.event_id == Event.id)
        .order_by(Event.created_at.desc(), Event.id.desc())
    )
    stmt = stmt.where(Event.deleting_at.is_(None))
    if organizer.role != Role.admin:
        stmt = stmt.where(Event.organizer_id == organizer.id)
    return [(e, n) for e, n in session.execute(stmt).all()]


def get_managed_event(*, session: Session, organizer: User, event_id: int) -> Event:
    """An event the organizer may manage; 404 for others' events (no existence leak)."""
    event = session.get(Event, event_id)
    mine = event is not None and (organizer.role == Role.admin or event.organizer_id == organizer.id)
    if event is None or not mine or event.deleting_at is not None:
        raise NotFound("No such event.", code="event_not_found")
    return event


def set_retention(*, session: Session, organizer: User, event_id: int, days: int) -> Event:
    event = get_managed_event(session=session, organizer=organizer, event_id=event_id)
    event.retention_days = days
    session.flush()
    return event


def set_event_open(*, session: Session, organizer: User, event_id: int, is_open: bool) -> Event:
    event = get_managed_event(session=session, organizer=organizer, event_id=event_id)
    event.is_open = is_open
    session.flush()
    return event


def count_guests(*, session: Session, event_id: int) -> int:
    return (
        session.scalar(
            select(func.count()).select_from(EventMembership).where(EventMembership.event_id == event_id)
        )
        or 0
    )


def is_member(*, session: Session, user_id: int, event_id: int) -> bool:
    return (
        session.scalar(
            select(EventMembership.id).where(
                EventMembership.user_id == user_id, EventMembership.event_id == event_id
            )
        )
        is not None
    )


def join_event(*, session: Session, user: User, code: str, address: str) -> tuple[Event, bool]:
    """Make ``user`` a guest of the open event ``code``; ``joined`` is False if already one.
    403 ``guest_barred`` for a guest the organizer removed and barred."""
    event = event_for_code(session=session, code=code, address=address)
    if is_member(session=session, user_id=user.id, event_id=event.id):
        return event, False
    if is_barred(session=session, user_id=user.id, event_id=event.id):
        raise GuestBarred()
    session.add(EventMembership(user_id=user.id, event_id=event.id))
    session.flush()
    return event, True


def remove_guest(*, session: Session, event: Event, user_id: int, bar: bool = False) -> None:
    """Take a guest out of ``event``: their membership and their matches in it go. ``bar``:
    they may not join it again (``lift_ban`` lets them)."""
    membership = session.scalar(
        select(EventMembership).where(
            EventMembership.event_id == event.id, EventMembership.user_id == user_id
        )
    )
    if membership is None:
        raise NotFound("This user is not a guest of the event.", code="guest_not_found")
    session.delete(membership)
    faces_service.delete_event_matches(session=session, user_id=user_id, event_id=event.id)
    if bar and not is_barred(session=session, user_id=user_id, event_id=event.id):
        session.add(EventBan(event_id=event.id, user_id=user_id))
    session.flush()


def is_barred(*, session: Session, user_id: int, event_id: int) -> bool:
    barred = select(EventBan.id).where(EventBan.event_id == event_id, EventBan.user_id == user_id)
    return session.scalar(barred) is not None


def list_bans(*, session: Session, event: Event) -> list[tuple[EventBan, User]]:
    """The event's barred guests, most recently barred first."""
    rows = session.execute(
        select(EventBan, User)
        .join(User, User.id == EventBan.user_id)
        .where(EventBan.event_id == event.id)
        .order_by(EventBan.created_at.desc(), EventBan.id.desc())
    )
    return [(ban, user) for ban, user in rows]


def lift_ban(*, session: Session, event: Event, user_id: int) -> None:
    """Let a barred guest join ``event`` again (with its code, while it is open)."""
    ban = session.scalar(select(EventBan).where(EventBan.event_id == event.id, EventBan.user_id == user_id))
    if ban is None:
        raise NotFound("This user is not barred from the event.", code="ban_not_found")
    session.delete(ban)
    session.flush()


def organizer_has_events(*, session: Session, user_id: int) -> bool:
    """Whether any event (even one being deleted: its row stays until it is erased) is
    ``user_id``'s."""
    return session.scalar(select(Event.id).where(Event.organizer_id == user_id).limit(1)) is not None


def close_for_erasure(*, session: Session, event: Event) -> None:
    """The first, instant part of deleting an event: closed, hidden from guests and organizers
    (``deleting_at``), its guests' memberships and matches gone; the job erases the rest."""
    event.deleting_at = utcnow()
    event.is_open = False
    session.execute(delete(EventMembership).where(EventMembership.event_id == event.id))
    faces_service.delete_event_matches(session=session, event_id=event.id)
    session.flush()


def member_event(*, session: Session, user_id: int, code: str) -> Event | None:
    """The event of ``code`` if ``user_id`` is a guest of it (open or closed), else None."""
    return session.scalar(
        select(Event)
        .join(EventMembership, EventMembership.event_id == Event.id)
        .where(
            EventMembership.user_id == user_id,
            Event.code == normalize_code(code),
            Event.deleting_at.is_(None),
        )
    )


def organizer_name(*, session: Session, event: Event) -> str:
    """The name the event's organizer goes by: their display name, else their username."""
    row = session.execute(select(User.display_name, User.username).where(User.id == event.organizer_id)).one()
    return str(row.display_name or row.username)


def user_events(*, session: Session, user_id: int) -> list[Event]:
    stmt = (
        select(Event)
        .join(EventMembership, EventMembership.event_id == Event.id)
        .where(EventMembership.user_id == user_id)
        .order_by(EventMembership.joined_at, Event.id)
    )
    return list(session.scalars(stmt))


def register_guest(
    *, session: Session, user: User, event_code: str, address: str | None, language: str = DEFAULT_LANGUAGE
) -> User:
    """Save a prepared guest (``accounts.service.prepare_user``) and their membership of the
    open event of ``event_code``, in one transaction, and mail them a link that verifies their
    address (in ``language``, the language of their mails from now on)."""
    event = event_for_code(session=session, code=event_code, address=address)
    user.language = supported(language)
    accounts_service.add_user(session=session, user=user)
    session.add(EventMembership(user_id=user.id, event_id=event.id))
    session.flush()
    links.send_verification(session=session, user=user)
    return user


def register_with_event_code(
    *, session: Session, data: RegisterIn, address: str | None, language: str = DEFAULT_LANGUAGE
) -> User:
    """Create a guest account from ``data`` and join the event of its code, in one step.

    Consent and the code are checked before any hashing; the connection goes back to the pool
    while argon2 runs."""
    accounts_service.require_consent(data.accept_face_processing)
    event = event_for_code(session=session, code=data.event_code, address=address)
    context = [event.name, event.code]
    release_connection(session)
    new_user = accounts_service.prepare_user(
        username=data.username,
        email=data.email,
        password=data.password,
        display_name=data.display_name,
        context=context,
        consent=True,
    )
    return register_guest(
        session=session, user=new_user, event_code=data.event_code, address=address, language=language
    )


def member_event_ids(*, session: Session, user_id: int) -> list[int]:
    """The ids of the events ``user_id`` is a guest of."""
    return list(session.scalars(select(EventMembership.event_id).where(EventMembership.user_id == user_id)))
