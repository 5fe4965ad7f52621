"""Writing mails into the outbox, and every query on it.

A caller (a service, in its request's or job's transaction) calls :func:`enqueue`: the message
is rendered now, in the recipient's language, and stored with its final ``Message-ID``; the
mail job (``app.mail.jobs``) sends it once that transaction commits. So a mail exists exactly
when what it tells about does, and the SMTP server's state never fails a request.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app.core.config import Settings, get_settings
from app.core.database import utcnow
from app.jobs import wakeup
from app.jobs.models import JobStatus
from app.mail.models import OutboxMessage
from app.mail.render import SERVICE_NAME, render


class MailKind(enum.StrEnum):
    verify = "verify"  # confirm an address
    reset = "reset"  # a password reset link
    signin = "signin"  # a sign-in link and code
    photos = "photos"  # "your photos are here"


def sender(settings: Settings) -> str:
    """MAIL_FROM, else no-reply at the host of PUBLIC_URL."""
    if settings.mail_from:
        return settings.mail_from
    host = urlsplit(settings.site_url).hostname or "localhost"
    return str(Address(SERVICE_NAME, addr_spec=f"no-reply@{host}"))


def link(path: str, settings: Settings | None = None) -> str:
    """An absolute link for a mail: PUBLIC_URL + ``path``."""
    return (settings or get_settings()).site_url + path


def _message_id(settings: Settings) -> str:
    # 128 random bits: email.utils.make_msgid has only 17 (and the time), and collided under load.
    domain = parseaddr(sender(settings))[1].rpartition("@")[2] or "localhost"
    return f"<{uuid.uuid4().hex}@{domain}>"


def enqueue(
    *,
    session: Session,
    kind: MailKind,
    to: str,
    language: str,
    context: dict[str, Any],
    user_id: int | None,
    event_id: int | None = None,
    photos_count: int | None = None,
    unsubscribe_url: str | None = None,
) -> OutboxMessage:
    """Store the message for sending after the caller's commit (never sent if it rolls back)."""
    settings = get_settings()
    rendered = render(kind, language=language, context={**context, "language": language})
    row = OutboxMessage(
        message_id=_message_id(settings),
        kind=kind.value,
        status=JobStatus.pending,
        user_id=user_id,
        event_id=event_id,
        to_address=to,
        subject=rendered.subject,
        text_body=rendered.text,
        html_body=rendered.html,
        unsubscribe_url=unsubscribe_url,
        photos_count=photos_count,
    )
    session.add(row)
    wakeup.notify_on_commit(session)
    return row


def build_message(row: OutboxMessage, settings: Settings) -> EmailMessage:
    """The MIME message of an outbox row: plain text and HTML, its fixed Message-ID, and for a
    notification the one-click unsubscribe headers of RFC 8058."""
    message = EmailMessage()
    message["From"] = sender(settings)
    message["To"] = row.to_address
    message["Subject"] = row.subject
    message["Date"] = format_datetime(utcnow())
    message["Message-ID"] = row.message_id
    message["Auto-Submitted"] = "auto-generated"
    if row.unsubscribe_url:
        message["List-Unsubscribe"] = f"<{row.unsubscribe_url}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(row.text_body or "")
    message.add_alternative(row.html_body or "", subtype="html")
    return message


def sent_values() -> dict[str, Any]:
    """What a sent message keeps: not its bodies (they may hold a sign-in link)."""
    return {"status": JobStatus.done, "sent_at": utcnow(), "text_body": None, "html_body": None}


def cancel_pending(*, session: Session, user_id: int, kinds: Sequence[MailKind]) -> None:
    """Unsent messages of these kinds to ``user_id`` are dropped (their links are dead now)."""
    session.execute(
        delete(OutboxMessage).where(
            OutboxMessage.user_id == user_id,
            OutboxMessage.kind.in_([k.value for k in kinds]),
            OutboxMessage.status == JobStatus.pending,
        )
    )


@dataclass(frozen=True)
class Notifications:
    """An event's "your photos are here" messages, for its organizer."""

    sent: int
    waiting: int
    failed: int
    last_sent_at: datetime | None
    latest: list[OutboxMessage]  # newest first


def event_notifications(*, session: Session, event_id: int, limit: int = 20) -> Notifications:
    of_event = (OutboxMessage.event_id == event_id, OutboxMessage.kind == MailKind.photos.value)
    counts = dict(
        session.execute(
            select(OutboxMessage.status, func.count()).where(*of_event).group_by(OutboxMessage.status)
        ).all()
    )
    last = session.scalar(select(func.max(OutboxMessage.sent_at)).where(*of_event))
    latest = session.scalars(
        select(OutboxMessage).where(*of_event).order_by(OutboxMessage.id.desc()).limit(limit)
    ).all()
    return Notifications(
        sent=int(counts.get(JobStatus.done, 0)),
        waiting=int(counts.get(JobStatus.pending, 0)) + int(counts.get(JobStatus.running, 0)),
        failed=int(counts.get(JobStatus.failed, 0)),
        last_sent_at=last,
        latest=list(latest),
    )


def user_messages(*, session: Session, user_id: int) -> list[dict[str, Any]]:
    """What the outbox holds about a user, for their export (no bodies, no links)."""
    rows = session.scalars(
        select(OutboxMessage).where(OutboxMessage.user_id == user_id).order_by(OutboxMessage.id)
    )
    return [
        {
            "kind": r.kind,
            "to": r.to_address,
            "subject": r.subject,
            "status": r.status,
            "created_at": r.created_at.isoformat(),
            "sent_at": r.sent_at.isoformat() if r.sent_at else None,
        }
        for r in rows
    ]
