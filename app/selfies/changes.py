"""A guest's selfie changes and their daily limit: someone holding an event's code could search
the photos for other people's faces, one selfie after another.

A change is an accepted selfie that replaces an accepted one, or the deletion of an accepted
selfie (deleting, then uploading, is a change too); a selfie the face check refuses never
counts. At most ``SELFIE_CHANGES_PER_DAY`` in any 24 hours, shown to the guest's organizers
(``selfie_changes``). The limit is checked before an upload's body is read (429
``selfie_changes_exhausted`` with the true ``Retry-After``: when the oldest counted change
leaves the window), and again when the face check accepts the new selfie, which then is
refused with that code if the guest has used up the limit meanwhile.

Counting and recording are atomic: they run under a lock on the guest's row (``SELECT ... FOR
UPDATE`` on PostgreSQL; on SQLite the database's write lock, which a write takes), so
concurrent uploads, checks and deletions of one guest are serialised.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.accounts.models import User
from app.core.config import Settings
from app.core.database import utcnow
from app.core.throttle import TooManyRequests
from app.selfies.models import Selfie, SelfieChange, SelfieStatus

WINDOW = timedelta(days=1)
ACCEPTED = (SelfieStatus.matching, SelfieStatus.ready)


class ChangesExhausted(TooManyRequests):
    code = "selfie_changes_exhausted"


def lock_guest(session: Session, user_id: int) -> None:
    """Serialise this guest's selfie changes until the transaction ends. Call it before the
    transaction's other statements: on SQLite the write it makes takes the write lock, and
    what the transaction then reads is what its writes are checked against."""
    if session.get_bind().dialect.name == "sqlite":
        # A write that changes nothing (updated_at set to itself, so no onupdate either).
        session.execute(update(User).where(User.id == user_id).values(updated_at=User.updated_at))
    else:
        session.execute(select(User.id).where(User.id == user_id).with_for_update())


def has_accepted(session: Session, user_id: int, *, before: int | None = None) -> bool:
    """Whether the guest has an accepted selfie (older than selfie ``before``, if given)."""
    stmt = select(Selfie.id).where(
        Selfie.user_id == user_id, Selfie.status.in_(ACCEPTED), Selfie.descriptor.is_not(None)
    )
    if before is not None:
        stmt = stmt.where(Selfie.id < before)
    return session.scalar(stmt.limit(1)) is not None


def _recent(session: Session, user_id: int, now: datetime) -> list[datetime]:
    return list(
        session.scalars(
            select(SelfieChange.created_at)
            .where(SelfieChange.user_id == user_id, SelfieChange.created_at > now - WINDOW)
            .order_by(SelfieChange.created_at)
        )
    )


def check_allowed(*, session: Session, user_id: int, accepted: bool, settings: Settings) -> None:
    """Raise ``ChangesExhausted`` (429, ``Retry-After``) if a new selfie would be a change
    (the guest has an accepted selfie, or deleted one lately) past the daily limit."""
    now = utcnow()
    recent = _recent(session, user_id, now)
    limit = settings.selfie_changes_per_day
    if not (accepted or recent) or len(recent) < limit:
        return
    # The count drops below the limit when this change leaves the window.
    freed_at = recent[len(recent) - limit] + WINDOW if limit else now + WINDOW
    retry_after = max(1, math.ceil((freed_at - now).total_seconds()))
    wait = (
        f"{retry_after // 3600} h {retry_after % 3600 // 60} min"
        if retry_after >= 3600
        else (f"{max(1, retry_after // 60)} min")
    )
    raise ChangesExhausted(
        f"You can change your selfie (replace or delete it) {limit} times a day. Try again in {wait}.",
        headers={"Retry-After": str(retry_after)},
        retry_after=retry_after,
    )


def record(session: Session, user_id: int) -> None:
    """Count one change (under :func:`lock_guest`)."""
    session.add(SelfieChange(user_id=user_id))
    session.flush()
