"""Mailed links, end to end through a real SMTP server: verifying the address after
registration, resetting a forgotten password, signing in with a link or a code."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.mail.models import OutboxMessage
from tests.helpers import bearer, drain_jobs, login, make_event, make_organizer, register
from tests.mail.conftest import PUBLIC_URL, sent_to
from tools.accounts import PASSWORD
from tools.harness.smtp import SmtpServer
from tools.mailbox import link_with, text_body

NEW_PASSWORD = "otter lantern quietly marches"


def _token(link: str) -> str:
    return link.rstrip("/").rsplit("/", 1)[1]


def _guest(client: TestClient, session: Session, name: str = "ada", **extra: Any) -> dict[str, str]:
    org = login(client, make_organizer(session)["username"])
    event = make_event(client, org)
    r = register(client, event["code"], name, **extra)
    assert r.status_code == 201, r.text
    drain_jobs()  # its verification mail
    return bearer(r)


def test_registration_mails_a_link_that_verifies_the_address(
    client: TestClient, session: Session, smtp: SmtpServer
) -> None:
    guest = _guest(client, session)
    assert client.get("/api/me", headers=guest).json()["email_verified"] is False
    drain_jobs()
    (mail,) = sent_to(smtp, "ada@example.com")
    assert mail["Subject"] == "Confirmez votre adresse e-mail"  # French unless asked otherwise
    link = link_with(mail, "/verify-email/")
    assert link.startswith(PUBLIC_URL + "/verify-email/")
    assert mail.get_body(("html",)) is not None and mail["Message-ID"]
    r = client.post("/api/email/verify", json={"token": _token(link)})
    assert r.status_code == 200, r.text
    assert r.json() == {"email": "ada@example.com", "email_verified": True}
    assert client.get("/api/me", headers=guest).json()["email_verified"] is True
    again = client.post("/api/email/verify", json={"token": _token(link)})
    assert (again.status_code, again.json()["error"]["code"]) == (400, "invalid_token")


def test_mails_are_in_the_language_the_guest_registered_in(
    client: TestClient, session: Session, smtp: SmtpServer
) -> None:
    org = login(client, make_organizer(session)["username"])
    event = make_event(client, org)
    body = {
        "event_code": event["code"],
        "username": "bob",
        "email": "bob@example.com",
        "password": PASSWORD,
        "accept_face_processing": True,
    }
    assert (
        client.post(
            "/api/register-with-event-code", json=body, headers={"Accept-Language": "en-GB"}
        ).status_code
        == 201
    )
    drain_jobs()
    (mail,) = sent_to(smtp, "bob@example.com")
    assert mail["Subject"] == "Confirm your email address"
    assert "Hello bob," in text_body(mail)


def test_a_forgotten_password_is_reset_from_the_mailed_link_once(
    client: TestClient, session: Session, smtp: SmtpServer
) -> None:
    old = _guest(client, session)
    r = client.post("/api/password/forgot", json={"email": "ADA@example.com"})
    assert r.status_code == 202
    drain_jobs()
    mail = sent_to(smtp, "ada@example.com")[-1]
    token = _token(link_with(mail, "/reset-password/"))
    weak = client.post("/api/password/reset", json={"token": token, "password": "password1"})
    assert (weak.status_code, weak.json()["error"]["code"]) == (422, "weak_password")
    done = client.post("/api/password/reset", json={"token": token, "password": NEW_PASSWORD})
    assert done.status_code == 200, done.text
    fresh = bearer(done)
    assert client.get("/api/me", headers=fresh).json()["email_verified"] is True
    assert client.get("/api/me", headers=old).status_code == 401  # every older token is dead
    assert client.post("/api/login", json={"login": "ada", "password": PASSWORD}).status_code == 401
    assert client.post("/api/login", json={"login": "ada", "password": NEW_PASSWORD}).status_code == 200
    reused = client.post("/api/password/reset", json={"token": token, "password": NEW_PASSWORD + " again"})
    assert (reused.status_code, reused.json()["error"]["code"]) == (400, "invalid_token")


def test_a_reset_link_dies_when_the_password_changes_otherwise(
    client: TestClient, session: Session, smtp: SmtpServer
) -> None:
    guest = _guest(client, session)
    client.post("/api/password/forgot", json={"email": "ada@example.com"})
    drain_jobs()
    token = _token(link_with(sent_to(smtp, "ada@example.com")[-1], "/reset-password/"))
    changed = client.post(
        "/api/me/password", json={"current_password": PASSWORD, "new_password": NEW_PASSWORD}, headers=guest
    )
    assert changed.status_code == 200
    r = client.post("/api/password/reset", json={"token": token, "password": "another fine long phrase"})
    assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_token")


def test_forgot_answers_the_same_for_an_unknown_address_and_mails_nothing(
    client: TestClient, session: Session, smtp: SmtpServer
) -> None:
    _guest(client, session)
    drain_jobs()
    before = len(smtp.messages())
    known = client.post("/api/password/forgot", json={"email": "ada@example.com"})
    unknown = client.post("/api/password/forgot", json={"email": "nobody@example.com"})
    invalid = client.post("/api/password/forgot", json={"email": "not an address"})
    assert known.status_code == unknown.status_code == invalid.status_code == 202
    assert known.json() == unknown.json() == invalid.json()
    drain_jobs()
    assert len(smtp.messages()) == before + 1


def test_a_guest_signs_in_with_the_mailed_link_and_the_address_counts_as_verified(
    client: TestClient, session: Session, smtp: SmtpServer
) -> None:
    _guest(client, session)
    assert client.post("/api/login/email", json={"email": "ada@example.com"}).status_code == 202
    drain_jobs()
    mail = sent_to(smtp, "ada@example.com")[-1]
    assert mail["Subject"] == "Votre lien de connexion"
    token = _token(link_with(mail, "/login/email/"))
    r = client.post("/api/login/email/confirm", json={"token": token})
    assert r.status_code == 200, r.text
    assert r.json()["user"]["username"] == "ada" and r.json()["user"]["email_verified"] is True
    assert "device" in r.cookies
    reused = client.post("/api/login/email/confirm", json={"token": token})
    assert (reused.status_code, reused.json()["error"]["code"]) == (400, "invalid_token")


def test_a_guest_signs_in_with_the_mailed_code_and_five_wrong_codes_kill_it(
    client: TestClient, session: Session, smtp: SmtpServer
) -> None:
    _guest(client, session)
    client.post("/api/login/email", json={"email": "ada@example.com"})
    drain_jobs()
    text = text_body(sent_to(smtp, "ada@example.com")[-1])
    code = _code_in(text)
    ok = client.post("/api/login/email/confirm", json={"email": "ada@example.com", "code": code})
    assert ok.status_code == 200, ok.text
    client.post("/api/login/email", json={"email": "ada@example.com"})
    drain_jobs()
    code = _code_in(text_body(sent_to(smtp, "ada@example.com")[-1]))
    wrong = "00000000" if code.replace(" ", "") != "00000000" else "11111111"
    for _ in range(5):
        r = client.post("/api/login/email/confirm", json={"email": "ada@example.com", "code": wrong})
        assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_token")
    dead = client.post("/api/login/email/confirm", json={"email": "ada@example.com", "code": code})
    assert (dead.status_code, dead.json()["error"]["code"]) == (400, "invalid_token")


def _code_in(text: str) -> str:
    import re

    found = re.search(r"\b(\d{4} \d{4})\b", text)
    assert found, text
    return found.group(1)


def test_a_sent_message_keeps_no_body_and_its_message_id(
    client: TestClient, session: Session, smtp: SmtpServer
) -> None:
    _guest(client, session)
    drain_jobs()
    row = session.scalars(select(OutboxMessage)).one()
    assert row.status == "done" and row.sent_at is not None
    assert row.text_body is None and row.html_body is None
    (mail,) = smtp.messages()
    assert mail["Message-ID"] == row.message_id
