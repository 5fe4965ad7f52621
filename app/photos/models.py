"""The ``photos`` table: one row per uploaded event photo, also its indexing job."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.core.database import Base, utcnow
from app.jobs.models import LeasedJob


class PhotoStatus(enum.StrEnum):
    pending = "pending"
    processing = "processing"
    indexed = "indexed"
    failed = "failed"


class Photo(LeasedJob, Base):
    __tablename__ = "photos"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    uploaded_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    filename: Mapped[str] = mapped_column(String(255))
    original_key: Mapped[str] = mapped_column(String(255))
    original_format: Mapped[str] = mapped_column(String(16))
    size_bytes: Mapped[int]
    width: Mapped[int]
    height: Mapped[int]
    served_key: Mapped[str | None] = mapped_column(String(255))
    served_media_type: Mapped[str | None] = mapped_column(String(32))
    thumbnail_key: Mapped[str | None] = mapped_column(String(255))
    faces_count: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    indexed_at: Mapped[datetime | None]
