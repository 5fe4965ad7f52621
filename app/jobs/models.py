"""The lease columns every durable job row carries (photos and selfies are jobs)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column


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
