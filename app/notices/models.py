"""The tables of "your photos are here": per guest and event, what is waiting to be told and
what was told (``guest_notices``, ``told_photos``), and per event the job that writes the
messages once its batch of photos has settled (``notice_runs``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from app.core.database import Base, utcnow
from app.jobs.models import LeasedJob


class GuestNotice(Base):
    """A guest of an event with new matches: tell them at ``due_at`` (pushed back while photos
    keep matching: the quiet period; never before ``last_sent_at`` + the minimum interval)."""

    __tablename__ = "guest_notices"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), primary_key=True)
    due_at: Mapped[datetime | None]  # None: nothing waiting
    last_sent_at: Mapped[datetime | None]


class ToldPhoto(Base):
    """A photo a guest was told about (or saw on their screen when their selfie matched it):
    never counted as new again."""

    __tablename__ = "told_photos"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    photo_id: Mapped[int] = mapped_column(ForeignKey("photos.id", ondelete="CASCADE"), primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    told_at: Mapped[datetime] = mapped_column(default=utcnow)


class NoticeRun(LeasedJob, Base):
    """One per event: claimable when some of its guests' notices are due. ``wanted`` counts
    the requests to run (a photo matched); a run that read ``wanted`` = n ends pending again if
    it grew meanwhile, so a match committed during a run is never missed."""

    __tablename__ = "notice_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), unique=True)
    wanted: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
