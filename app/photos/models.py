"""The ``photos`` table: one row per uploaded event photo, also its indexing job."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.core.database import Base, utcnow
from app.jobs.models import LeasedJob


class PhotoStatus(enum.StrEnum):
    uploading = "uploading"  # signed for a direct upload to the bucket, not completed yet
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
    # 0 until the photo job has read a direct upload.
    width: Mapped[int]
    height: Mapped[int]
    served_key: Mapped[str | None] = mapped_column(String(255))
    served_media_type: Mapped[str | None] = mapped_column(String(32))
    thumbnail_key: Mapped[str | None] = mapped_column(String(255))
    faces_count: Mapped[int] = mapped_column(default=0)
    # SHA-256 (hex) of the original's bytes; one photo per hash in an event among those not
    # failed (a partial unique index, core.indexes). Null for rows older than revision 0010.
    content_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    indexed_at: Mapped[datetime | None]

    @property
    def file_keys(self) -> list[str]:
        """The storage keys of the photo's files: its original and what was derived from it."""
        return [k for k in (self.original_key, self.thumbnail_key, self.served_key) if k]


class PurgeReason(enum.StrEnum):
    deleted = "deleted"  # the organizer deleted the event: everything goes, the event too
    retention = "retention"  # retention_days after the event's end: photos, faces, matches go
    sweep = "sweep"  # the daily job that queues the retention purges that are due


class EventPurge(LeasedJob, Base):
    """Erasing an event's photos in batches, a durable job: a worker killed half-way leaves
    it to the next one. ``event_id`` has no foreign key: the job outlives the event row."""

    __tablename__ = "event_purges"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int | None]
    reason: Mapped[str] = mapped_column(String(16))
    photos_deleted: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
