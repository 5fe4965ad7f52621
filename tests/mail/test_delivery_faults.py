"""Faults of the SMTP server: down, refusing for now (4xx) or for good (5xx). Nothing is lost:
a message waits, with a growing delay, and goes out once the server is back; none is sent
twice in the normal case; a permanent refusal fails only that message."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.core.config import get_settings
from app.core.database import session_scope, utcnow
from app.mail.models import OutboxMessage
from tests.fixtures.events import IndexedEvent
from tests.helpers import drain_jobs
from tests.mail.conftest import sent_to
from tools.harness.smtp import SmtpServer
from tools.mailbox import link_with
from tools.photos import fixture_bytes


def _rows(session: Session) -> list[OutboxMessage]:
    session.expire_all()
    return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def _time_passes() -> None:
    """The retry delay is over (rather than sleeping through it)."""
    with session_scope() as session:
        session.execute(
            update(OutboxMessage).where(OutboxMessage.sent_at.is_(None)).values(available_at=utcnow())
        )


def test_a_server_that_is_down_delays_messages_without_losing_or_doubling_any(
    client: TestClient, session: Session, smtp: SmtpServer
) -> None:
    smtp.stop()
    gala = IndexedEvent(client)
    gala.guest()
    gala.guest()
    drain_jobs()
    rows = _rows(session)
    assert [(r.status, r.tries, r.error_code) for r in rows] == [("pending", 1, "mail_deferred")] * 2
    assert all(r.available_at is not None and r.available_at > utcnow() for r in rows)  # backoff
    assert all(r.attempts == 0 for r in rows)  # an outage uses no attempt: it never gives up
    _time_passes()
    drain_jobs()  # still down: a second try, a longer wait
    assert [r.tries for r in _rows(session)] == [2, 2]
    smtp.start()
    _time_passes()
    drain_jobs()
    assert [r.status for r in _rows(session)] == ["done", "done"]
    assert sorted(str(m["To"]) for m in smtp.messages()) == ["guest1@example.com", "guest2@example.com"]
    _time_passes()
    drain_jobs()
    assert len(smtp.messages()) == 2


@pytest.mark.parametrize("at", ["RCPT", "DATA"])
def test_a_temporary_refusal_is_tried_again_until_the_server_takes_it(
    client: TestClient, session: Session, smtp: SmtpServer, at: str
) -> None:
    smtp.refuse("451 4.3.0 Try again later", at=at)  # type: ignore[arg-type]
    IndexedEvent(client).guest()
    drain_jobs()
    (row,) = _rows(session)
    assert (row.status, row.error_code) == ("pending", "mail_deferred") and "451" in (row.error_message or "")
    smtp.refuse(None)
    _time_passes()
    drain_jobs()
    (row,) = _rows(session)
    assert row.status == "done" and len(smtp.messages()) == 1


def test_a_permanent_refusal_fails_that_message_only(
    client: TestClient, session: Session, smtp: SmtpServer
) -> None:
    gala = IndexedEvent(client)
    smtp.refuse("550 5.1.1 No such user", at="RCPT")
    gala.guest()
    drain_jobs()
    smtp.refuse(None)
    gala.guest()
    drain_jobs()
    first, second = _rows(session)
    assert (first.status, first.error_code) == ("failed", "mail_refused") and "550" in (
        first.error_message or ""
    )
    assert second.status == "done"
    assert [str(m["To"]) for m in smtp.messages()] == ["guest2@example.com"]


def test_photos_matched_while_the_server_is_down_are_told_once_it_is_back(
    client: TestClient, session: Session, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = get_settings()
    monkeypatch.setattr(settings, "notify_quiet_seconds", 0)
    monkeypatch.setattr(settings, "notify_min_interval_seconds", 0)
    gala = IndexedEvent(client)
    guest = gala.guest()
    drain_jobs()
    token = link_with(sent_to(smtp, "guest1@example.com")[-1], "/verify-email/").rsplit("/", 1)[1]
    assert client.post("/api/email/verify", json={"token": token}).status_code == 200
    assert gala.selfie(guest, fixture_bytes("obama.jpg"))["status"] == "ready"
    smtp.stop()
    gala.upload({"a2.jpg": fixture_bytes("obama2.jpg"), "a3.jpg": fixture_bytes("obama3.jpg")}, index=True)
    drain_jobs()
    waiting = [r for r in _rows(session) if r.kind == "photos"]
    assert [(r.status, r.photos_count) for r in waiting] == [("pending", 2)]
    smtp.start()
    _time_passes()
    drain_jobs()
    told = [m for m in sent_to(smtp, "guest1@example.com") if "List-Unsubscribe" in m]
    assert len(told) == 1


def test_a_connection_the_server_dropped_is_opened_again_for_the_next_message(
    client: TestClient, session: Session, smtp: SmtpServer
) -> None:
    gala = IndexedEvent(client)
    gala.guest()
    drain_jobs()  # sent; the connection is kept for the next message
    smtp.stop()
    smtp.start()  # a restart drops it
    gala.guest()
    drain_jobs()
    assert [(r.status, r.tries) for r in _rows(session)] == [("done", 0), ("done", 0)]
    assert len(smtp.messages()) == 2
