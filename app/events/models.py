"""The ``events``, ``event_memberships`` and ``event_bans`` tables."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint, true
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.accounts.models import User
from app.core.database import Base, utcnow


class Event(Base):
    __tablename__ = "events"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Stored upper-case and unique (app.core.indexes); lookups normalise the input the
    # same way, so the code is case-insensitive.
    code: Mapped[str] = mapped_column(String(24))
    # The unguessable part of the join link of the event's QR code (/e/<join_token>).
    join_token: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(120))
    starts_at: Mapped[datetime | None]
    ends_at: Mapped[datetime | None]
    is_open: Mapped[bool] = mapped_column(default=True)
    # Photos, faces and matches are purged this many days after the event ends.
    retention_days: Mapped[int] = mapped_column(default=30, server_default="30")
    # Set when the organizer deletes the event: it is gone for guests at once, erased by a job.
    deleting_at: Mapped[datetime | None]
    purged_at: Mapped[datetime | None]  # when its photos were purged (retention)
    organizer_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    organizer: Mapped[User] = relationship(lazy="raise")


class EventMembership(Base):
    __tablename__ = "event_memberships"
    """One per (user, event): unique index in ``app.core.indexes``."""

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    joined_at: Mapped[datetime] = mapped_column(default=utcnow)
    # "Your photos are here" for this event (the account has a global switch too).
    notify: Mapped[bool] = mapped_column(default=True, server_default=true())
    # The guest's visits of their photos page for this event: the last one, and the one before
    # it (the photos matched since then are "new" on the page; ``selfies.service.photo_grid``).
    photos_seen_at: Mapped[datetime | None]
    photos_new_since: Mapped[datetime | None]

    event: Mapped[Event] = relationship(lazy="raise")


class EventBan(Base):
    """A guest the organizer removed and barred: they may not join the event again until the
    organizer lifts it. Goes with the event or the account."""

    __tablename__ = "event_bans"
    __table_args__ = (UniqueConstraint("event_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
