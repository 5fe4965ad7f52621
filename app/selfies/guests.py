"""An event's guests as its organizer sees them: each with their selfie's state and changes
(the dashboard's table, ``GET /api/events/{id}/guests``), and the counts the dashboard's
progress polls for, in two count queries however many guests there are."""

from __future__ import annotations

from typing import cast

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.accounts.models import User
from app.events.models import EventMembership
from app.selfies.models import Selfie, SelfieChange, SelfieStatus
from app.selfies.schemas import EventGuest, PublicStatus
from app.selfies.service import snapshots


def event_guests(*, session: Session, event_id: int) -> list[EventGuest]:
    """The event's guests, with their selfie's state and how often they changed it."""
    changes = (
        select(
            SelfieChange.user_id,
            func.count().label("n"),
            func.max(SelfieChange.created_at).label("last"),
        )
        .group_by(SelfieChange.user_id)
        .subquery()
    )
    rows = session.execute(
        select(
            User.id, User.username, User.display_name, EventMembership.joined_at, changes.c.n, changes.c.last
        )
        .join(EventMembership, EventMembership.user_id == User.id)
        .outerjoin(changes, changes.c.user_id == User.id)
        .where(EventMembership.event_id == event_id)
        .order_by(EventMembership.joined_at, User.id)
    ).all()
    states = snapshots(session=session, user_ids=[r.id for r in rows])
    return [
        EventGuest(
            user_id=r.id,
            username=r.username,
            display_name=r.display_name,
            joined_at=r.joined_at,
            selfie_status=cast(PublicStatus | None, states[r.id].status) if r.id in states else None,
            selfie_changes=int(r.n or 0),
            last_selfie_change_at=r.last,
        )
        for r in rows
    ]


def guest_counts(*, session: Session, event_id: int) -> tuple[int, int]:
    """How many guests the event has, and how many of them have their latest selfie ready."""
    members = select(EventMembership.user_id).where(EventMembership.event_id == event_id)
    latest = select(func.max(Selfie.id)).where(Selfie.user_id.in_(members)).group_by(Selfie.user_id)
    ready = select(func.count()).where(
        Selfie.id.in_(latest.scalar_subquery()), Selfie.status == SelfieStatus.ready
    )
    guests = session.scalar(select(func.count()).select_from(members.subquery()))
    return int(guests or 0), int(session.scalar(ready) or 0)
