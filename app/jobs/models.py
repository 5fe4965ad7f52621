"""The lease columns every durable job row carries (photos, selfies, event purges, erasures at
the face provider and re-descriptions of faces are jobs)."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column


class JobStatus(enum.StrEnum):
    """The states of a job row that has no states of its own (photos and selfies have theirs):
    waiting, claimed by a worker, finished, failed for good, or made pointless by a newer job."""

    pending = "pending"
    running = "running"
    done = "done"
    failed = "failed"
    superseded = "superseded"

    @classmethod
    def todo(cls) -> tuple[JobStatus, JobStatus]:
        """The states a worker may claim a job in (a running one only once its lease expired)."""
        return (cls.pending, cls.running)


class LeasedJob:
    """A job is claimable when its status is a "todo" status and it is available, or when
    its worker's lease has expired (the worker died). ``attempts`` bounds the retries."""

    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(default=0)
    available_at: Mapped[datetime | None]
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None]
    error_code: Mapped[str | None] = mapped_column(String(32))
    error_message: Mapped[str | None] = mapped_column(Text)
