"""The ``users`` table. Accounts are global: one login, many events."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import CheckConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from app.core.database import Base, utcnow


class Role(enum.StrEnum):
    guest = "guest"
    organizer = "organizer"
    admin = "admin"


class User(Base):
    """Username and email are unique case-insensitively: unique indexes on lower(...)
    declared in ``app.core.indexes``, so concurrent registrations cannot both win."""

    __tablename__ = "users"
    # AUTOINCREMENT on SQLite: a deleted user's id is never given to a new account.
    __table_args__ = (
        CheckConstraint("role IN ('guest', 'organizer', 'admin')", name="role"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(32))
    email: Mapped[str] = mapped_column(String(254))
    password_hash: Mapped[str] = mapped_column(String(255))
    display_name: Mapped[str | None] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16), default=Role.guest.value)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    last_login_at: Mapped[datetime | None]
    # In every access token; bumped by a logout or a password change, which revokes them all.
    token_version: Mapped[int] = mapped_column(default=0, server_default="0")
    # Consent to face processing, given at registration: when, and to which policy version.
    consent_at: Mapped[datetime | None]
    consent_version: Mapped[str | None] = mapped_column(String(16))

    @property
    def is_organizer(self) -> bool:
        return self.role in (Role.organizer, Role.admin)
