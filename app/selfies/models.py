"""The ``selfies`` table: a guest's selfie, also its check-and-match job."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from app.core.database import Base, utcnow
from app.jobs.models import LeasedJob


class SelfieStatus(enum.StrEnum):
    pending = "pending"  # waiting for the face check
    matching = "matching"  # face accepted, matches being computed
    ready = "ready"
    rejected = "rejected"  # the face check refused it (reason in error_code)
    failed = "failed"  # could not be processed after the allowed attempts


class Selfie(LeasedJob, Base):
    __tablename__ = "selfies"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    image_key: Mapped[str] = mapped_column(String(255))
    strict: Mapped[bool] = mapped_column(default=True)
    descriptor: Mapped[bytes | None] = mapped_column(LargeBinary)  # the provider's signature
    provider: Mapped[str] = mapped_column(String(16), default="local", server_default="local")
    model: Mapped[str] = mapped_column(String(32), server_default="dlib-resnet-v1")  # of the template
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    checked_at: Mapped[datetime | None]
    matched_at: Mapped[datetime | None]


class SelfieChange(Base):
    """A guest replaced their selfie: limited per day, shown to their events' organizers
    (someone holding the code could upload another person's face)."""

    __tablename__ = "selfie_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
