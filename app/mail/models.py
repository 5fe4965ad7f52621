"""The ``outbox``: every mail the service sends is first a row here, written in the
transaction of what caused it, then sent by the job runner (``app.mail.jobs``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.database import Base, utcnow
from app.jobs.models import LeasedJob


class OutboxMessage(LeasedJob, Base):
    """One message to one address. Its bodies are cleared once it is sent (they may carry a
    sign-in link); what remains says what was sent to whom and when. ``message_id`` is fixed
    when the row is written, so a message sent twice after a crash is the same message."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # app.mail.service.MailKind
    # The account it is for (its messages go with it), and the event of a notification.
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    event_id: Mapped[int | None] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    to_address: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(255))
    text_body: Mapped[str | None] = mapped_column(Text)
    html_body: Mapped[str | None] = mapped_column(Text)
    unsubscribe_url: Mapped[str | None] = mapped_column(String(512))
    photos_count: Mapped[int | None]  # a notification's number of new photos
    tries: Mapped[int] = mapped_column(default=0)  # deliveries the SMTP server did not take
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
