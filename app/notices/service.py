"""When and what to tell guests about new photos of them, and every query on its tables.

The photo job calls :func:`photos_matched` when a photo matched guests: each guest's notice is
due a quiet period later (pushed back while the organizer's batch keeps matching, never
sooner than the minimum interval after the last message), and the event's run is armed. The
run (``app.notices.jobs``) calls :func:`write_due` in batches: one message per guest with the
number of new photos, the event's name and links, never a photo. Only verified addresses with
both switches on (the account's and the event's) are written to.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, delete, func, literal, select, update
from sqlalchemy.orm import Session

from app.accounts.models import User
from app.core import security
from app.core.config import Settings, get_settings
from app.core.database import UTCDateTime, upsert_insert, utcnow
from app.core.errors import NotFound
from app.events.models import Event, EventMembership
from app.faces.models import FaceMatch
from app.jobs import wakeup
from app.jobs.models import JobStatus
from app.mail import service as mail
from app.mail.service import MailKind
from app.notices.models import GuestNotice, NoticeRun, ToldPhoto
from app.notices.schemas import (
    EventNotifications,
    EventSwitch,
    NotificationSettings,
    NotificationsPatch,
    SentNotification,
)

UNSUBSCRIBE = "unsubscribe"


def arm_run(*, session: Session, event_id: int, at: datetime) -> None:
    """Make the event's run claimable at ``at`` (a run going on meanwhile ends pending again)."""
    running = NoticeRun.status == JobStatus.running
    stmt = upsert_insert(session, NoticeRun).values(
        event_id=event_id,
        wanted=1,
        status=JobStatus.pending,
        attempts=0,
        available_at=at,
        created_at=utcnow(),
    )
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=["event_id"],
            set_={
                "wanted": NoticeRun.wanted + 1,
                "status": case((running, NoticeRun.status), else_=JobStatus.pending.value),
                "attempts": case((running, NoticeRun.attempts), else_=0),
                "available_at": case((running, NoticeRun.available_at), else_=at),
            },
        )
    )
    wakeup.notify_on_commit(session)


def photos_matched(*, session: Session, event_id: int, photo_id: int, user_ids: Collection[int]) -> None:
    """``photo_id`` matched ``user_ids``: their notices are due after the quiet period. A
    guest's first notice of the event counts only photos matched from now on (what matched
    before, they saw when their selfie was matched)."""
    if not user_ids:
        return
    settings = get_settings()
    now = utcnow()
    quiet = now + timedelta(seconds=settings.notify_quiet_seconds)
    interval = timedelta(seconds=settings.notify_min_interval_seconds)
    known = dict(
        session.execute(
            select(GuestNotice.user_id, GuestNotice.last_sent_at).where(
                GuestNotice.event_id == event_id, GuestNotice.user_id.in_(user_ids)
            )
        ).all()
    )
    first = [uid for uid in user_ids if uid not in known]
    if first:
        earlier = select(
            FaceMatch.user_id, FaceMatch.event_id, FaceMatch.photo_id, literal(now, UTCDateTime())
        ).where(FaceMatch.event_id == event_id, FaceMatch.user_id.in_(first), FaceMatch.photo_id != photo_id)
        told = upsert_insert(session, ToldPhoto).from_select(
            ["user_id", "event_id", "photo_id", "told_at"], earlier
        )
        session.execute(told.on_conflict_do_nothing())
    rows = []
    for uid in user_ids:
        last = known.get(uid)
        rows.append(
            {"user_id": uid, "event_id": event_id, "due_at": max(quiet, last + interval) if last else quiet}
        )
    stmt = upsert_insert(session, GuestNotice)
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=["user_id", "event_id"], set_={"due_at": stmt.excluded.due_at}
        ),
        rows,
    )
    arm_run(session=session, event_id=event_id, at=quiet)


def notify_now(*, session: Session, event_id: int) -> int:
    """The organizer's "notify the guests now": every guest with new photos waiting is due
    now (the minimum interval still holds). How many guests were waiting."""
    now = utcnow()
    waiting = GuestNotice.event_id == event_id, GuestNotice.due_at.is_not(None)
    count = int(session.scalar(select(func.count()).select_from(GuestNotice).where(*waiting)) or 0)
    if count:
        session.execute(update(GuestNotice).where(*waiting).values(due_at=now))
        arm_run(session=session, event_id=event_id, at=now)
    return count


def waiting_guests(*, session: Session, event_id: int) -> int:
    """Guests of the event whose "new photos" message is still to be written."""
    waiting = GuestNotice.event_id == event_id, GuestNotice.due_at.is_not(None)
    return int(session.scalar(select(func.count()).select_from(GuestNotice).where(*waiting)) or 0)


def next_due(*, session: Session, event_id: int) -> datetime | None:
    return session.scalar(
        select(func.min(GuestNotice.due_at)).where(
            GuestNotice.event_id == event_id, GuestNotice.due_at.is_not(None)
        )
    )


@dataclass(frozen=True)
class _Due:
    user: User
    notify_event: bool
    last_sent_at: datetime | None


def _new_photos(session: Session, event_id: int, user_ids: list[int]) -> dict[int, list[int]]:
    told = select(ToldPhoto.photo_id).where(
        ToldPhoto.user_id == FaceMatch.user_id, ToldPhoto.photo_id == FaceMatch.photo_id
    )
    found: dict[int, list[int]] = defaultdict(list)
    for uid, pid in session.execute(
        select(FaceMatch.user_id, FaceMatch.photo_id).where(
            FaceMatch.event_id == event_id, FaceMatch.user_id.in_(user_ids), ~told.exists()
        )
    ):
        found[uid].append(pid)
    return found


def write_due(*, session: Session, event_id: int, limit: int) -> int:
    """Write the messages of up to ``limit`` guests of the event whose notice is due; how many
    notices were handled (0: none is due)."""
    settings, now = get_settings(), utcnow()
    rows = session.execute(
        select(User, EventMembership.notify, GuestNotice.last_sent_at)
        .join(GuestNotice, GuestNotice.user_id == User.id)
        .join(
            EventMembership,
            (EventMembership.user_id == User.id) & (EventMembership.event_id == GuestNotice.event_id),
        )
        .where(GuestNotice.event_id == event_id, GuestNotice.due_at <= now)
        .order_by(GuestNotice.due_at)
        .limit(limit)
    ).all()
    due = [_Due(user=r[0], notify_event=r[1], last_sent_at=r[2]) for r in rows]
    # A guest no longer in the event (removed, left) has nothing to be told.
    session.execute(
        delete(GuestNotice).where(
            GuestNotice.event_id == event_id,
            GuestNotice.due_at <= now,
            ~select(EventMembership.id)
            .where(EventMembership.user_id == GuestNotice.user_id, EventMembership.event_id == event_id)
            .exists(),
        )
    )
    if not due:
        return 0
    event = session.get(Event, event_id)
    new = _new_photos(session, event_id, [d.user.id for d in due])
    interval = timedelta(seconds=settings.notify_min_interval_seconds)
    told: list[dict[str, Any]] = []
    changes: list[dict[str, Any]] = []  # one bulk UPDATE at the end: the messages go in one batch
    for d in due:
        uid = d.user.id
        key = {"user_id": uid, "event_id": event_id}
        if d.last_sent_at is not None and d.last_sent_at + interval > now:
            changes.append({**key, "due_at": d.last_sent_at + interval, "last_sent_at": d.last_sent_at})
            continue
        wanted = d.user.email_verified_at is not None and d.user.notify_photos and d.notify_event
        if wanted and new.get(uid) and event is not None:
            _write(session, settings, d.user, event, len(new[uid]))
            told.extend({**key, "photo_id": pid, "told_at": now} for pid in new[uid])
            changes.append({**key, "due_at": None, "last_sent_at": now})
        else:  # nothing new, or not wanted: what is new stays new for a later message
            changes.append({**key, "due_at": None, "last_sent_at": d.last_sent_at})
    session.execute(update(GuestNotice), changes)
    if told:
        session.execute(upsert_insert(session, ToldPhoto).on_conflict_do_nothing(), told)
    return len(due)


def unsubscribe_url(user_id: int, event_id: int, settings: Settings) -> str:
    return mail.link(
        f"/unsubscribe/{security.sign(UNSUBSCRIBE, f'{user_id}-{event_id}', settings)}", settings
    )


def _write(session: Session, settings: Settings, user: User, event: Event, count: int) -> None:
    unsubscribe = unsubscribe_url(user.id, event.id, settings)
    mail.enqueue(
        session=session,
        kind=MailKind.photos,
        to=user.email,
        language=user.language,
        context={
            "name": user.display_name or user.username,
            "event_name": event.name,
            "count": count,
            "url": mail.link(f"/photos?event={event.id}", settings),
            "unsubscribe_url": unsubscribe,
            "settings_url": mail.link("/account#notifications", settings),
        },
        user_id=user.id,
        event_id=event.id,
        photos_count=count,
        unsubscribe_url=unsubscribe,
    )


def _unsubscribe_target(token: str) -> tuple[int, int] | None:
    value = security.unsign(UNSUBSCRIBE, token)
    user_id, _, event_id = (value or "").partition("-")
    if not (user_id.isdigit() and event_id.isdigit()):
        return None
    return int(user_id), int(event_id)


def unsubscribe_event(*, session: Session, token: str) -> Event | None:
    """The event of a notification's unsubscribe link, while its guest is in it; None for a
    link that is not ours (or a guest who left)."""
    target = _unsubscribe_target(token)
    if target is None:
        return None
    member = select(EventMembership.id).where(
        EventMembership.user_id == target[0], EventMembership.event_id == target[1]
    )
    return session.get(Event, target[1]) if session.scalar(member) is not None else None


def unsubscribe(*, session: Session, token: str) -> Event | None:
    """The one-click unsubscribe of a notification's link (RFC 8058): that event's switch goes
    off for that guest, at once. The event, or None when the link is not valid."""
    event = unsubscribe_event(session=session, token=token)
    target = _unsubscribe_target(token)
    if event is None or target is None:
        return None
    set_event_switch(session=session, user_id=target[0], event_id=event.id, enabled=False)
    return event


def set_event_switch(*, session: Session, user_id: int, event_id: int, enabled: bool) -> bool:
    """Turn one event's notifications on or off for a guest; False if they are not its guest."""
    result: Any = session.execute(
        update(EventMembership)
        .where(EventMembership.user_id == user_id, EventMembership.event_id == event_id)
        .values(notify=enabled)
    )
    return bool(result.rowcount)


def forget_guest(*, session: Session, event_id: int, user_id: int) -> None:
    """A guest taken out of an event: what was kept to tell them of its photos goes."""
    session.execute(
        delete(GuestNotice).where(GuestNotice.event_id == event_id, GuestNotice.user_id == user_id)
    )
    session.execute(delete(ToldPhoto).where(ToldPhoto.event_id == event_id, ToldPhoto.user_id == user_id))


def forget_user(*, session: Session, user_id: int) -> None:
    """What is kept to notify a guest goes (erasure; the account's row takes the rest)."""
    session.execute(delete(GuestNotice).where(GuestNotice.user_id == user_id))
    session.execute(delete(ToldPhoto).where(ToldPhoto.user_id == user_id))


def user_record(*, session: Session, user_id: int) -> dict[str, Any]:
    """What is kept to notify a guest, for their export."""
    notices = session.execute(
        select(GuestNotice.event_id, GuestNotice.due_at, GuestNotice.last_sent_at).where(
            GuestNotice.user_id == user_id
        )
    ).all()
    told = session.scalars(
        select(ToldPhoto.photo_id).where(ToldPhoto.user_id == user_id).order_by(ToldPhoto.photo_id)
    )
    return {
        "events": [{"event_id": n[0], "due_at": n[1], "last_sent_at": n[2]} for n in notices],
        "photos_told": list(told),
    }


def switches(*, session: Session, user: User) -> NotificationSettings:
    """The account's notification switches, and each of its events'."""
    rows = session.execute(
        select(Event.id, Event.name, EventMembership.notify)
        .join(EventMembership, EventMembership.event_id == Event.id)
        .where(EventMembership.user_id == user.id)
        .order_by(EventMembership.joined_at)
    ).all()
    return NotificationSettings(
        enabled=user.notify_photos,
        email_verified=user.email_verified_at is not None,
        events=[EventSwitch(event_id=r[0], name=r[1], enabled=r[2]) for r in rows],
    )


def set_switches(*, session: Session, user: User, patch: NotificationsPatch) -> NotificationSettings:
    """Change the switches given (404 ``event_not_found`` for an event the user is not a guest
    of); honoured at once: a message not written yet is not written."""
    user = session.merge(user, load=False) if user not in session else user
    if patch.enabled is not None:
        user.notify_photos = patch.enabled
    for event_id, enabled in patch.events.items():
        if not set_event_switch(session=session, user_id=user.id, event_id=event_id, enabled=enabled):
            raise NotFound("You are not a guest of this event.", code="event_not_found")
    session.flush()
    return switches(session=session, user=user)


def organizer_summary(*, session: Session, event_id: int) -> EventNotifications:
    """What the event's notifications did, for its organizer."""
    sent = mail.event_notifications(session=session, event_id=event_id)
    names = dict(
        session.execute(
            select(User.id, User.username).where(User.id.in_({m.user_id for m in sent.latest if m.user_id}))
        ).all()
    )
    return EventNotifications(
        sent=sent.sent,
        waiting=sent.waiting,
        failed=sent.failed,
        guests_waiting=waiting_guests(session=session, event_id=event_id),
        next_due_at=next_due(session=session, event_id=event_id),
        last_sent_at=sent.last_sent_at,
        latest=[
            SentNotification(
                username=names.get(m.user_id or 0, ""),
                photos=m.photos_count or 0,
                status=m.status,
                created_at=m.created_at,
                sent_at=m.sent_at,
            )
            for m in sent.latest
        ],
    )
