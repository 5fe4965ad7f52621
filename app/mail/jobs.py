"""The mail job: send one outbox message (``app.mail.service.enqueue`` wrote it).

Sent at least once, never zero times: the runner commits "sent" after the SMTP server took
the message, so a crash in between sends it again, with the same ``Message-ID`` (receivers
and their providers fold such duplicates). A temporary failure (the server down, a 4xx, a
login refused) gives the message back with a growing delay and without using an attempt:
nothing is lost however long the outage; a permanent one (a 5xx about this recipient or
message) fails it with the server's words.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from app.core.config import get_settings
from app.jobs.kinds import Outcome, register, status_kind
from app.jobs.models import JobStatus
from app.mail import service
from app.mail.models import OutboxMessage
from app.mail.service import MailKind
from app.mail.transport import DeliveryFailed, transport

log = logging.getLogger("app.mail")
#: The longest wait between two tries of a message the server does not take for now.
MAX_BACKOFF_SECONDS = 600.0


def backoff(tries: int) -> float:
    """Seconds before the next try after ``tries`` failed ones: 5 s, doubling, at most 10 min."""
    return float(min(MAX_BACKOFF_SECONDS, 5.0 * 2 ** min(tries, 10)))


def handle(_session: Session, message: OutboxMessage) -> Outcome:
    settings = get_settings()
    try:
        transport(settings).send(service.build_message(message, settings), message.to_address)
    except DeliveryFailed as exc:
        if exc.permanent:
            log.warning("mail %s to %s refused for good: %s", message.id, message.to_address, exc.message)
            return Outcome(
                {"status": JobStatus.failed, "error_code": "mail_refused", "error_message": exc.message}
            )
        log.warning("mail %s not sent yet (try %d): %s", message.id, message.tries + 1, exc.message)
        values = {
            "status": JobStatus.pending,
            "attempts": OutboxMessage.attempts - 1,  # the server's state, not this message's
            "tries": OutboxMessage.tries + 1,
            "error_code": "mail_deferred",
            "error_message": exc.message[:2000],
        }
        return Outcome(values, retry_after=backoff(message.tries))
    return Outcome({**service.sent_values(), "error_code": None, "error_message": None})


def _kinds(*kinds: str) -> Callable[[], Any]:
    return lambda: OutboxMessage.kind.in_(kinds)


_AWAITED = (MailKind.reset, MailKind.signin)
# A sign-in link or a reset is awaited by someone at their screen: before everything.
MAIL_JOB = register(
    status_kind(name="mail", model=OutboxMessage, handle=handle, priority=1, scope=_kinds(*_AWAITED))
)
# A verification link after registration: once the selfies a crowd at the door is waiting on
# are checked, so that a burst of registrations does not slow their verdicts.
VERIFY_MAIL_JOB = register(
    status_kind(
        name="verify-mail", model=OutboxMessage, handle=handle, priority=12, scope=_kinds(MailKind.verify)
    )
)
# "Your photos are here" in bulk (thousands after one batch): after the selfies and photos
# guests and organizers wait on, so that a blast never holds them up.
NOTIFICATION_JOB = register(
    status_kind(
        name="notification-mail",
        model=OutboxMessage,
        handle=handle,
        priority=35,
        scope=_kinds(MailKind.photos),
    )
)
