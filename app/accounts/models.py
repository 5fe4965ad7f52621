"""The ``users`` table (accounts are global: one login, many events) and ``account_tokens``
(the links and codes mailed to verify an address, reset a password or sign in)."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String, true
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
    # When the owner of ``email`` proved it (a link mailed to it); None: not yet, or changed since.
    email_verified_at: Mapped[datetime | None]
    # The language of the mails sent to this account (app.core.i18n.LANGUAGES).
    language: Mapped[str] = mapped_column(String(8), default="fr", server_default="fr")
    # The global switch of "your photos are here" (each event has its own, on the membership).
    notify_photos: Mapped[bool] = mapped_column(default=True, server_default=true())

    @property
    def email_verified(self) -> bool:
        return self.email_verified_at is not None

    @property
    def is_organizer(self) -> bool:
        return self.role in (Role.organizer, Role.admin)


class AccountToken(Base):
    """A link (and, to sign in, a code) mailed to ``email``: only digests are stored. Used
    once (``used_at``), dead after ``expires_at``, and deleted with every other reset and
    sign-in token of the account when its password changes."""

    __tablename__ = "account_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    purpose: Mapped[str] = mapped_column(String(16))  # app.accounts.links.Purpose
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    code_hash: Mapped[str | None] = mapped_column(String(64))
    code_attempts: Mapped[int] = mapped_column(default=0)  # wrong codes typed against it
    email: Mapped[str] = mapped_column(String(254))  # the address it was sent to
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
